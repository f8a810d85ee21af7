"""One comparison cell: fit one guide to one model with one seed, then score it.

    result = run_cell(spec, "iaf", seed=0, steps=2000, lr=1e-2, particles=1, eval_samples=2000)

Both backends: Adam(``lr``), ``Trace_ELBO(particles)``, ``steps`` steps; a NaN/Inf loss stops the
fit (``diverged_step``). Then ``eval_samples`` draws ``z ~ q`` give the importance weights
``log w = log p(x, z) - log q(z)`` (model and guide traced together, Jacobians cancel), whose mean
is the final ELBO and whose log-mean-exp is the IS log-evidence, and the draws of the
unconstrained latent vector ``z`` (the guide's auxiliary site) for the moment errors. ms/step
excludes compilation (NumPyro: chunks after the first; Pyro: steps after the first 10).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from models.compare.guides import make_guide

#: NumPyro steps run in one compiled ``lax.scan`` between host checks.
CHUNK = 100
#: Pyro steps not timed (first-call overhead, guide setup).
PYRO_WARMUP = 10
#: Draws per vectorized evaluation batch.
EVAL_BATCH = 500


@dataclass
class CellResult:
    """One seed's fit. ``losses [steps]`` (negative ELBO per step, up to a divergence),
    ``log_w [N]``, ``z [N, D]`` unconstrained draws, ``samples`` constrained draws per site."""

    losses: np.ndarray
    diverged_step: int | None = None
    log_w: np.ndarray | None = None
    z: np.ndarray | None = None
    samples: dict = field(default_factory=dict)
    ms_per_step: float = float("nan")
    total_s: float = float("nan")


def run_cell(spec, guide_name: str, *, seed: int, steps: int, lr: float, particles: int,
             eval_samples: int, init: str | None = "median",
             guide_cache: dict | None = None) -> CellResult:
    """Fit ``guide_name`` to ``spec`` (its backend) and evaluate it; see the module docstring.

    ``init``: every guide starts at ``init_to_<init>`` (None: each guide's own default).
    ``guide_cache``: a dict kept across seeds of one cell so NumPyro compiles once per cell.
    """
    runner = {"pyro": _run_pyro, "numpyro": _run_numpyro}[spec.backend]
    return runner(spec, guide_name, seed, steps, lr, particles, eval_samples, init,
                  guide_cache if guide_cache is not None else {})


# ---- NumPyro -----------------------------------------------------------------------------------


def _run_numpyro(spec, guide_name, seed, steps, lr, particles, eval_samples, init, cache) -> CellResult:
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    args, kwargs = spec.model_args, spec.model_kwargs
    t0 = time.perf_counter()
    if "svi" not in cache:
        guide = make_guide(guide_name, spec.model, spec.latent_dim, "numpyro", init)
        svi = SVI(spec.model, guide, numpyro.optim.Adam(lr), Trace_ELBO(num_particles=particles))
        length = min(CHUNK, steps)
        run_chunk = jax.jit(lambda s: jax.lax.scan(lambda s, _: svi.update(s, *args, **kwargs), s,
                                                   None, length=length))
        cache.update(svi=svi, guide=guide, run_chunk=run_chunk, length=length,
                     eval=jax.jit(_numpyro_weights_fn(spec, guide)))
    svi, run_chunk, length = cache["svi"], cache["run_chunk"], cache["length"]
    state = svi.init(jax.random.PRNGKey(seed), *args, **kwargs)
    losses, times, diverged = [], [], None
    while len(losses) < steps:
        t = time.perf_counter()
        new_state, chunk = run_chunk(state)
        chunk = np.asarray(chunk)
        if len(losses) > 0:
            times.append((time.perf_counter() - t) * 1e3 / length)
        bad = np.flatnonzero(~np.isfinite(chunk))
        if bad.size:
            diverged = len(losses) + int(bad[0])
            losses.extend(chunk[: bad[0] + 1].tolist())
            break
        state = new_state
        losses.extend(chunk.tolist())
    losses = np.asarray(losses[: steps if diverged is None else None])
    result = CellResult(losses, diverged)
    if times:
        result.ms_per_step = float(np.median(times))
    elif diverged is None:  # one chunk only: compile time included
        result.ms_per_step = (time.perf_counter() - t0) * 1e3 / steps
    if diverged is None:
        params = svi.get_params(state)
        keys = jax.random.split(jax.random.PRNGKey(seed + 100_003), eval_samples)
        parts = [cache["eval"](params, keys[i : i + EVAL_BATCH])
                 for i in range(0, eval_samples, EVAL_BATCH)]
        result.log_w = np.concatenate([np.asarray(p[0], np.float64) for p in parts])
        result.z = np.concatenate([np.asarray(p[1], np.float64) for p in parts])
        result.samples = {k: np.concatenate([np.asarray(p[2][k]) for p in parts])
                          for k in parts[0][2]}
    result.total_s = time.perf_counter() - t0
    return result


def _numpyro_weights_fn(spec, guide):
    """``(params, keys [n]) -> (log_w [n], z [n, D], {site: [n, ...]})`` (to be jitted)."""
    import jax
    from numpyro.handlers import replay, seed
    from numpyro.infer.util import log_density

    args, kwargs = spec.model_args, spec.model_kwargs
    names = [name for name, _ in spec.sites]

    def one(params, key):
        guide_logp, guide_tr = log_density(seed(guide, key), args, kwargs, params)
        model_logp, _ = log_density(replay(spec.model, guide_tr), args, kwargs, params)
        z = _auxiliary_latent(guide_tr, spec.latent_dim)
        return model_logp - guide_logp, z, {k: guide_tr[k]["value"] for k in names}

    return jax.vmap(one, in_axes=(None, 0))


def _auxiliary_latent(trace, D: int):
    """The guide's flat unconstrained latent (its auxiliary sample site of size D)."""
    for site in trace.values():
        if site["type"] == "sample" and (site.get("infer") or {}).get("is_auxiliary"):
            if math.prod(site["value"].shape[-1:]) == D:
                return site["value"]
    raise ValueError("The guide has no auxiliary latent site of size "
                     f"{D}; only AutoContinuous guides are supported")


# ---- Pyro --------------------------------------------------------------------------------------


def _run_pyro(spec, guide_name, seed, steps, lr, particles, eval_samples, init, cache) -> CellResult:
    import pyro
    from pyro.infer import SVI, Trace_ELBO

    args, kwargs = spec.model_args, spec.model_kwargs
    t0 = time.perf_counter()
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = make_guide(guide_name, spec.model, spec.latent_dim, "pyro", init)
    elbo = Trace_ELBO(num_particles=particles, vectorize_particles=spec.vectorize_particles(particles))
    svi = SVI(spec.model, guide, pyro.optim.Adam({"lr": lr}), elbo)
    losses, diverged, t_warm = [], None, None
    for step in range(steps):
        if step == min(PYRO_WARMUP, steps - 1):
            t_warm = time.perf_counter()
        try:
            loss = svi.step(*args, **kwargs)
        except (ValueError, FloatingPointError) as exc:  # NaN parameters caught by validation
            if "nan" not in str(exc).lower() and "finite" not in str(exc).lower():
                raise
            loss = float("nan")
        losses.append(loss)
        if not math.isfinite(loss):
            diverged = step
            break
    result = CellResult(np.asarray(losses, np.float64), diverged)
    if diverged is None:
        timed = steps - min(PYRO_WARMUP, steps - 1)
        result.ms_per_step = (time.perf_counter() - t_warm) * 1e3 / timed
        result.log_w, result.z, result.samples = _pyro_weights(spec, guide, eval_samples)
    result.total_s = time.perf_counter() - t0
    return result


def _pyro_weights(spec, guide, num: int):
    """``log_w [num]``, ``z [num, D]``, ``{site: [num, *shape]}``: from vectorized traces where the
    model broadcasts over a batch of draws (``spec.batched``), else one trace per draw (a model that
    sums over every axis would mix the draws silently, as arma11 and garch11 did)."""
    if not spec.batched:
        return _pyro_weights_loop(spec, guide, num)
    try:
        return _pyro_weights_vectorized(spec, guide, num)
    except (ValueError, RuntimeError, KeyError, AssertionError):
        return _pyro_weights_loop(spec, guide, num)  # a model that does not broadcast


def _pyro_weights_loop(spec, guide, num: int):
    """As :func:`_pyro_weights`, one trace per draw (for models that do not vectorize)."""
    import pyro.poutine as poutine
    import torch

    args, kwargs = spec.model_args, spec.model_kwargs
    out_w, out_z, out_s = [], [], {name: [] for name, _ in spec.sites}
    with torch.no_grad():
        for _ in range(num):
            guide_tr = poutine.trace(guide).get_trace(*args, **kwargs)
            model_tr = poutine.trace(poutine.replay(spec.model, trace=guide_tr)).get_trace(*args, **kwargs)
            out_w.append(float(model_tr.log_prob_sum() - guide_tr.log_prob_sum()))
            sites = {k: s for k, s in guide_tr.nodes.items() if s["type"] == "sample"}
            out_z.append(_auxiliary_latent(sites, spec.latent_dim).double().numpy())
            for name, shape in spec.sites:
                out_s[name].append(guide_tr.nodes[name]["value"].reshape(shape).numpy())
    return np.asarray(out_w), np.stack(out_z), {k: np.stack(v) for k, v in out_s.items()}


def _pyro_weights_vectorized(spec, guide, num: int):
    import torch
    from pyro.infer.importance import vectorized_importance_weights

    args, kwargs = spec.model_args, spec.model_kwargs
    nesting = _max_plate_nesting(spec)
    out_w, out_z, out_s = [], [], {}
    with torch.no_grad():
        for start in range(0, num, EVAL_BATCH):
            n = min(EVAL_BATCH, num - start)
            log_w, _, guide_tr = vectorized_importance_weights(
                spec.model, guide, *args, num_samples=n, max_plate_nesting=nesting + 1, **kwargs)
            if tuple(log_w.shape) != (n,):
                raise AssertionError(f"vectorized log weights have shape {tuple(log_w.shape)}")
            z = _auxiliary_latent(
                {k: s for k, s in guide_tr.nodes.items() if s["type"] == "sample"}, spec.latent_dim)
            out_w.append(log_w.double().numpy())
            out_z.append(z.reshape(n, spec.latent_dim).double().numpy())
            for name, shape in spec.sites:
                out_s.setdefault(name, []).append(guide_tr.nodes[name]["value"].reshape(n, *shape).numpy())
    return (np.concatenate(out_w), np.concatenate(out_z),
            {k: np.concatenate(v) for k, v in out_s.items()})


def _max_plate_nesting(spec) -> int:
    import pyro.poutine as poutine

    tr = poutine.trace(spec.model).get_trace(*spec.model_args, **spec.model_kwargs)
    dims = [-f.dim for s in tr.nodes.values() if s["type"] == "sample"
            for f in s["cond_indep_stack"] if f.vectorized and f.dim is not None]
    return max(dims, default=0)
