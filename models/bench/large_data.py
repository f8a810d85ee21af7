"""Large data, where VI should beat NUTS (issue 23): subsampled VI against NumPyro NUTS.

    python -m models.bench.large_data --model logistic|hier|both --backend numpyro|pyro|both \
        [--size small|full] [--rows N] [--steps S] [--out docs/bench/large_data.json]
    python -m models.bench.large_data --reference --model logistic|hier [--size ...] [--rows N]

Models: :mod:`models.targets.large_data` (``logistic``: N rows x F features; ``hier``: J groups
of K rows), simulated with seed 0, fitted through ``plate(..., subsample_size=batch)``:
``AutoIAFNormal`` for ``logistic`` (all latents global), ``AutoAmortizedIAF`` for ``hier`` (the
group intercepts local, the encoder reading each group's ``y`` and ``x``); batch, steps and
initial step size from ``SIZES`` (``--batch``, ``--steps``, ``--lr`` override). Adam with a step
size decaying exponentially to ``--lr-end`` (1e-4), 1 particle: Pyro through ``pyro_iaf.fit``,
NumPyro through ``numpyro_iaf.fit``'s compiled ``lax.scan`` chunks, compiled ahead so that the
compilation is timed apart, the plate's indices drawn with replacement (NumPyro's CPU default
draws them by a sequential scan; see :func:`indices_with_replacement`).

Accuracy: means and sds of 4000 guide draws of every global and of the group effects against
the reference (``--reference``: NumPyro NUTS over the full data, ``--ref-chains`` x
(``--ref-warmup`` + ``--ref-samples``), stored in ``docs/bench/large_data_reference.json``); a
coordinate passes when ``|mean - ref mean| <= 0.1 ref sd`` and ``|sd / ref sd - 1| <= 0.1``.
Time, in the same run: NumPyro NUTS to its own 1000 draws (500 warm-up, one chain) and the fits'
wall time (set-up and compilation apart). The result JSON also records the machine and its load
(``uptime``); the table of ``docs/benchmarks/large_data.md`` is rewritten from it (here, and by
``python docs/generate.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from functools import partial
from pathlib import Path

import numpy as np

from models.bench.large_data_report import GLOBALS, ROOT, accuracy, summarize, table, write_page
from models.bench.machine import cpu_name
from models.targets.large_data import FIT_KEYS, SIZES, hier_data, logistic_data

REFERENCE = ROOT / "docs" / "bench" / "large_data_reference.json"


# ---- data, configs ----------------------------------------------------------------------------


def config(model: str, size: str, rows: int | None = None) -> dict:
    """The data arguments and fit settings (``FIT_KEYS``) of ``model`` at ``size``; ``rows``
    overrides N (logistic)."""
    if model not in SIZES[size]:
        raise ValueError(f"Unknown model {model!r}; expected one of {sorted(SIZES[size])}")
    cfg = dict(SIZES[size][model])
    if rows is not None:
        if model != "logistic":
            raise ValueError("--rows applies to --model logistic only (hier: J groups of K rows)")
        cfg["num_rows"] = int(rows)
    cfg["batch"] = min(cfg["batch"], cfg.get("num_rows", cfg.get("num_groups", 0)))
    return cfg


def data(model: str, cfg: dict) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` for logistic, ``(x, y)`` for hier (float32 NumPy arrays, seed 0)."""
    if model == "logistic":
        return logistic_data(cfg["num_rows"], cfg["num_features"])
    return hier_data(cfg["num_groups"], cfg["group_size"])


def ref_key(model: str, cfg: dict) -> str:
    """The key of ``model`` at these data arguments in the reference file."""
    return model + ":" + ",".join(f"{k}={v}" for k, v in sorted(cfg.items()) if k not in FIT_KEYS)


# ---- NUTS (NumPyro) ---------------------------------------------------------------------------


