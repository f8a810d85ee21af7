"""The accuracy recipe of issue 14: our ``AutoIAFNormal`` fitted by ``fit`` against NUTS.

    python -m models.compare.accuracy --backend numpyro --particles 16 --steps 20000 \\
        --lr 1e-2 --final-lr 1e-4 --psis --nuts --out results/accuracy_numpyro

(the recipe of docs/benchmarks/accuracy.md; without flags: the default budget, 1 particle, 2000
steps, constant Adam 1e-2.)

For each model (``--models``, default all of ``--suite``: ``models.targets.MODELS`` or, with
``--suite posteriordb``, the 45 posteriordb posteriors; rows are written after each model and
``--resume`` keeps them): ``guide =
AutoIAFNormal(model)`` (``make_guide("iaf")``: defaults, ``init_to_median``) fitted by
``numpyro_iaf.fit`` / ``pyro_iaf.fit`` with ``num_particles=--particles``, ``num_steps=--steps``
and Adam whose step size decays exponentially from ``--lr`` to ``--final-lr`` over the steps
(NumPyro ``Adam(exponential_decay(...))``; Pyro ``ClippedAdam`` with ``lrd``, clipping off);
``--guide-option NAME=VALUE``
passes keywords to ``AutoIAFNormal`` (e.g. ``stl=False``, ``num_flows=2``);
then ``--draws`` draws of the unconstrained latent vector are scored against the model's
reference (exact or NUTS) with :func:`models.compare.evidence.moment_errors`. A model passes
when mean err <= 0.1 and sd err <= 0.1 (issue 14). ``--psis`` adds the PSIS-reweighted moments.
``--nuts`` times NumPyro NUTS (1 chain, 1000 warm-up + 1000 draws, the reference's settings:
target accept, dense mass, non-centered sites; float32 like the fit) in the same process right
after each fit. "fit s" is the wall time of ``fit`` including compilation (NumPyro) and setup.
Writes ``--out/accuracy.md`` (table) and ``--out/accuracy.json`` (rows and settings).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.compare.cells import _numpyro_weights_fn, _pyro_weights
from models.compare.evidence import moment_errors, psis_khat
from models.compare.guides import _init_fn, make_guide
from models.targets import MODELS, get_model

#: issue 14: posterior means within 0.1 sd and sds within 10%
TOLERANCE = 0.1


@dataclass(frozen=True)
class Recipe:
    """``fit`` settings: Adam from ``lr`` decaying exponentially to ``final_lr`` (None: constant);
    ``guide_options``: ``(name, value)`` pairs passed to ``AutoIAFNormal`` (empty: ``make_guide("iaf")``)."""

    steps: int = 2000
    particles: int = 1
    lr: float = 1e-2
    final_lr: float | None = None
    guide_options: tuple[tuple[str, object], ...] = ()
    init: str | None = "median"


def make_optim(backend: str, recipe: Recipe):
    """Adam with step size ``lr * (final_lr / lr) ** (t / steps)`` in ``backend``'s own optimizer."""
    rate = 1.0 if recipe.final_lr is None else recipe.final_lr / recipe.lr
    if backend == "numpyro":
        import numpyro
        from jax.example_libraries.optimizers import exponential_decay

        step_size = recipe.lr if rate == 1.0 else exponential_decay(recipe.lr, recipe.steps, rate)
        return numpyro.optim.Adam(step_size)
    import pyro

    if rate == 1.0:
        return pyro.optim.Adam({"lr": recipe.lr})
    return pyro.optim.ClippedAdam({"lr": recipe.lr, "lrd": rate ** (1.0 / recipe.steps),
                                   "clip_norm": math.inf})


def psis_moment_errors(z: np.ndarray, log_w: np.ndarray, mean, sd) -> tuple[float, float]:
    """:func:`moment_errors` of the PSIS-smoothed importance-weighted moments of ``z [N, D]``."""
    import warnings

    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw, _ = az.psislw(np.asarray(log_w, np.float64), reff=1.0)
    w = np.exp(lw - lw.max())
    w /= w.sum()
    m = w @ z
    s = np.sqrt(w @ (z - m) ** 2 * (1.0 / (1.0 - (w**2).sum())))
    return (float(np.sqrt(np.mean(((m - mean) / sd) ** 2))),
            float(np.sqrt(np.mean((s / sd - 1) ** 2))))


