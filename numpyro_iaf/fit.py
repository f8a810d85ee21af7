"""``fit``: SVI with a progress bar, a seed, and an error that owns NaN."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.infer import SVI, Trace_ELBO
from tqdm.auto import tqdm

from .checks import NonFiniteLossError

__all__ = ["fit", "FitResult"]

#: Steps run inside one compiled ``lax.scan`` between host checks.
CHUNK = 100


@dataclass
class FitResult:
    """``params``: ``{name: array}`` (constrained); ``losses``: one per step; ``state``: SVI state.

    Args:
        params: the fitted parameters, ``{name: value}``, constrained.
        losses: the loss (negative ELBO) of every step.
        state: the final ``SVIState`` (continue with ``svi.update``).
    """

    params: dict
    losses: list[float]
    state: object = None


def fit(
    model: Callable,
    guide: Callable,
    *args,
    optim=None,
    num_steps: int = 1000,
    num_particles: int = 1,
    seed: int = 0,
    progress_bar: bool = True,
    loss=None,
    init_params: dict | None = None,
    **kwargs,
) -> FitResult:
    """Run ``num_steps`` SVI steps (default Adam(1e-2), ``Trace_ELBO(num_particles)``), compiled
    in chunks of :data:`CHUNK` steps, from ``init_params`` (constrained values, e.g. a previous
    ``FitResult.params``) when given. Raises :class:`NonFiniteLossError` at the first step whose
    loss or updated parameters are NaN or infinite, carrying the last state with a finite loss.

    Args:
        model: the model.
        guide: the guide (any guide of the framework, ours or not).
        *args: the model's and guide's positional arguments, passed at every step (``**kwargs``
            likewise).
        optim: the optimiser (``numpyro.optim``); None gives ``Adam(1e-2)``.
        num_steps: number of SVI steps.
        num_particles: ELBO particles per step (used when ``loss`` is None).
        seed: random seed of the run.
        progress_bar: show a tqdm progress bar.
        loss: the ELBO; None gives ``Trace_ELBO(num_particles)``.
        init_params: constrained parameter values to start from, e.g. ``FitResult.params`` or
            ``NonFiniteLossError.params``.
    """
    optim = optim if optim is not None else numpyro.optim.Adam(1e-2)
    loss = loss if loss is not None else Trace_ELBO(num_particles=num_particles)
    svi = SVI(model, guide, optim, loss)
    state = svi.init(jax.random.PRNGKey(seed), *args, init_params=init_params, **kwargs)

    def step(carry, i):
        """One update. At the first unhealthy step (loss or new parameters not finite) ``good``
        keeps the last state whose loss was finite: this step's when only its update failed."""
        state, prev, good, bad = carry
        new_state, value = svi.update(state, *args, **kwargs)
        finite = jnp.isfinite(value)
        healthy = finite
        for p in jax.tree.leaves(svi.optim.get_params(new_state.optim_state)):
            healthy &= jnp.isfinite(p).all()
        first = (bad < 0) & ~healthy
        bad = jnp.where(first, i, bad)
        pick = jax.tree.map(lambda a, b: jnp.where(finite, a, b), state, prev)
        good = jax.tree.map(lambda a, b: jnp.where(first, a, b), pick, good)
        return (new_state, state, good, bad), value

    @partial(jax.jit, static_argnums=2)
    def run_chunk(state, prev, length: int):
        carry = (state, prev, state, jnp.int32(-1))
        (state, prev, good, bad), values = jax.lax.scan(step, carry, jnp.arange(length, dtype=jnp.int32))
        return state, prev, good, bad, values

    losses: list[float] = []
    prev = state
    with tqdm(total=num_steps, disable=not progress_bar, desc="SVI") as bar:
        while len(losses) < num_steps:
            state, prev, good, bad, chunk = run_chunk(state, prev, min(CHUNK, num_steps - len(losses)))
            chunk, bad = np.asarray(chunk), int(bad)
            if bad >= 0:
                losses.extend(chunk[:bad].tolist())
                params = svi.get_params(good)
                raise NonFiniteLossError.at_step(
                    len(losses), float(chunk[bad]), None, params=params, state=good, losses=losses
                )
            losses.extend(chunk.tolist())
            bar.update(len(chunk))
            bar.set_postfix(loss=f"{chunk[-1]:.4g}")
    return FitResult(svi.get_params(state), losses, state)
