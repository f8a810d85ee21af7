"""Compare guides on the benchmark models: ELBO, IS log-evidence, PSIS k-hat, moment errors, speed.

    python -m models.compare --models linear_gaussian,funnel --guides diagonal,multivariate,iaf_builtin,iaf \\
        --backend numpyro --steps 2000 --seeds 3 --out results/
    python -m models.compare --models linear_gaussian:D=100,eight_schools --backend both
    python -m models.compare --suite posteriordb --backend numpyro --seeds 1   # the 45 posteriors

Every flag is optional (defaults: all registered models (``--suite posteriordb``: the 45
posteriors of :mod:`models.posteriordb`, also accepted by name in ``--models``), guides diagonal,
multivariate, iaf_builtin, iaf, both backends, 2000 steps of Adam(1e-2) with 1 particle, 3 seeds, 1000
evaluation draws, every guide started at init_to_median). A model takes keyword arguments after a
colon: ``linear_gaussian:D=100``. Writes ``<out>/report.md``, ``<out>/report.json`` (one row per
model x guide x backend, see :mod:`models.compare.report`), ``<out>/elbo_<model>_<backend>.png``,
``<out>/marginals_<model>_<backend>.png``, per-cell traces in ``<out>/cells/`` (``--resume``
skips cells already there) and, with ``--export-samples``, ArviZ InferenceData files
``<out>/samples/<model>_<guide>_<backend>.nc`` (constrained draws, one chain per seed).
``--merge DIR,DIR --out OUT`` only joins the reports of earlier runs (e.g. one per backend).
A diverging guide (NaN/Inf loss) gives a NaN row with ``diverged_step``; any other exception in a
cell is reported in the row's ``error`` field; neither stops the run.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import traceback
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from models.compare.cells import CellResult, run_cell
from models.compare.report import (
    merge_reports,
    nan_row,
    plot_elbo,
    plot_marginals,
    read_rows,
    summarize,
    write_report,
)

DEFAULT_GUIDES = ("diagonal", "multivariate", "iaf_builtin", "iaf")
MAX_PLOT_DRAWS = 1000


def parse_models(text: str) -> list[tuple[str, str, dict]]:
    """``"linear_gaussian:D=100,funnel"`` -> ``[(label, name, kwargs)]`` (label
    ``linear_gaussian_D100`` for file names and rows; values parsed as int, float or str)."""
    from models.targets.registry import MODELS, is_known

    out = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, *pairs = item.split(":")
        if not is_known(name):
            raise ValueError(f"Unknown model {name!r}; registered: {sorted(MODELS)} or a "
                             "posteriordb name (models.posteriordb.POSTERIOR_NAMES)")
        kwargs = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise ValueError(f"Expected key=value after {name}:, got {pair!r}")
            kwargs[key] = _number(value)
        label = name + "".join(f"_{k}{v}" for k, v in kwargs.items())
        out.append((label, name, kwargs))
    return out


def _number(text: str):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def reference_draws(spec, num: int = MAX_PLOT_DRAWS) -> np.ndarray | None:
    """Exact draws of the flat latent where the model has an exact sampler, else None."""
    from models.targets.banana import banana_sample
    from models.targets.funnel import funnel_sample

    if spec.name == "funnel":
        return funnel_sample(spec.config["D"], num, seed=1)
    if spec.name == "banana":
        return banana_sample(num, spec.config["b"], spec.config["sigma"], seed=1)
    return None


def _cell_path(out: Path, label: str, backend: str, guide: str) -> Path:
    return out / "cells" / f"{label}_{backend}_{guide}.npz"


def _save_cell(path: Path, results: list[CellResult], steps: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    losses = np.full((max(1, len(results)), steps), np.nan)
    for i, r in enumerate(results):
        n = min(steps, len(r.losses))
        losses[i, :n] = r.losses[:n]
    z = next((r.z[:MAX_PLOT_DRAWS] for r in results if r.z is not None), np.zeros((0, 0)))
    np.savez_compressed(path, losses=losses, z=z)


def _export_samples(path: Path, results: list[CellResult]) -> None:
    """Constrained draws of every site as ArviZ InferenceData (chain = seed; diverged seeds
    left out), the unconstrained vector as ``latent_unconstrained``, ``log_weight`` in
    sample_stats."""
    import arviz as az

    ok = [r for r in results if r.log_w is not None]
    if not ok:
        return
    n = min(len(r.log_w) for r in ok)
    posterior = {k: np.stack([r.samples[k][:n] for r in ok]) for k in ok[0].samples}
    posterior["latent_unconstrained"] = np.stack([r.z[:n] for r in ok])
    idata = az.from_dict(posterior=posterior,
                         sample_stats={"log_weight": np.stack([r.log_w[:n] for r in ok])})
    path.parent.mkdir(parents=True, exist_ok=True)
    idata.to_netcdf(str(path))


def _plot_group(out: Path, label: str, backend: str, guides, spec) -> None:
    traces, draws = {}, {}
    for guide in guides:
        path = _cell_path(out, label, backend, guide)
        if path.exists():
            with np.load(path) as f:
                traces[guide] = list(f["losses"])
                draws[guide] = f["z"] if f["z"].size else None
    if not traces:
        return
    title = f"{label} ({backend})"
    ref = spec.reference
    plot_elbo(out / f"elbo_{label}_{backend}.png", traces,
              None if ref is None else ref.log_evidence, title)
    plot_marginals(out / f"marginals_{label}_{backend}.png", draws, spec, reference_draws(spec),
                   title + ": unconstrained z[0], z[1]")


def run(models: str, guides: str = ",".join(DEFAULT_GUIDES), backend: str = "both",
        steps: int = 2000, seeds: int = 3, lr: float = 1e-2, particles: int = 1,
        eval_samples: int = 1000, init: str | None = "median", out: str | Path = "results",
        export_samples: bool = False, resume: bool = False, progress: bool = True) -> list[dict]:
    """Run every model x backend x guide cell (``seeds`` fits each); write and return the rows."""
    from models.targets.registry import get_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model_list = parse_models(models)
    guide_list = [g.strip() for g in guides.split(",") if g.strip()]
    backends = ["pyro", "numpyro"] if backend == "both" else [b.strip() for b in backend.split(",")]
    for b in backends:
        if b not in ("pyro", "numpyro"):
            raise ValueError(f"Unknown backend {b!r}; expected pyro, numpyro or both")
    settings = {"steps": steps, "lr": lr, "particles": particles, "seeds": seeds,
                "eval_samples": eval_samples, "init": init, "machine": _machine(),
                "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")}
    done = {}
    if resume and (out / "report.json").exists():
        for r in read_rows(out / "report.json"):
            if r.get("config") == _config(steps, lr, particles, seeds, eval_samples, init):
                done[(r["model"], r["backend"], r["guide"])] = r
    rows = []
    bar = tqdm(total=len(model_list) * len(backends) * len(guide_list) * seeds, disable=not progress,
               desc="cells")
    for label, name, kwargs in model_list:
        for b in backends:
            try:
                spec = get_model(name, backend=b, **kwargs)
            except Exception as exc:  # noqa: BLE001 - reported in the rows
                for g in guide_list:
                    rows.append(nan_row(label, g, b, error=_describe(exc)))
                    bar.update(seeds)
                write_report(rows, out, settings)
                continue
            for g in guide_list:
                key = (label, b, g)
                if key in done and _cell_path(out, label, b, g).exists():
                    rows.append(done[key])
                    bar.update(seeds)
                    continue
                rows.append(_run_one(spec, label, g, b, seeds, steps, lr, particles, eval_samples,
                                     init, out, export_samples, bar))
                write_report(rows, out, settings)
            try:
                _plot_group(out, label, b, guide_list, spec)
            except Exception as exc:  # noqa: BLE001 - a plot must not end the run
                tqdm.write(f"plot {label} {b} failed: {_describe(exc)}")
    bar.close()
    write_report(rows, out, settings)
    return rows


def _run_one(spec, label, guide, backend, seeds, steps, lr, particles, eval_samples, init, out,
             export_samples, bar) -> dict:
    results, error, cache = [], None, {}
    for seed in range(seeds):
        bar.set_description(f"{label} {backend} {guide} seed {seed}")
        try:
            results.append(run_cell(spec, guide, seed=seed, steps=steps, lr=lr, particles=particles,
                                    eval_samples=eval_samples, init=init, guide_cache=cache))
        except FloatingPointError as exc:  # NonFiniteLossError of pyro_iaf / numpyro_iaf
            results.append(CellResult(np.zeros(0), diverged_step=_step_of(exc)))
        except Exception as exc:  # noqa: BLE001 - reported in the row
            error = _describe(exc)
            tqdm.write(f"{label} {backend} {guide} seed {seed}: {error}")
            bar.update(seeds - seed)
            break
        bar.update(1)
    row = summarize(results, model=label, guide=guide, backend=backend, spec=spec)
    row.update(error=error, latent_dim=spec.latent_dim,
               config=_config(steps, lr, particles, seeds, eval_samples, init))
    if results:
        _save_cell(_cell_path(out, label, backend, guide), results, steps)
        if export_samples:
            _export_samples(out / "samples" / f"{label}_{guide}_{backend}.nc", results)
    return row


def _config(steps, lr, particles, seeds, eval_samples, init) -> dict:
    return {"steps": steps, "lr": lr, "particles": particles, "seeds": seeds,
            "eval_samples": eval_samples, "init": init}


def _step_of(exc: Exception) -> int:
    import re

    m = re.search(r"at step (\d+)", str(exc))
    return int(m.group(1)) if m else -1


def _describe(exc: Exception) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    loc = f" ({Path(where.filename).name}:{where.lineno})" if where else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{loc}"


def _machine() -> str:
    return f"{platform.machine()} {platform.processor() or ''} ({os.cpu_count()} cores)".replace("  ", " ")


def main(argv: list[str] | None = None) -> list[dict]:
    from models.targets.registry import MODELS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=None, help="comma-separated, name[:key=value] (default: "
                   "the suite)")
    p.add_argument("--suite", default="targets", choices=("targets", "posteriordb"),
                   help="the models when --models is not given: the registered targets or the "
                   "45 posteriordb posteriors")
    p.add_argument("--guides", default=",".join(DEFAULT_GUIDES))
    p.add_argument("--backend", default="both", help="pyro, numpyro or both")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--particles", type=int, default=1)
    p.add_argument("--eval-samples", type=int, default=1000, help="draws for ELBO, IS log Z, k-hat")
    p.add_argument("--init", default="median", help="init_to_<init> for every guide; 'default' "
                   "keeps each guide's own")
    p.add_argument("--out", default="results/compare")
    p.add_argument("--export-samples", action="store_true", help="ArviZ .nc files of the draws")
    p.add_argument("--resume", action="store_true", help="skip cells already in <out>")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--merge", default=None, help="DIR,DIR,...: only merge the report.json of "
                   "earlier runs into <out>/report.md and report.json")
    args = p.parse_args(argv)
    if args.merge:
        md, _ = merge_reports([d for d in args.merge.split(",") if d], Path(args.out))
        print(md.read_text())
        return read_rows(Path(args.out) / "report.json")
    import torch

    torch.set_num_threads(args.threads)
    if args.models is None:
        from models.posteriordb import POSTERIOR_NAMES

        args.models = ",".join(POSTERIOR_NAMES if args.suite == "posteriordb" else MODELS)
    rows = run(args.models, args.guides, args.backend, args.steps, args.seeds, args.lr,
               args.particles, args.eval_samples, None if args.init == "default" else args.init,
               args.out, args.export_samples, args.resume)
    print((Path(args.out) / "report.md").read_text())
    print(f"Wrote {Path(args.out) / 'report.md'}, report.json and plots to {args.out}/")
    return rows


if __name__ == "__main__":
    main()
