"""``fit``: SVI with a progress bar, a seed, and an error that owns NaN."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import pyro
import torch
from pyro import poutine
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.util import torch_item, zero_grads
from tqdm.auto import tqdm

from .checks import MAX_SKIPPED_STEPS, NonFiniteLossError, skipped_warning
from .guard import CLIP_FACTOR, GradientGuard

__all__ = ["fit", "FitResult"]


@dataclass
class FitResult:
    """``params``: ``{name: tensor}`` (constrained, detached); ``losses``: one per step;
    ``state``: the param store's ``get_state()`` (load it with ``set_state``).

    Args:
        params: the fitted parameters, ``{name: value}``, constrained.
        losses: the loss (negative ELBO) of every step (skipped steps included, as computed).
        state: the param store's ``get_state()`` at the end (load it with ``set_state``).
        skipped_steps: the steps skipped because their loss or gradient was not finite.
        clipped_steps: how many steps had their gradient clipped.
    """

    params: dict[str, torch.Tensor]
    losses: list[float]
    state: object = None
    skipped_steps: list[int] = field(default_factory=list)
    clipped_steps: int = 0


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
    init_params: dict | None = None,
    max_skipped_steps: int = MAX_SKIPPED_STEPS,
    clip_factor: float = CLIP_FACTOR,
    average_last: int = 0,
    **kwargs,
) -> FitResult:
    """Run ``num_steps`` SVI steps (default Adam(1e-2), ``Trace_ELBO`` with vectorized particles)
    from ``init_params`` (constrained values, e.g. a previous ``FitResult.params``) when given.

    A step whose loss, gradient or updated parameters are not finite is skipped (the param store
    is set back; the next step draws anew), and a gradient more than ``clip_factor`` times the
    median norm of the last 50 steps is scaled down to that. After ``max_skipped_steps`` skipped
    steps in a row, :class:`NonFiniteLossError` is raised at the first of them, with the param
    store set back to the last point whose loss was finite.

    Args:
        model: the model.
        guide: the guide (any guide of the framework, ours or not).
        *args: the model's and guide's positional arguments, passed at every step (``**kwargs``
            likewise).
        optim: the optimiser (a ``pyro.optim`` optimiser); None gives ``Adam({'lr': 1e-2})``.
        num_steps: number of SVI steps.
        num_particles: ELBO particles per step (used when ``loss`` is None).
        seed: random seed of the run.
        progress_bar: show a tqdm progress bar.
        loss: the ELBO; None gives ``Trace_ELBO(num_particles)``.
        init_params: constrained parameter values to start from, e.g. ``FitResult.params`` or
            ``NonFiniteLossError.params``.
        max_skipped_steps: non-finite steps in a row that are skipped before raising.
        clip_factor: gradients are clipped at this multiple of the recent median norm
            (``math.inf``: never).
        average_last: if positive, the parameters at the end (``FitResult.params`` and the param
            store) are the mean of the last ``average_last`` iterates, taken in unconstrained
            space (Polyak-Ruppert tail averaging: it removes most of the jitter that step noise
            leaves in the last iterate, e.g. of a subsampled fit); the optimiser keeps its state.
            0: the last iterate.
    """
    if not 0 <= average_last <= num_steps:
        raise ValueError(f"average_last must be in [0, num_steps={num_steps}]; got {average_last}")
    pyro.set_rng_seed(seed)
    optim = optim if optim is not None else pyro.optim.Adam({"lr": 1e-2})
    if loss is None:
        loss = Trace_ELBO(num_particles=num_particles, vectorize_particles=num_particles > 1)
    svi = SVI(model, guide, optim, loss)
    if init_params is not None:
        _load_params(svi, init_params, args, kwargs)
        pyro.set_rng_seed(seed)
    guard = GradientGuard(clip_factor)
    losses: list[float] = []
    skipped_steps: list[int] = []
    clipped_steps = 0
    previous = None  # the param store before the last applied step: optimizers update in place
    first, good = -1, None  # the first step of a run of skipped steps; the point kept for it
    mean: dict[str, torch.Tensor] = {}  # the mean of the unconstrained iterates (average_last)
    with tqdm(range(num_steps), disable=not progress_bar, desc="SVI") as bar:
        for step in bar:
            try:
                value, params = _loss_and_grads(svi, args, kwargs)
            except ValueError as error:  # validation saw NaN/Inf values before the loss did
                if "invalid values" not in str(error):
                    raise
                value, params = math.nan, set(pyro.get_param_store()._params.values())
            before = _snapshot()
            losses.append(value)
            norm, clipped = guard.clip(params)
            stepped = math.isfinite(value) and math.isfinite(norm)
            if stepped:
                svi.optim(params)
            applied = stepped and _all_params_finite()
            if stepped and not applied:  # the update itself made a parameter non-finite
                _restore(before)
            zero_grads(params)
            if applied:
                guard.accept(norm)
                clipped_steps += clipped
                previous, first = before, -1
            else:
                skipped_steps.append(step)
                if first < 0:  # a run of skipped steps begins: keep the last point with a finite loss
                    first = step
                    good = before if math.isfinite(value) else (previous or before)
                if step - first + 1 >= max_skipped_steps:
                    lr = getattr(optim, "pt_optim_args", {}).get("lr")
                    raise _error(first, losses[first], lr, good, losses[:first], max_skipped_steps)
            if step >= num_steps - average_last:
                _accumulate(mean, step - (num_steps - average_last) + 1)
            if step % 100 == 0:
                bar.set_postfix(loss=f"{value:.4g}")
    if average_last:
        _restore({"params": mean})
    if skipped_steps:
        warnings.warn(skipped_warning(skipped_steps, num_steps), RuntimeWarning, stacklevel=2)
    params = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
    return FitResult(params, losses, pyro.get_param_store().get_state(), skipped_steps, clipped_steps)


def _accumulate(mean: dict[str, torch.Tensor], count: int) -> None:
    """Fold the param store's unconstrained values into ``mean``, the mean of ``count`` iterates."""
    with torch.no_grad():
        for name, value in pyro.get_param_store()._params.items():
            if name not in mean or count == 1:
                mean[name] = value.detach().clone()
            else:
                mean[name] += (value.detach() - mean[name]) / count


