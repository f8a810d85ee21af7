"""Quality per second: how long ours takes to reach another guide's final ELBO, from one comparison run.

    python -m models.compare.quality_time --runs results/pdb_np,results/compare_np \
        --out docs/bench/quality_time.json
    python -m models.compare.quality_time --runs results/compare_pyro_qt --keep-other-backends

Reads the folders of ``python -m models.compare`` (``report.json`` and the per-step training
losses in ``cells/<model>_<backend>_<guide>.npz``), so every guide was fitted in the same run,
side by side, at the same settings. For each model and each rival guide (the built-in IAF and the
full-rank Gaussian):

- the rival's **target** is its final ELBO (the 1000-draw estimate after training, mean over
  seeds) and its **time** is its training steps x its compiled ms/step;
- ours' **time to reach it** is the first step at which ours' ELBO trace (the negative training
  loss, averaged over seeds and over a trailing window of :data:`WINDOW` steps) reaches the target,
  x ours' compiled ms/step; "not reached" when that never happens in the run's steps or when ours'
  own final ELBO (the same 1000-draw estimate) is below the target.

Compilation is left out of both (``ms/step`` is measured over compiled steps; the run's
``total_s``, with compilation and evaluation, is kept beside it). A rival that diverged (NaN
ELBO) is "reached" at step 0 only if ours is finite: nothing to beat.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from models.compare.report import keep_other_backends

__all__ = ["WINDOW", "RIVALS", "time_to_reach", "analyse"]

WINDOW = 100
RIVALS = ("iaf_builtin", "multivariate")


def smoothed_elbo(losses: np.ndarray, window: int = WINDOW) -> np.ndarray:
    """``[steps]`` trailing mean over ``window`` steps of ``-losses`` averaged over seeds.

    ``losses [seeds, steps]``; a seed with a non-finite loss is left out of the mean from the start.
    """
    losses = np.atleast_2d(np.asarray(losses, np.float64))
    ok = np.isfinite(losses).all(axis=1)
    if not ok.any():
        return np.full(losses.shape[1], -np.inf)
    elbo = -losses[ok].mean(axis=0)
    c = np.cumsum(np.concatenate([[0.0], elbo]))
    n = np.minimum(np.arange(1, len(elbo) + 1), window)
    return (c[1:] - c[np.arange(1, len(elbo) + 1) - n]) / n


def time_to_reach(trace: np.ndarray, target: float) -> int | None:
    """First step (1-based) at which ``trace`` >= ``target``; None if never."""
    hit = np.nonzero(trace >= target)[0]
    return int(hit[0]) + 1 if hit.size else None


def _finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def analyse(folder: Path, rivals: tuple[str, ...] = RIVALS) -> list[dict]:
    report = json.loads((folder / "report.json").read_text())
    rows = {(r["model"], r["backend"], r["guide"]): r for r in report["rows"]}
    out = []
    for (model, backend, guide), ours in sorted(rows.items()):
        if guide != "iaf":
            continue
        cell = folder / "cells" / f"{model}_{backend}_iaf.npz"
        if not cell.exists():
            continue
        losses = np.load(cell, allow_pickle=False)["losses"]
        trace = smoothed_elbo(losses)
        steps = losses.shape[-1]
        for rival in rivals:
            r = rows.get((model, backend, rival))
            if r is None:
                continue
            target = r["elbo_mean"]
            row = {"model": model, "backend": backend, "rival": rival, "steps": steps,
                   "latent_dim": ours.get("latent_dim"),
                   "target": target if _finite(target) else None,
                   "ours_final": ours["elbo_mean"] if _finite(ours["elbo_mean"]) else None,
                   "ours_ms_per_step": ours["ms_per_step"], "rival_ms_per_step": r["ms_per_step"],
                   "ours_total_s": ours["total_s"], "rival_total_s": r["total_s"]}
            rival_s = steps * r["ms_per_step"] / 1e3 if _finite(r["ms_per_step"]) else None
            if not _finite(target):
                step = 0 if _finite(ours["elbo_mean"]) else None
            elif not _finite(ours["elbo_mean"]) or ours["elbo_mean"] < target:
                step = None  # ours' final ELBO is below the target: not reached, whatever the trace
            else:
                step = time_to_reach(trace, target)
            row["rival_s"] = rival_s
            row["reach_step"] = step
            row["ours_s"] = None if step is None else step * ours["ms_per_step"] / 1e3
            row["no_slower"] = (row["ours_s"] is not None and rival_s is not None
                                and row["ours_s"] <= rival_s) or (step == 0)
            out.append(row)
    return out


def counts(rows: list[dict], backend: str, rivals: tuple[str, ...] = RIVALS) -> dict[str, int]:
    mine = [r for r in rows if r["backend"] == backend]
    models = sorted({r["model"] for r in mine})
    both = sum(all(r["no_slower"] for r in mine if r["model"] == m) for m in models)
    out = {"models": len(models), "no_slower_both": both}
    for rival in rivals:
        rr = [r for r in mine if r["rival"] == rival]
        out[f"no_slower_{rival}"] = sum(r["no_slower"] for r in rr)
        out[f"reached_{rival}"] = sum(r["reach_step"] is not None for r in rr)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", required=True, help="comma-separated folders of models.compare runs (a "
                   "later folder's row of a model replaces an earlier one's)")
    p.add_argument("--out", type=Path, default=Path("docs/bench/quality_time.json"))
    p.add_argument("--keep-other-backends", action="store_true", help="keep the rows (and runs) of "
                   "<out> whose backend these runs do not have, e.g. add Pyro rows beside NumPyro's")
    p.add_argument("--rivals", default=",".join(RIVALS), help="comma-separated guides of the runs "
                   "whose final ELBO ours must reach (e.g. iaf_nostl: does the path-derivative pay?)")
    args = p.parse_args(argv)
    rivals = tuple(g for g in args.rivals.split(",") if g)
    rows, runs = [], []
    for f in (Path(x) for x in args.runs.split(",") if x):
        new = analyse(f, rivals)
        rows += new
        settings = json.loads((f / "report.json").read_text()).get("settings", {})
        runs.append({"folder": str(f), "backends": sorted({r["backend"] for r in new}), **settings})
    # a later folder's row replaces an earlier one of the same model, backend and rival (a rerun)
    rows = list({(r["model"], r["backend"], r["rival"]): r for r in rows}.values())
    if args.keep_other_backends and args.out.exists():
        rows, runs = keep_other_backends(json.loads(args.out.read_text()), rows, runs)
    args.out.write_text(json.dumps({"window": WINDOW, "runs": runs, "rows": rows}, indent=1) + "\n")
    for backend in sorted({r["backend"] for r in rows}):
        print(backend, counts(rows, backend, rivals))


if __name__ == "__main__":
    main()