def run_nuts(model: str, arrays, *, warmup: int, samples: int, chains: int = 1, seed: int = 0) -> dict:
    """NumPyro NUTS on the full data (no subsampling), chains one after another.

    Returns ``{"draws": {site: [chains * samples, ...]}, "seconds": wall time to the last draw
    (compilation included), "divergences", "min_ess", "max_rhat"}``.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.diagnostics import summary
    from numpyro.infer import MCMC, NUTS

    from models.api import bind
    from models.targets.large_data import hier_model, logistic_model

    fn = bind(logistic_model if model == "logistic" else hier_model, "numpyro")
    args = tuple(jnp.asarray(a) for a in arrays)
    mcmc = MCMC(NUTS(fn), num_warmup=warmup, num_samples=samples, num_chains=chains,
                chain_method="sequential", progress_bar=False)
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), *args, extra_fields=("diverging", "num_steps"))
    draws = mcmc.get_samples(group_by_chain=True)
    jax.block_until_ready(draws)
    seconds = time.perf_counter() - start
    stats = summary(jax.device_get(draws), group_by_chain=True)
    return {
        "draws": {k: np.asarray(v).reshape(-1, *v.shape[2:]) for k, v in draws.items()},
        "seconds": seconds,
        "divergences": int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum()),
        "leapfrog_per_draw": float(np.asarray(mcmc.get_extra_fields()["num_steps"]).mean()),
        "min_ess": float(min(np.min(s["n_eff"]) for s in stats.values())),
        "max_rhat": float(max(np.max(s["r_hat"]) for s in stats.values())) if chains > 1 else None,
    }


def load_reference(model: str, cfg: dict) -> dict:
    """The stored reference summary of ``model`` at ``cfg`` (``--reference`` makes it)."""
    refs = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    key = ref_key(model, cfg)
    if key not in refs:
        raise ValueError(f"No NUTS reference for {key} in {REFERENCE}; make it with `python -m "
                         f"models.bench.large_data --reference --model {model} ...` at the same size")
    return refs[key]


def make_reference(model: str, cfg: dict, *, warmup: int, samples: int, chains: int) -> dict:
    """Run the long NUTS reference and store its summary under :func:`ref_key`."""
    nuts = run_nuts(model, data(model, cfg), warmup=warmup, samples=samples, chains=chains, seed=1)
    ref = summarize(nuts["draws"], model)
    ref["info"] = {"warmup": warmup, "samples": samples, "chains": chains, "dtype": "float32",
                   "seconds": round(nuts["seconds"], 1), "divergences": nuts["divergences"],
                   "min_ess": round(nuts["min_ess"], 1), "max_rhat": nuts["max_rhat"],
                   "load": uptime(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    refs = json.loads(REFERENCE.read_text()) if REFERENCE.exists() else {}
    refs[ref_key(model, cfg)] = _rounded(ref)
    REFERENCE.write_text(json.dumps(refs, indent=1, sort_keys=True) + "\n")
    return ref


def _rounded(x):
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_rounded(v) for v in x]
    return float(f"{x:.6g}") if isinstance(x, float) else x


# ---- VI --------------------------------------------------------------------------------------

NUM_DRAWS = 4000


def _randint_indices(size: int, subsample_size: int, rng_key=None):
    import jax

    return jax.random.randint(rng_key, (subsample_size,), 0, size)


def indices_with_replacement(fn):
    """NumPyro: ``fn`` with each of its subsampled plates drawing its indices with replacement
    (``jax.random.randint``) instead of NumPyro's CPU default, a Fisher-Yates scan of
    ``subsample_size`` sequential steps over ``arange(N)`` (its cost: ``index_ms`` in the JSON)."""
    from numpyro.primitives import Messenger

    class _WithReplacement(Messenger):
        def process_message(self, msg):
            if msg["type"] == "plate" and msg["value"] is None:
                msg["fn"] = _randint_indices

    return _WithReplacement(fn)


#: hier: the group effects' guide conditioned on the globals (``condition_on_globals``)
CONDITION_ON_GLOBALS = True


def _guide(model: str, fn, backend: str):
    """``AutoIAFNormal`` (logistic) or ``AutoAmortizedIAF`` reading each group's ``y, x`` (hier),
    its locals conditioned on the globals when :data:`CONDITION_ON_GLOBALS`."""
    from models.api import bind
    from models.targets.large_data import hier_encoder_input

    pkg = __import__("pyro_iaf" if backend == "pyro" else "numpyro_iaf")
    if model == "logistic":
        return pkg.AutoIAFNormal(fn)
    return pkg.AutoAmortizedIAF(fn, encoder_input_fn=bind(hier_encoder_input, backend),
                                condition_on_globals=CONDITION_ON_GLOBALS)


def _check_average(average_last: int, steps: int, final_steps: int) -> None:
    """The iterates averaged must lie in the last phase (the final one if any)."""
    if not 0 <= average_last <= (final_steps or steps):
        raise ValueError(f"average_last must be in [0, {final_steps or steps}] (the last phase's steps)")


def fit_numpyro(model: str, arrays, *, batch: int, steps: int, lr: float, lr_end: float,
                seed: int = 0, replace: bool = True, num_draws: int = NUM_DRAWS,
                final_steps: int = 0, final_batch: int | None = None, final_lr: float = 1e-3,
                final_lr_end: float | None = None, average_last: int = 0) -> dict:
    """Subsampled SVI in NumPyro: ``fit``'s compiled chunks of ``numpyro_iaf.fit.CHUNK`` steps,
    compiled ahead (``compile_s``) and run (``run_s``); ``summary`` of ``num_draws`` draws. Then
    ``final_steps`` more with ``final_batch`` rows a step (None: all, no subsampling), Adam from
    ``final_lr`` decaying to ``final_lr_end`` (None: ``lr_end``): the larger batch ends the
    subsampling noise of the last iterates (a growing batch in place of a vanishing step, Smith
    et al. 2018), with a fresh Adam on the first phase's parameters. ``average_last > 0``: the
    guide's parameters are the mean of the last ``average_last`` iterates (unconstrained;
    Polyak-Ruppert tail averaging) instead of the last."""
    import jax
    import jax.numpy as jnp
    import numpyro
    from jax.example_libraries.optimizers import exponential_decay
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.primitives import _subsample_fn

    from models.api import bind
    from models.targets.large_data import hier_model, logistic_model
    from numpyro_iaf.fit import CHUNK, split_large_arrays, tail_mean

    fn = bind(logistic_model if model == "logistic" else hier_model, "numpyro")
    fn = indices_with_replacement(fn) if replace else fn
    args = tuple(jnp.asarray(a) for a in arrays)
    guide = _guide(model, fn, "numpyro")
    total = steps + final_steps
    _check_average(average_last, steps, final_steps)
    times = {"init_s": 0.0, "compile_s": 0.0, "run_s": 0.0}
    losses: list = []

    # hier: the guide's plate draws the groups (the model replays them), with replacement when ``replace``
    stepped = indices_with_replacement(guide) if (replace and model == "hier") else guide

    def make_svi(lr, lr_end, n):
        return SVI(fn, stepped, numpyro.optim.Adam(exponential_decay(lr, n, lr_end / lr)), Trace_ELBO())

    large, rebuild = split_large_arrays(args)  # as ``fit``: the data enter as arguments, not constants

    def chunk(svi, carry, large, subsample_size):
        """``CHUNK`` steps; ``carry = (state, mean of the unconstrained iterates so far, steps so far)``,
        the mean over the steps past ``total - average_last``."""
        def body(carry, _):
            state, mean, done = carry
            state, loss = svi.update(state, *rebuild(large), subsample_size=subsample_size)
            if average_last:
                mean = tail_mean(mean, svi.optim.get_params(state.optim_state), done, total, average_last)
            return (state, mean, done + 1), loss

        return jax.lax.scan(body, carry, None, CHUNK)

    svi = make_svi(lr, lr_end, steps)
    start = time.perf_counter()
    state = svi.init(jax.random.PRNGKey(seed), *args, subsample_size=batch)
    times["init_s"] = time.perf_counter() - start
    zero = jax.tree.map(jnp.zeros_like, svi.optim.get_params(state.optim_state)) if average_last else None
    carry = (state, zero, jnp.zeros((), jnp.int32))
    phases = [(svi, steps, batch)]
    if final_steps:
        end = lr_end if final_lr_end is None else final_lr_end
        phases.append((make_svi(final_lr, end, final_steps), final_steps, final_batch))
    for k, (svi, n, subsample_size) in enumerate(phases):
        if k:  # a fresh Adam on the current parameters (no second ``svi.init``: same guide, same sites)
            state, first = carry[0], phases[0][0]
            state = state._replace(optim_state=svi.optim.init(first.optim.get_params(state.optim_state)))
            svi.constrain_fn = first.constrain_fn
            carry = (state, *carry[1:])
        start = time.perf_counter()
        lowered = jax.jit(partial(chunk, svi), static_argnums=2).lower(carry, large, subsample_size)
        compiled = lowered.compile()
        times["compile_s"] += time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(-(-n // CHUNK)):
            carry, values = compiled(carry, large)
            losses.append(values)
        jax.block_until_ready(carry)
        times["run_s"] += time.perf_counter() - start
    state, mean, _ = carry
    params = svi.constrain_fn(mean) if average_last else svi.get_params(state)
    losses = np.concatenate(jax.device_get(losses))
    key = jax.random.PRNGKey(12345)
    extra = () if model == "logistic" else args
    draws = guide.sample_posterior(key, params, *extra, sample_shape=(num_draws,))
    sampler = _randint_indices if replace else _subsample_fn
    draw = jax.jit(lambda k: sampler(len(arrays[0]), batch, k))
    return {"summary": summarize(jax.device_get(draws), model), **times,
            "steps": int(len(losses)), "final_loss": float(np.mean(losses[-100:])),
            "index_ms": _ms(lambda i: jax.block_until_ready(draw(jax.random.PRNGKey(i))))}


def fit_pyro(model: str, arrays, *, batch: int, steps: int, lr: float, lr_end: float,
             seed: int = 0, num_draws: int = NUM_DRAWS, final_steps: int = 0, final_batch: int | None = None,
             final_lr: float = 1e-3, final_lr_end: float | None = None, average_last: int = 0) -> dict:
    """Subsampled SVI in Pyro: ``pyro_iaf.fit`` with ``ClippedAdam`` (``lrd`` per step, no
    clipping: Adam with a decay), eager (``run_s`` includes the guide's set-up); then the final
    phase of :func:`fit_numpyro` (a fresh Adam on the fitted parameters); ``average_last`` as there
    (``fit``'s own, in the last phase)."""
    import pyro
    import torch

    from models.api import bind
    from models.targets.large_data import hier_model, logistic_model
    from pyro_iaf import fit

    torch.set_num_threads(1)
    pyro.clear_param_store()
    fn = bind(logistic_model if model == "logistic" else hier_model, "pyro")
    args = tuple(torch.as_tensor(a) for a in arrays)
    guide = _guide(model, fn, "pyro")

    def phase(lr, lr_end, steps, subsample_size, seed, average=0) -> list[float]:
        """``steps`` Adam steps (``lr`` decaying to ``lr_end``: ``ClippedAdam``'s ``lrd`` per step,
        no clipping) from the guide's current parameters; their losses."""
        decay = (lr_end / lr) ** (1 / steps)
        optim = pyro.optim.ClippedAdam({"lr": lr, "lrd": decay, "clip_norm": float("inf")})
        return list(fit(fn, guide, *args, subsample_size=subsample_size, optim=optim, num_steps=steps,
                        seed=seed, progress_bar=False, average_last=average).losses)

    _check_average(average_last, steps, final_steps)
    start = time.perf_counter()
    losses = phase(lr, lr_end, steps, batch, seed, 0 if final_steps else average_last)
    if final_steps:
        end = lr_end if final_lr_end is None else final_lr_end
        losses += phase(final_lr, end, final_steps, final_batch, seed + 1, average_last)
    run_s = time.perf_counter() - start
    with torch.no_grad():
        extra = () if model == "logistic" else args
        draws = guide.sample_posterior(num_draws, *extra, seed=12345)
    N = len(arrays[0])
    return {"summary": summarize({k: v.numpy() for k, v in draws.items()}, model), "init_s": None,
            "compile_s": None, "run_s": run_s, "steps": len(losses),
            "final_loss": float(np.mean(losses[-100:])),
            "index_ms": _ms(lambda i: torch.randperm(N)[:batch])}


def _ms(fn, repeats: int = 20) -> float:
    """Median milliseconds of ``fn(i)`` over ``repeats`` calls (after one warm call)."""
    fn(0)
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        fn(i + 1)
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


# ---- the machine ------------------------------------------------------------------------------


def uptime() -> str:
    """``uptime``'s load averages (1, 5, 15 minutes)."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> str:
    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


# ---- one run: NUTS timing and the fits, side by side -------------------------------------------


def grad_ms(model: str, arrays) -> float:
    """Milliseconds of one full-data gradient of the log joint in NumPyro (what NUTS pays per
    leapfrog step), at the prior median."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer.util import log_density

    from models.api import bind
    from models.targets.large_data import hier_model, logistic_model

    fn = bind(logistic_model if model == "logistic" else hier_model, "numpyro")
    args = tuple(jnp.asarray(a) for a in arrays)
    if model == "logistic":
        point = {"alpha": jnp.zeros(()), "beta": jnp.zeros(arrays[0].shape[1])}
    else:
        point = {k: jnp.ones(()) for k in GLOBALS["hier"]} | {"intercepts": jnp.ones(arrays[0].shape[0])}
    grad = jax.jit(jax.grad(lambda v: log_density(fn, args, {}, v)[0]))
    return _ms(lambda i: jax.block_until_ready(grad(point)))


def run(opts, models: list[str]) -> dict:
    """Fit every model with every backend and time NUTS, in one process; write ``opts.out``."""
    backends = ["numpyro", "pyro"] if opts.backend == "both" else [opts.backend]
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result = {"machine": machine(), "load_start": uptime(), "date": date,
              "command": "python -m models.bench.large_data " + " ".join(opts.argv), "rows": []}
    for model in models:
        cfg = config(model, opts.size, opts.rows if model == "logistic" else None)
        batch, steps, lr = opts.batch or cfg["batch"], opts.steps or cfg["steps"], opts.lr or cfg["lr"]
        ref = load_reference(model, cfg)
        arrays = data(model, cfg)
        N = len(arrays[0])
        nuts = run_nuts(model, arrays, warmup=opts.nuts_warmup, samples=opts.nuts_samples)
        common = {"model": model, "config": {k: v for k, v in cfg.items() if k not in FIT_KEYS},
                  "reference": ref["info"]}
        row = {**common, "method": "nuts", "backend": "numpyro", "seconds": nuts["seconds"],
               "warmup": opts.nuts_warmup, "samples": opts.nuts_samples, "divergences": nuts["divergences"],
               "min_ess": nuts["min_ess"], "leapfrog_per_draw": nuts["leapfrog_per_draw"],
               "grad_ms": grad_ms(model, arrays),
               "accuracy": accuracy(summarize(nuts["draws"], model), ref)}
        result["rows"].append(row)
        print(json.dumps(row), flush=True)
        lr_end = opts.lr_end if opts.lr_end is not None else cfg.get("lr_end", 1e-4)
        final_steps = opts.final_steps if opts.final_steps is not None else cfg.get("final_steps", 0)
        final = {}
        if final_steps:
            final = {"final_steps": final_steps, "final_batch": opts.final_batch or None,
                     "final_lr": opts.final_lr or cfg.get("final_lr", 1e-2),
                     "final_lr_end": cfg.get("final_lr_end", 1e-4)}
        average = opts.average_last if opts.average_last is not None else cfg.get("average_last", 0)
        kw = {"batch": batch, "steps": steps, "lr": lr, "lr_end": lr_end, **final, "average_last": average}
        final_rows = final.get("final_steps", 0) * (final.get("final_batch") or N)
        for backend in backends:
            fit = fit_numpyro(model, arrays, **kw) if backend == "numpyro" else fit_pyro(model, arrays, **kw)
            row = {**common, "method": "vi", "backend": backend, "batch": batch, "lr": [lr, lr_end],
                   "final": final or None, "average_last": average,
                   "epochs": (steps * batch + final_rows) / N,
                   "seconds": fit["run_s"] + (fit["compile_s"] or 0) + (fit["init_s"] or 0),
                   **{k: v for k, v in fit.items() if k != "summary"},
                   "accuracy": accuracy(fit["summary"], ref)}
            result["rows"].append(row)
            print(json.dumps(row), flush=True)
    result["load_end"] = uptime()
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_rounded(result), indent=1) + "\n")
    if not opts.no_page and out.resolve() == (ROOT / "docs" / "bench" / "large_data.json").resolve():
        write_page()
    print(table(result))
    return result


