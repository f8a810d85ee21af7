"""Ours under ``fit`` (not plain ``SVI``) on every posteriordb posterior: a finite ELBO or not.

    python -m models.posteriordb.fit_check --backend numpyro --steps 2000 --out results/pdb_fit_np

``numpyro_iaf.fit`` / ``pyro_iaf.fit`` with ``AutoIAFNormal(model)`` at every default (Adam 1e-2,
one particle), ``--steps`` steps, seed 0; then the ELBO from 1000 draws
(:func:`models.bench.fit_guard.fit_and_elbo`). ``fit`` raises ``NonFiniteLossError`` after
``max_skipped_steps`` non-finite steps in a row: that is recorded as a failure, as is any other
exception. Writes ``<out>/fit_check.json`` (one row per posterior) and prints a count.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from models.bench.fit_guard import fit_and_elbo
from models.compare.accuracy import Recipe

from . import POSTERIOR_NAMES, get_posterior


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("numpyro", "pyro"), default="numpyro")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--models", default="", help="comma-separated names (default: all 45)")
    p.add_argument("--out", type=Path, default=Path("results/pdb_fit"))
    args = p.parse_args(argv)
    if args.backend == "pyro":
        import torch

        torch.set_num_threads(1)
    names = [n for n in args.models.split(",") if n] or list(POSTERIOR_NAMES)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "fit_check.json"
    rows = json.loads(path.read_text())["rows"] if path.exists() else []
    done = {r["posterior"] for r in rows}
    for name in names:
        if name in done:
            continue
        t0 = time.perf_counter()
        row = {"posterior": name, "backend": args.backend, "steps": args.steps}
        try:
            spec = get_posterior(name, backend=args.backend)
            result = fit_and_elbo(spec, Recipe(steps=args.steps), seed=0, draws=args.draws)
            row["elbo"], row["error"] = result["elbo"], result["error"]
        except Exception as error:  # recorded, the run goes on
            row["elbo"], row["error"] = None, f"{type(error).__name__}: {str(error)[:300]}"
        row["finite"] = row["elbo"] is not None and math.isfinite(row["elbo"])
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(f"{name}: ELBO {row['elbo']} {row['error'] or ''} ({row['seconds']:.0f} s)", flush=True)
        path.write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    print(f"finite ELBO under fit: {sum(r['finite'] for r in rows)} of {len(rows)} ({args.backend})")


if __name__ == "__main__":
    main()
