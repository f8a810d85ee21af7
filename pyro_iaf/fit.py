"""``fit``: SVI with a progress bar, a seed, and an error that owns NaN."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from tqdm.auto import tqdm

from .checks import NonFiniteLossError

__all__ = ["fit", "FitResult"]


@dataclass
class FitResult:
    """``params``: ``{name: tensor}`` (constrained, detached); ``losses``: one per step;
    ``state``: the param store's ``get_state()`` (load it with ``set_state``)."""

    params: dict[str, torch.Tensor]
    losses: list[float]
    state: object = None


def fit(
    model: Callable,
    guide: Callable,
    *args,
    optim: pyro.optim.PyroOptim | None = None,
    num_steps: int = 1000,
    num_particles: int = 1,
    seed: int = 0,
    progress_bar: bool = True,
    loss=None,
    **kwargs,
) -> FitResult:
    """Run ``num_steps`` SVI steps (default Adam(1e-2), ``Trace_ELBO`` with vectorized particles).

    Raises :class:`NonFiniteLossError` naming the step when the loss becomes NaN or infinite.
    """
    pyro.set_rng_seed(seed)
    optim = optim if optim is not None else pyro.optim.Adam({"lr": 1e-2})
    if loss is None:
        loss = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1)
    svi = SVI(model, guide, optim, loss)
    losses: list[float] = []
    with tqdm(range(num_steps), disable=not progress_bar, desc="SVI") as bar:
        for step in bar:
            lr = getattr(optim, "pt_optim_args", {}).get("lr")
            try:
                value = svi.step(*args, **kwargs)
            except ValueError as error:  # validation saw NaN/Inf values before the loss did
                if "invalid values" not in str(error) and _all_params_finite():
                    raise
                raise NonFiniteLossError.at_step(step, math.nan, lr) from error
            if not math.isfinite(value):
                raise NonFiniteLossError.at_step(step, value, lr)
            losses.append(value)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{value:.4g}")
    params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    return FitResult(params, losses, pyro.get_param_store().get_state())


def _all_params_finite() -> bool:
    return all(bool(torch.isfinite(v).all()) for v in pyro.get_param_store().values())