# ---- schedules: which fit settings reach the criterion -------------------------------------------

#: by rows: (subsampled steps, their Adam lr from -> to, final full-data steps, their lr from -> to,
#: iterates averaged at the end)
SCHEDULES = {
    200_000: [(3000, 5e-2, 1e-4, 0, None), (300, 5e-2, 1e-3, 700, 1e-2), (500, 5e-2, 1e-2, 1000, 1e-2),
              (500, 5e-2, 1e-2, 1500, 1e-2), (1000, 5e-2, 1e-2, 600, 1e-2), (1500, 5e-2, 1e-2, 1000, 1e-2),
              (1500, 5e-2, 5e-3, 800, 5e-3), (2000, 5e-2, 1e-2, 700, 1e-2)],
    1_000_000: [(1500, 5e-2, 5e-3, 800, 5e-3), (4000, 5e-2, 5e-3, 800, 5e-3), (3000, 5e-2, 1e-2, 1000, 1e-2),
                (6000, 5e-2, 1e-2, 600, 1e-2), (6000, 5e-2, 5e-3, 0, None, None, 3000),
                (3000, 5e-2, 1e-2, 700, 1e-2, 1e-3, 400), (2000, 5e-2, 1e-2, 800, 1e-2, 1e-3, 500),
                (3000, 5e-2, 1e-2, 800, 1e-2, 1e-3, 500), (3000, 1e-2, 1e-2, 800, 1e-2, 1e-3, 500),
                (3000, 2e-2, 1e-2, 800, 1e-2, 1e-3, 500)],
}
SCHEDULES_OUT = ROOT / "docs" / "bench" / "large_data_schedules_{rows}.json"


