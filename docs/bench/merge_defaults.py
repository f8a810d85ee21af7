"""Merge comparison runs into ``docs/bench/defaults.json`` (the defaults table's one source).

    python docs/bench/merge_defaults.py DIR[:FROM=TO][@MODEL,MODEL] ...

Each ``DIR`` is the ``--out`` of a ``python -m models.compare`` run (or a ``report.json``-like
file such as ``docs/bench/compare.json``, or ``docs/bench/defaults.json`` itself, to add runs to
it); ``:FROM=TO`` renames its guide ``FROM`` (e.g.
``iaf=iaf_median`` for a run of ours at another start), ``:FROM=`` leaves it out; ``@MODELS``
takes only those models of the run. A later row of
the same model, backend and guide replaces an earlier one; each run's settings are kept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).parent / "defaults.json"


def main(argv: list[str]) -> None:
    rows: dict[tuple, dict] = {}
    runs = {}
    for arg in argv:
        arg_models = arg.partition("@")[2]
        models = set(arg_models.split(",")) if arg_models else None
        path, _, rename = arg.partition("@")[0].partition(":")
        old, _, new = rename.partition("=")
        path = Path(path)
        report = json.loads((path if path.suffix == ".json" else path / "report.json").read_text())
        if "settings" in report:
            runs[arg] = report["settings"]
        else:  # a merged file (defaults.json itself): keep the runs it came from
            runs.update(report["runs"])
        for row in report["rows"]:
            if models is not None and row["model"] not in models:
                continue
            row = {k: v for k, v in row.items() if k != "per_seed"}
            if old and row["guide"] == old:
                if not new:
                    continue
                row["guide"] = new
            rows[row["model"], row["backend"], row["guide"]] = row
    OUT.write_text(json.dumps({"runs": runs, "rows": list(rows.values())}, indent=1) + "\n")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main(sys.argv[1:])
