"""``GradientGuard``: what ``fit`` does to each step's gradient before the optimiser sees it. A
step whose gradient is not finite is to be skipped, and a gradient far larger than the recent
ones is clipped (one draw in a region where the model's log density is astronomically small
would otherwise blow up Adam's second moment and freeze the parameters for thousands of steps).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable

import torch
from pyro.optim import PyroOptim

__all__ = ["GradientGuard", "GuardedOptim", "CLIP_FACTOR", "HISTORY", "MIN_HISTORY"]

#: A gradient whose norm exceeds this multiple of the median of the recent norms is clipped to it.
CLIP_FACTOR = 10.0
#: How many recent gradient norms (of applied steps) the median is taken over.
HISTORY = 50
#: Clipping starts once this many norms are in the history.
MIN_HISTORY = 10


class GradientGuard:
    """Checks and clips the gradients of one step in place; remembers the norms of applied steps.

    Args:
        clip_factor: clip threshold as a multiple of the recent median norm (``inf``: no clipping).
        history: number of recent norms kept.
        min_history: norms needed before clipping starts.
    """

    def __init__(self, clip_factor: float = CLIP_FACTOR, history: int = HISTORY,
                 min_history: int = MIN_HISTORY):
        self.clip_factor = float(clip_factor)
        self.min_history = int(min_history)
        self.norms: deque[float] = deque(maxlen=int(history))

    def clip(self, params: Iterable[torch.Tensor]) -> tuple[float, bool]:
        """The gradient's norm after clipping (``inf``/``nan`` when not finite: skip the step) and
        whether it was clipped. The gradients of ``params`` are scaled in place."""
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return 0.0, False
        norm = float(torch.sqrt(sum(torch.sum(torch.square(g)) for g in grads)))
        if not math.isfinite(norm) or len(self.norms) < self.min_history:
            return norm, False
        limit = self.clip_factor * statistics.median(self.norms)
        if norm <= limit:
            return norm, False
        for g in grads:
            g.mul_(limit / norm)
        return limit, True

    def accept(self, norm: float) -> None:
        """Remember the (clipped) norm of a step that was applied."""
        self.norms.append(norm)


class GuardedOptim(PyroOptim):
    """Wraps a Pyro optimiser for a plain ``SVI`` with the guard ``fit`` uses: a step whose
    gradient is not finite is skipped (``SVI.step`` zeroes the gradients after it), and a
    gradient above ``clip_factor`` times the recent median norm is clipped.

    ``svi = SVI(model, guide, GuardedOptim(pyro.optim.Adam({"lr": 1e-2})), Trace_ELBO())``

    Args:
        inner: the optimiser to guard (a ``pyro.optim.PyroOptim``).
        clip_factor: clip threshold as a multiple of the recent median norm (``inf``: no clipping).
    """

    def __init__(self, inner: PyroOptim, clip_factor: float = CLIP_FACTOR):
        self.inner = inner
        self.guard = GradientGuard(clip_factor)
        self.skipped_steps = 0

    def __call__(self, params, *args, **kwargs) -> None:
        params = list(params)
        norm, _ = self.guard.clip(params)
        if not math.isfinite(norm):
            self.skipped_steps += 1
            return
        self.inner(params, *args, **kwargs)
        self.guard.accept(norm)

    def __getattr__(self, name: str):  # pt_optim_args, optim_objs, ... of the wrapped optimiser
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def get_state(self) -> dict:
        return self.inner.get_state()

    def set_state(self, state_dict: dict) -> None:
        self.inner.set_state(state_dict)

    def save(self, filename: str) -> None:
        self.inner.save(filename)

    def load(self, filename: str, map_location=None) -> None:
        self.inner.load(filename, map_location=map_location)