def fit_and_score(spec, recipe: Recipe, *, seed: int = 0, draws: int = 4000) -> dict:
    """Fit ``make_guide("iaf")`` to ``spec`` with ``recipe``; moment errors of ``draws`` draws.

    Returns ``{"fit_s", "mean_err", "sd_err", "pass", "khat", "psis_mean_err", "psis_sd_err",
    "final_loss", "note"}``; a fit that hits a NaN loss gives NaN errors and the step in "note".
    """
    guide = _make_guide(spec, recipe)
    args, kwargs = spec.model_args, spec.model_kwargs
    row = {"fit_s": math.nan, "mean_err": math.nan, "sd_err": math.nan, "pass": False,
           "khat": math.nan, "psis_mean_err": math.nan, "psis_sd_err": math.nan,
           "final_loss": math.nan, "note": ""}
    loss = None  # NumPyro: fit's default (its ELBO maps every model over the particles)
    if spec.backend == "numpyro":
        import jax

        from numpyro_iaf import NonFiniteLossError, fit
    else:
        import pyro
        from pyro.infer import Trace_ELBO

        from pyro_iaf import NonFiniteLossError, fit

        pyro.clear_param_store()
        loss = Trace_ELBO(num_particles=recipe.particles,
                          vectorize_particles=spec.vectorize_particles(recipe.particles))
    t0 = time.perf_counter()
    try:
        result = fit(spec.model, guide, *args, optim=make_optim(spec.backend, recipe),
                     num_steps=recipe.steps, num_particles=recipe.particles, seed=seed,
                     progress_bar=False, loss=loss, **kwargs)
    except NonFiniteLossError as error:
        row["fit_s"] = time.perf_counter() - t0
        row["note"] = f"diverged: {str(error).splitlines()[0][:80]}"
        return row
    row["fit_s"] = time.perf_counter() - t0
    row["final_loss"] = float(np.mean(result.losses[-100:]))
    if spec.backend == "numpyro":
        weights = jax.jit(_numpyro_weights_fn(spec, guide))
        log_w, z, _ = weights(result.params, jax.random.split(jax.random.PRNGKey(seed + 1), draws))
        log_w, z = np.asarray(log_w, np.float64), np.asarray(z, np.float64)
    else:
        pyro.set_rng_seed(seed + 1)
        log_w, z, _ = _pyro_weights(spec, guide, draws)
    ref = spec.reference
    row["mean_err"], row["sd_err"] = moment_errors(z, ref.mean, ref.sd)
    row["pass"] = bool(row["mean_err"] <= TOLERANCE and row["sd_err"] <= TOLERANCE)
    row["khat"] = psis_khat(log_w)
    if np.isfinite(log_w).all():
        row["psis_mean_err"], row["psis_sd_err"] = psis_moment_errors(z, log_w, ref.mean, ref.sd)
    return row


def _make_guide(spec, recipe: Recipe):
    """Ours at its defaults, started at ``init_to_<recipe.init>`` (None: its own default start),
    with ``recipe.guide_options`` as keywords."""
    if not recipe.guide_options:
        return make_guide("iaf", spec.model, spec.latent_dim, spec.backend, init=recipe.init)
    import importlib

    pkg = importlib.import_module(f"{spec.backend}_iaf")
    options = dict(recipe.guide_options)
    if recipe.init is not None:
        module = importlib.import_module("pyro.infer.autoguide" if spec.backend == "pyro"
                                         else "numpyro.infer.initialization")
        options["init_loc_fn"] = _init_fn(recipe.init, module)
    return pkg.AutoIAFNormal(spec.model, **options)


def time_nuts(name: str, *, seed: int = 0, warmup: int = 1000, samples: int = 1000) -> dict:
    """Wall time of NumPyro NUTS on ``name`` (1 chain, the reference's settings, float32) and
    the moment errors of its draws against the reference."""
    from models.targets.make_references import DEFAULTS, OVERRIDES, nuts_draws

    settings = {**DEFAULTS, **OVERRIDES.get(name, {})}
    t0 = time.perf_counter()
    spec, draws, extra = nuts_draws(name, num_chains=1, num_warmup=warmup, num_samples=samples,
                                    seed=seed, target_accept_prob=settings["target_accept_prob"],
                                    dense_mass=settings.get("dense_mass", False))
    nuts_s = time.perf_counter() - t0
    mean_err, sd_err = moment_errors(draws.reshape(-1, draws.shape[-1]), spec.reference.mean,
                                     spec.reference.sd)
    return {"nuts_s": nuts_s, "nuts_mean_err": mean_err, "nuts_sd_err": sd_err,
            "nuts_divergences": extra["divergences"]}


def run(models: list[str], backend: str, recipe: Recipe, *, seed: int = 0, draws: int = 4000,
        nuts: bool = False, log=print) -> list[dict]:
    """One row per model: :func:`fit_and_score` (+ :func:`time_nuts` right after it)."""
    rows = []
    for name in models:
        spec = get_model(name, backend=backend)
        row = {"model": name, "D": spec.latent_dim, "source": spec.reference.source,
               **fit_and_score(spec, recipe, seed=seed, draws=draws)}
        if nuts:
            row.update(time_nuts(name, seed=seed))
            row["ratio"] = row["fit_s"] / row["nuts_s"]
        rows.append(row)
        log(" ".join(f"{k}={_fmt(v)}" for k, v in row.items()), flush=True)
    return rows