def _loss_and_grads(svi: SVI, args, kwargs) -> tuple[float, set]:
    """``SVI.step`` up to the update: the loss, with gradients on the parameters it used."""
    with poutine.trace(param_only=True) as capture:
        value = svi.loss_and_grads(svi.model, svi.guide, *args, **kwargs)
    params = {site["value"].unconstrained() for site in capture.trace.nodes.values()}
    return torch_item(value), params


def _all_params_finite() -> bool:
    return all(bool(torch.isfinite(v).all()) for v in pyro.get_param_store()._params.values())


def _snapshot() -> dict:
    """A copy of the param store's state (unconstrained values and constraints)."""
    return _copy(pyro.get_param_store().get_state())


def _restore(state: dict) -> None:
    """Copy the values of a :func:`_snapshot` back into the param store's own tensors (in place:
    the optimiser keeps its state, which is keyed by tensor)."""
    params = pyro.get_param_store()._params
    with torch.no_grad():
        for name, value in state["params"].items():
            if name in params:
                params[name].copy_(value)


def _copy(state: dict) -> dict:
    params = {k: v.detach().clone().requires_grad_(v.requires_grad) for k, v in state["params"].items()}
    return {"params": params, "constraints": dict(state["constraints"])}


def _error(step: int, value: float, lr, state: dict, losses: list, skipped: int) -> NonFiniteLossError:
    """The error for ``step``, with the param store set back to the finite ``state``."""
    store = pyro.get_param_store()
    store.set_state(_copy(state))
    params = {k: v.detach().clone() for k, v in store.items()}
    return NonFiniteLossError.at_step(step, value, lr, params=params, state=state, losses=losses,
                                      skipped=skipped)


def _load_params(svi: SVI, init_params: dict, args, kwargs) -> None:
    """Set the constrained ``init_params`` in the param store, creating the model's and guide's
    parameters first (one loss evaluation) so that each keeps its constraint."""
    store = pyro.get_param_store()
    if any(k not in store for k in init_params):
        svi.evaluate_loss(*args, **kwargs)
    unknown = sorted(k for k in init_params if k not in store)
    if unknown:
        raise ValueError(
            f"fit: init_params has {unknown}, which are not parameters of this model and guide "
            f"(they have {sorted(store.keys())}). Pass a previous FitResult.params or error.params."
        )
    for name, value in init_params.items():
        store[name] = torch.as_tensor(value).detach().clone()
