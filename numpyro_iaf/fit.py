"""``fit``: SVI with a progress bar, a seed, and an error that owns NaN."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
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
    """``params``: ``{name: array}`` (constrained); ``losses``: one per step; ``state``: SVI state."""

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
    **kwargs,
) -> FitResult:
    """Run ``num_steps`` SVI steps (default Adam(1e-2), ``Trace_ELBO(num_particles)``), compiled
    in chunks of :data:`CHUNK` steps. Raises :class:`NonFiniteLossError` naming the first step
    whose loss is NaN or infinite.
    """
    optim = optim if optim is not None else numpyro.optim.Adam(1e-2)
    loss = loss if loss is not None else Trace_ELBO(num_particles=num_particles)
    svi = SVI(model, guide, optim, loss)
    state = svi.init(jax.random.PRNGKey(seed), *args, **kwargs)

    @partial(jax.jit, static_argnums=1)
    def run_chunk(state, length: int):
        return jax.lax.scan(lambda s, _: svi.update(s, *args, **kwargs), state, None, length=length)

    losses: list[float] = []
    with tqdm(total=num_steps, disable=not progress_bar, desc="SVI") as bar:
        while len(losses) < num_steps:
            new_state, chunk = run_chunk(state, min(CHUNK, num_steps - len(losses)))
            chunk = np.asarray(chunk)
            bad = np.flatnonzero(~np.isfinite(chunk))
            if bad.size:
                raise NonFiniteLossError.at_step(len(losses) + int(bad[0]), float(chunk[bad[0]]), None)
            state = new_state
            losses.extend(chunk.tolist())
            bar.update(len(chunk))
            bar.set_postfix(loss=f"{chunk[-1]:.4g}")
    return FitResult(svi.get_params(state), losses, state)