def run_schedules(rows: int, batch: int = 20_000, seed: int = 0) -> dict:
    """NumPyro fits of the logistic regression at ``rows`` rows under each of ``SCHEDULES[rows]``
    (one seed), scored against the stored reference at that size; writes ``SCHEDULES_OUT``."""
    cfg = config("logistic", "full", rows)
    ref, arrays = load_reference("logistic", cfg), data("logistic", cfg)
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = {"machine": machine(), "load_start": uptime(), "date": date, "batch": batch, "rows": [],
           "command": f"python -m models.bench.large_data --schedules --rows {rows}"}
    for steps, lr, lr_end, final_steps, final_lr, *rest in SCHEDULES[rows]:
        final_end, average = (rest + [None, 0])[:2] if rest else (1e-4, 0)
        final_end = 1e-4 if final_end is None else final_end
        fit = fit_numpyro("logistic", arrays, batch=batch, steps=steps, lr=lr, lr_end=lr_end, seed=seed,
                          final_steps=final_steps, final_lr=final_lr or 1e-2, final_lr_end=final_end,
                          average_last=average)
        row = {"steps": steps, "lr": [lr, lr_end], "final_steps": final_steps, "run_s": fit["run_s"],
               "final_lr": [final_lr, final_end], "average_last": average,
               "accuracy": accuracy(fit["summary"], ref)["globals"]}
        out["rows"].append(row)
        print(json.dumps(row), flush=True)
    out["load_end"] = uptime()
    Path(str(SCHEDULES_OUT).format(rows=rows)).write_text(json.dumps(_rounded(out), indent=1) + "\n")
    return out