def _fmt(v) -> str:
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table(rows: list[dict], *, psis: bool = False) -> str:
    """Markdown table: model, D, mean err, sd err, pass?, fit s, NUTS s, ratio (+ the NUTS run's
    own mean err / sd err, + k-hat and the PSIS-reweighted errors with ``psis``)."""
    head = ["model", "D", "mean err", "sd err", "pass?", "fit s", "NUTS s", "ratio"]
    nuts = any("nuts_mean_err" in r for r in rows)
    if nuts:
        head += ["NUTS err"]
    if psis:
        head += ["k-hat", "PSIS mean err", "PSIS sd err"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], str(r["D"]), f"{r['mean_err']:.3f}", f"{r['sd_err']:.3f}",
                 "yes" if r["pass"] else "no", f"{r['fit_s']:.1f}",
                 f"{r['nuts_s']:.1f}" if "nuts_s" in r else "",
                 f"{r['ratio']:.2f}" if "ratio" in r else ""]
        if nuts:
            cells += [f"{r['nuts_mean_err']:.3f} / {r['nuts_sd_err']:.3f}" if "nuts_mean_err" in r else ""]
        if psis:
            cells += [f"{r['khat']:.2f}", f"{r['psis_mean_err']:.3f}", f"{r['psis_sd_err']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    passed = sum(r["pass"] for r in rows)
    lines.append("")
    lines.append(f"{passed} of {len(rows)} pass (mean err <= {TOLERANCE} and sd err <= {TOLERANCE}).")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="", help="comma-separated; default: all of --suite")
    parser.add_argument("--suite", choices=("targets", "posteriordb"), default="targets",
                        help="the comparison set's models or the 45 posteriordb posteriors")
    parser.add_argument("--resume", action="store_true", help="keep the rows already in --out")
    parser.add_argument("--backend", choices=("numpyro", "pyro"), default="numpyro")
    parser.add_argument("--particles", type=int, default=1)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--final-lr", type=float, default=None,
                        help="step size at the last step (exponential decay); default: constant")
    parser.add_argument("--guide-option", action="append", default=[], metavar="NAME=VALUE",
                        help="AutoIAFNormal keyword (Python literal), e.g. gated=False; repeatable")
    parser.add_argument("--init", default="median",
                        help="start at init_to_<init>; 'default': the guide's own default start")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--psis", action="store_true", help="add the PSIS-reweighted columns")
    parser.add_argument("--nuts", action="store_true", help="time NUTS next to each fit")
    parser.add_argument("--out", default="results/accuracy")
    args = parser.parse_args(argv)
    posteriordb = list(_posteriordb_names())
    suite = list(MODELS) if args.suite == "targets" else posteriordb
    models = [m for m in args.models.split(",") if m] or suite
    unknown = set(models) - set(MODELS) - set(posteriordb)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; choose from --suite {args.suite}: {suite}")
    if args.backend == "pyro":
        import torch

        torch.set_num_threads(1)
    options = tuple((k, ast.literal_eval(v)) for k, v in (o.split("=", 1) for o in args.guide_option))
    recipe = Recipe(args.steps, args.particles, args.lr, args.final_lr, options,
                    None if args.init == "default" else args.init)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = json.loads((out / "accuracy.json").read_text())["rows"] if args.resume and (
        out / "accuracy.json").exists() else []
    t0, load_start = time.perf_counter(), _load()
    settings = {"backend": args.backend, "recipe": asdict(recipe), "seed": args.seed,
                "draws": args.draws, "machine": f"{platform.machine()}, {_cores()} cores",
                "load_start": load_start}
    for name in models:  # written after every model, so a killed run keeps what it did
        if any(r["model"] == name for r in rows):
            continue
        rows += run([name], args.backend, recipe, seed=args.seed, draws=args.draws, nuts=args.nuts)
        settings.update(load_end=_load(), total_s=time.perf_counter() - t0)
        (out / "accuracy.json").write_text(json.dumps({"settings": settings, "rows": rows}, indent=1))
    (out / "accuracy.md").write_text(f"{json.dumps(settings)}\n\n{table(rows, psis=args.psis)}")
    print(table(rows, psis=args.psis))


def _posteriordb_names() -> tuple[str, ...]:
    from models.posteriordb import POSTERIOR_NAMES

    return POSTERIOR_NAMES


def _load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    main()
