"""The posteriordb comparison as one result file, its counts against the targets, and its tables.

    python -m models.compare.posteriordb_report --runs results/pdb_np,results/pdb_pyro \
        --out docs/bench/posteriordb_guides.json

``--runs``: folders of ``python -m models.compare --suite posteriordb`` (their ``report.json``);
the rows are merged (a later folder's row replaces an earlier one of the same model, backend and
guide) and stored compactly with the runs' settings. ``docs/generate.py`` renders the tables
(``posteriordb_guides BACKEND``) and the counts (``pdb/BACKEND/COUNT``) from that file.

Counts, per backend, over the posteriors where both guides have a row:

- ``finite``: posteriors where ours has a finite ELBO in every seed;
- ``ge_full`` / ``ge_diag``: ours' mean ELBO (over seeds) >= the full-rank's / diagonal's;
- ``ge_full_noise`` / ``ge_diag_noise``: the same, allowing noise (1 nat or 1%, the larger);
- ``best_nongauss``: posteriors of :data:`NON_GAUSSIAN` where ours is the best of the four;
- ``accurate``: ours' RMS mean error <= 0.1 sd and RMS sd error <= 0.1 (the recipe's bar at the
  default budget, for comparison with the accuracy recipe's own count).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from models.compare.report import keep_other_backends as _keep_other_backends

__all__ = ["NON_GAUSSIAN", "GUIDES", "merge_runs", "keep_other_backends", "counts", "within_noise"]

GUIDES = ("diagonal", "multivariate", "iaf_builtin", "iaf")
#: the posteriors the issue names as not Gaussian-shaped (diamonds, kilpisjarvi, the HMMs, the
#: mixture, GARCH, the GP, the ODEs)
NON_GAUSSIAN = ("diamonds-diamonds", "kilpisjarvi_mod-kilpisjarvi", "hmm_example-hmm_example",
                "bball_drive_event_0-hmm_drive_0", "bball_drive_event_1-hmm_drive_1",
                "low_dim_gauss_mix-low_dim_gauss_mix", "garch-garch11", "gp_pois_regr-gp_pois_regr",
                "one_comp_mm_elim_abs-one_comp_mm_elim_abs", "hudson_lynx_hare-lotka_volterra")
KEEP = ("model", "guide", "backend", "elbo_mean", "elbo_sd", "mean_z_err", "sd_z_err", "khat", "ms_per_step",
        "total_s", "diverged_seeds", "seeds", "error", "latent_dim")


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def within_noise(a: float, b: float) -> bool:
    """``a >= b`` up to noise: 1 nat or 1% of ``|b|``, whichever is larger."""
    return _finite(a) and _finite(b) and a >= b - max(1.0, 0.01 * abs(b))


def merge_runs(folders: list[Path]) -> dict:
    """``{"runs": [settings...], "rows": [...]}`` from the ``report.json`` of each folder."""
    rows: dict[tuple, dict] = {}
    runs = []
    for folder in folders:
        report = json.loads((folder / "report.json").read_text())
        backends = sorted({r["backend"] for r in report["rows"]})
        runs.append({"folder": str(folder), "backends": backends, **report.get("settings", {})})
        for r in report["rows"]:
            row = {k: r.get(k) for k in KEEP}
            row["elbo_seeds"] = [s.get("elbo") for s in r.get("per_seed", [])]
            rows[(r["model"], r["backend"], r["guide"])] = row
    return {"runs": runs, "rows": sorted(rows.values(), key=lambda r: (r["backend"], r["model"], r["guide"]))}


def keep_other_backends(old: dict, new: dict) -> dict:
    """``new`` plus the rows and runs of ``old`` whose backend ``new`` has no row of
    (:func:`models.compare.report.keep_other_backends`), rows sorted as :func:`merge_runs` sorts them."""
    rows, runs = _keep_other_backends(old, new["rows"], new["runs"])
    return {"runs": runs, "rows": sorted(rows, key=lambda r: (r["backend"], r["model"], r["guide"]))}


def by_model(data: dict, backend: str) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for r in data["rows"]:
        if r["backend"] == backend:
            out.setdefault(r["model"], {})[r["guide"]] = r
    return out


def _all_seeds_finite(r: dict | None) -> bool:
    return r is not None and bool(r["elbo_seeds"]) and all(_finite(e) for e in r["elbo_seeds"])


def best_guide(cells: dict[str, dict]) -> str | None:
    scored = [(r["elbo_mean"], g) for g, r in cells.items() if _all_seeds_finite(r)]
    return max(scored)[1] if scored else None


def counts(data: dict, backend: str) -> dict[str, int]:
    models = by_model(data, backend)
    ours = {m: c.get("iaf") for m, c in models.items()}
    out = {"posteriors": len(models), "finite": sum(_all_seeds_finite(r) for r in ours.values())}
    for other, name in (("multivariate", "full"), ("diagonal", "diag")):
        pairs = [(c["iaf"], c[other]) for c in models.values() if "iaf" in c and other in c]
        elbo = [(a["elbo_mean"] if _all_seeds_finite(a) else -math.inf,
                 b["elbo_mean"] if _all_seeds_finite(b) else -math.inf) for a, b in pairs]
        out[f"compared_{name}"] = len(pairs)
        out[f"ge_{name}"] = sum(a >= b for a, b in elbo)
        out[f"ge_{name}_noise"] = sum(a >= b or within_noise(a, b) for a, b in elbo)
    out["nongauss"] = sum(m in models for m in NON_GAUSSIAN)
    out["best_nongauss"] = sum(best_guide(models[m]) == "iaf" for m in NON_GAUSSIAN if m in models)
    out["best"] = sum(best_guide(c) == "iaf" for c in models.values())
    out["accurate"] = sum(_finite(r["mean_z_err"]) and r["mean_z_err"] <= 0.1 and r["sd_z_err"] <= 0.1
                          for r in ours.values() if r is not None)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="comma-separated folders of models.compare runs")
    p.add_argument("--out", type=Path, default=Path("docs/bench/posteriordb_guides.json"))
    p.add_argument("--keep-other-backends", action="store_true", help="keep the rows (and runs) of "
                   "<out> whose backend these runs do not have, e.g. replace Pyro's beside NumPyro's")
    args = p.parse_args(argv)
    data = merge_runs([Path(f) for f in args.runs.split(",") if f])
    if args.keep_other_backends and args.out.exists():
        data = keep_other_backends(json.loads(args.out.read_text()), data)
    args.out.write_text(json.dumps(data, indent=1, default=lambda x: None) + "\n")
    for backend in sorted({r["backend"] for r in data["rows"]}):
        print(backend, counts(data, backend))


if __name__ == "__main__":
    main()