# ---- the command ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["logistic", "hier", "both"], default="both")
    parser.add_argument("--backend", choices=["numpyro", "pyro", "both"], default="both")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--rows", type=int, default=None, help="N of logistic (default: the size's)")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the size's)")
    parser.add_argument("--batch", type=int, default=None, help="rows (logistic) / groups (hier) a step")
    parser.add_argument("--lr", type=float, default=None, help="initial Adam step (default: the size's)")
    parser.add_argument("--lr-end", type=float, default=None, help="(default: the size's, else 1e-4)")
    parser.add_argument("--final-steps", type=int, default=None,
                        help="steps of a final phase on --final-batch rows (default: the size's, else 0)")
    parser.add_argument("--final-batch", type=int, default=0, help="rows (groups) a final step (0: all)")
    parser.add_argument("--final-lr", type=float, default=None, help="(default: the size's, else 1e-2)")
    parser.add_argument("--average-last", type=int, default=None,
                        help="fitted parameters: the mean of this many last iterates (default: the size's)")
    parser.add_argument("--nuts-warmup", type=int, default=500)
    parser.add_argument("--nuts-samples", type=int, default=1000)
    parser.add_argument("--reference", action="store_true", help="make the NUTS reference and stop")
    parser.add_argument("--schedules", action="store_true",
                        help="logistic at --rows: NumPyro fits under each of SCHEDULES[rows], then stop")
    parser.add_argument("--ref-warmup", type=int, default=1000)
    parser.add_argument("--ref-samples", type=int, default=3000)
    parser.add_argument("--ref-chains", type=int, default=1)
    parser.add_argument("--out", default="docs/bench/large_data.json")
    parser.add_argument("--no-page", action="store_true", help="do not rewrite the docs page")
    opts = parser.parse_args(argv)
    opts.argv = list(argv) if argv is not None else __import__("sys").argv[1:]
    models = ["logistic", "hier"] if opts.model == "both" else [opts.model]
    if opts.schedules:
        run_schedules(opts.rows or SIZES[opts.size]["logistic"]["num_rows"])
        return
    if opts.reference:
        for model in models:
            cfg = config(model, opts.size, opts.rows if model == "logistic" else None)
            ref = make_reference(model, cfg, warmup=opts.ref_warmup, samples=opts.ref_samples,
                                 chains=opts.ref_chains)
            print(ref_key(model, cfg), json.dumps(ref["info"]), flush=True)
        return
    run(opts, models)


if __name__ == "__main__":
    main()
