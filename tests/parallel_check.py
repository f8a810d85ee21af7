"""Subprocess half of tests/test_parallel.py: ``python tests/parallel_check.py {numpyro,pyro} OUT``.

Runs a few SVI steps single-device and data-parallel from the same start and writes both runs'
losses and parameters (``OUT.npz``) and facts about the sharding (``OUT.json``); the test
compares them. Its own process because the device count (``XLA_FLAGS``) and the
``torch.distributed`` process group are process-wide.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = 3
TINY = dict(hidden=16, latent_dim=4, context_dim=4, width=16, flows=1, batch_size=8)


def _batches(n: int, B: int) -> np.ndarray:
    from models.vae import load

    x = load("digits").train[: n * B]
    return (x > 0.5).astype(np.float32).reshape(n, B, -1)


# ---- NumPyro: jax.sharding over 2 host devices ----------------------------------------------


def numpyro_case() -> tuple[dict, dict]:
    import jax

    from models.vae import VAEConfig, make_vae
    from numpyro_iaf.parallel import data_parallel_update, shard_batch

    xs = _batches(STEPS, TINY["batch_size"])
    vae = make_vae("numpyro", VAEConfig(**TINY), 8)
    svi, state0 = vae.svi, vae.state
    update = data_parallel_update(svi)
    runs = {}
    # the parallel run goes through ahead-of-time compilation (as the VAEs' warmup() does)
    for name, step in (("single", jax.jit(svi.update)), ("parallel", update.lower(state0, xs[0]).compile())):
        state, losses = state0, []
        for x in xs:
            state, loss = step(state, x)
            losses.append(loss)
        runs[name] = (np.asarray(losses), svi.get_params(state), state)
    runs["init"] = (np.zeros(STEPS), svi.get_params(state0), state0)
    direct = float(update(state0, xs[0])[1])  # the jitted call: same executable
    try:
        update(state0, xs[0][:7])
        error = ""
    except ValueError as e:
        error = str(e)
    x = shard_batch(xs[0], update.mesh)
    state = runs["parallel"][2]
    facts = {
        "devices": len(jax.devices()),
        "batch_devices": len(x.sharding.device_set),
        "shard_rows": sorted({s.data.shape[0] for s in x.addressable_shards}),
        "state_replicated": all(leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(state)),
        "state_devices": len(jax.tree.leaves(state)[0].sharding.device_set),
        "indivisible_error": error,
        "direct_first_loss": direct,
    }
    arrays = {}
    for name, (losses, params, _) in runs.items():
        if name != "init":
            arrays[f"{name}/loss"] = losses
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
            arrays[f"{name}/{jax.tree_util.keystr(path)}"] = np.asarray(leaf)
    return facts, arrays


# ---- Pyro: torch.distributed (gloo), 2 processes ---------------------------------------------


def regression_model(x, y, size: int):
    """Bayesian linear regression ``y ~ N(x w, 1)``, ``w ~ N(0, I)``; the plate scales to ``size``."""
    import pyro
    import pyro.distributions as dist
    import torch

    w = pyro.sample("w", dist.Normal(torch.zeros(x.shape[-1]), 1.0).to_event(1))
    with pyro.plate("data", size, subsample=torch.arange(len(x))):
        pyro.sample("y", dist.Normal(x @ w, 1.0), obs=y)


def _regression_data():
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, generator=g)
    return x, x @ torch.tensor([1.0, -2.0, 0.5]) + torch.randn(8, generator=g)


def _param_arrays() -> dict:
    import pyro

    return {k: v.detach().numpy().copy() for k, v in pyro.get_param_store().items()}


def _regression_svi(cls, rows: slice = slice(None), **kw):
    """``(svi, initial params)``; the guide is set up first on ``rows`` (the shapes it will see:
    a new shape re-traces the model, which draws), its random draws undone."""
    import pyro
    import torch
    from pyro.infer import Trace_ELBO

    import pyro_iaf

    pyro.clear_param_store()
    pyro.set_rng_seed(0)  # the same global draw of w on every rank and in the single run
    guide = pyro_iaf.AutoIAFNormal(regression_model, hidden_dims=[8])
    rng = torch.get_rng_state()
    x, y = _regression_data()
    guide(x[rows], y[rows], size=len(x))
    torch.set_rng_state(rng)
    init = _param_arrays()
    return cls(regression_model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO(), **kw), init


def _vae(seed_rank: int | None):
    """``(vae, initial params)`` with the networks registered in the param store."""
    import pyro

    from models.vae import VAEConfig, make_vae

    vae = make_vae("pyro", VAEConfig(**TINY), 8)
    for name in ("encoder", "decoder", "iaf"):
        pyro.module(name, getattr(vae.nets, name))
    if seed_rank is not None:
        pyro.set_rng_seed(100 + seed_rank)
    return vae, _param_arrays()


def _pyro_worker(rank: int, world_size: int, xs: np.ndarray) -> dict:
    import pyro
    import torch
    from pyro.infer import Trace_ELBO

    from pyro_iaf.parallel import DataParallelSVI

    out = {}
    x, y = _regression_data()
    b = len(x) // world_size
    svi, _ = _regression_svi(DataParallelSVI, slice(rank * b, (rank + 1) * b), reduction="mean")
    out["regression/loss"] = np.array([svi.step(x, y, size=len(x)) for _ in range(STEPS)])
    out.update({f"regression/{k}": v for k, v in _param_arrays().items()})

    vae, _ = _vae(rank)
    svi = DataParallelSVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    out["vae/loss"] = np.array([svi.step(torch.as_tensor(x)) for x in xs])
    out.update({f"vae/{k}": v for k, v in _param_arrays().items()})
    try:
        svi.step(torch.as_tensor(xs[0][:7]))
        out["indivisible_error"] = ""
    except ValueError as e:
        out["indivisible_error"] = str(e)
    out["world_size"] = svi.world_size
    return out


def _vae_reference(xs: np.ndarray, world_size: int) -> dict:
    """One process, the full batch per step: the shards' ELBO gradients accumulate (each shard
    with the random stream of its rank), then one Adam step, i.e. the sum over the batch."""
    import pyro
    import torch
    from pyro.infer import Trace_ELBO
    from pyro.infer.util import zero_grads

    vae, init = _vae(None)
    rng = []
    for r in range(world_size):
        pyro.set_rng_seed(100 + r)
        rng.append(torch.get_rng_state())
    optim, elbo, losses = pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO(), []
    for x in xs:
        total, params = 0.0, set()
        for r, xr in enumerate(np.split(x, world_size)):
            torch.set_rng_state(rng[r])
            with pyro.poutine.trace(param_only=True) as capture:
                total += elbo.loss_and_grads(vae.model, vae.guide, torch.as_tensor(xr))
            rng[r] = torch.get_rng_state()
            params |= {s["value"].unconstrained() for s in capture.trace.nodes.values()}
        optim(params)
        zero_grads(params)
        losses.append(total)
    out = {f"init/vae/{k}": v for k, v in init.items()}
    out.update({f"single/vae/{k}": v for k, v in _param_arrays().items()})
    out["single/vae/loss"] = np.array(losses)
    return out


def pyro_case() -> tuple[dict, dict]:
    import torch
    from pyro.infer import SVI

    from pyro_iaf.parallel import launch

    torch.set_num_threads(1)
    xs = _batches(STEPS, TINY["batch_size"])
    x, y = _regression_data()
    svi, init = _regression_svi(SVI)
    arrays = {"single/regression/loss": np.array([svi.step(x, y, size=len(x)) for _ in range(STEPS)])}
    arrays.update({f"single/regression/{k}": v for k, v in _param_arrays().items()})
    arrays.update({f"init/regression/{k}": v for k, v in init.items()})
    arrays.update(_vae_reference(xs, 2))
    ranks = launch(_pyro_worker, xs, world_size=2)
    facts = {"world_size": ranks[0].pop("world_size"), "indivisible_error": ranks[0].pop("indivisible_error")}
    for r in ranks[1:]:
        r.pop("world_size"), r.pop("indivisible_error")
    for rank, res in enumerate(ranks):
        arrays.update({f"rank{rank}/{k}": v for k, v in res.items()})
    return facts, arrays


if __name__ == "__main__":
    which, out = sys.argv[1], Path(sys.argv[2])
    facts, arrays = {"numpyro": numpyro_case, "pyro": pyro_case}[which]()
    np.savez(out.with_suffix(".npz"), **arrays)
    out.with_suffix(".json").write_text(json.dumps(facts))
