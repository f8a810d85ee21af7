"""``GuardedOptim``: the optimiser ``fit`` steps with. It skips a step whose loss or gradient is
not finite and clips a gradient far larger than the recent ones before the wrapped optimiser
sees it (one draw in a region where the model's log density is astronomically small would
otherwise blow up Adam's second moment and freeze the parameters for thousands of steps).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from numpyro.optim import _NumPyroOptim, _value_and_grad  # as NumPyro's own eval_and_update

__all__ = ["GuardedOptim", "GuardState", "CLIP_FACTOR", "HISTORY", "MIN_HISTORY"]

#: A gradient whose norm exceeds this multiple of the median of the recent norms is clipped to it.
CLIP_FACTOR = 10.0
#: How many recent gradient norms (of applied steps) the median is taken over.
HISTORY = 50
#: Clipping starts once this many norms are in the history.
MIN_HISTORY = 10


class GuardState(NamedTuple):
    """``norms [HISTORY]``: recent gradient norms (NaN where unfilled), ``count``: steps applied,
    ``skipped`` / ``clipped``: whether the last step was skipped / clipped (booleans)."""

    norms: jnp.ndarray
    count: jnp.ndarray
    skipped: jnp.ndarray
    clipped: jnp.ndarray


def _finite(tree) -> jnp.ndarray:
    """Whether every floating-point value of ``tree`` is finite: one reduction over the leaves
    concatenated (a chain of one reduction per leaf made XLA's CPU compile of an amortized guide's
    update take 13 s instead of 5)."""
    leaves = [jnp.ravel(x) for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
    return jnp.isfinite(jnp.concatenate(leaves)).all() if leaves else jnp.array(True)


def select(pred, on_true, on_false):
    """``on_true`` if ``pred`` else ``on_false`` (pytrees): one ``lax.cond``, which XLA's CPU
    backend compiles faster than a ``where`` per leaf of an optimiser's or SVI's state."""
    return jax.lax.cond(pred, lambda: on_true, lambda: on_false)


class GuardedOptim(_NumPyroOptim):
    """Wraps a NumPyro optimiser; its state is ``(i, (inner_state, GuardState))``.

    A step is *skipped* (parameters and the wrapped optimiser's state unchanged; the next step
    draws anew) when the loss, the gradient's norm or the updated state is not finite. Otherwise
    the gradient is scaled down to ``clip_factor`` times the median norm of the last ``history``
    applied steps when it is larger (from the ``min_history``-th step on).

    Args:
        inner: the optimiser to guard (e.g. ``numpyro.optim.Adam(1e-2)``).
        clip_factor: clip threshold as a multiple of the recent median norm (``inf``: no clipping).
        history: number of recent norms kept.
        min_history: norms needed before clipping starts.
    """

    def __init__(self, inner: _NumPyroOptim, clip_factor: float = CLIP_FACTOR, history: int = HISTORY,
                 min_history: int = MIN_HISTORY):
        self.inner = inner
        self.clip_factor = float(clip_factor)
        self.history = int(history)
        self.min_history = int(min_history)
        self.update_with_value = inner.update_with_value

    def init(self, params):
        i, state = self.inner.init(params)
        guard = GuardState(jnp.full(self.history, jnp.nan, jnp.float32), jnp.int32(0),
                           jnp.array(False), jnp.array(False))
        return i, (state, guard)

    def get_params(self, state):
        i, (inner_state, _) = state
        return self.inner.get_params((i, inner_state))

    def inner_state(self, state):
        """The wrapped optimiser's own state ``(i, inner_state)``."""
        i, (inner_state, _) = state
        return i, inner_state

    @staticmethod
    def guard_state(state) -> GuardState:
        """The :class:`GuardState` of the last step."""
        return state[1][1]

    def update(self, g, state, value=None):
        return self._guarded_update(g, state, value)

    def eval_and_update(self, fn, state, forward_mode_differentiation: bool = False):
        (out, aux), grads = _value_and_grad(fn, self.get_params(state), forward_mode_differentiation)
        return (out, aux), self._guarded_update(grads, state, out)

    def _guarded_update(self, grads, state, value):
        i, (inner_state, guard) = state
        norm = optax.global_norm(grads)  # infinite when the squares overflow
        median = jnp.nanmedian(guard.norms)
        limit = jnp.where(guard.count >= self.min_history, self.clip_factor * median, jnp.inf)
        clipped = jnp.isfinite(norm) & (norm > limit)
        factor = jnp.where(clipped, limit / norm, 1.0)  # 1: the gradient unchanged, bit for bit
        grads = jax.tree.map(lambda g: g * factor.astype(g.dtype), grads)
        new_i, new_inner = self.inner.update(grads, (i, inner_state), value=value)
        ok = jnp.isfinite(norm) & _finite(new_inner)
        if value is not None:
            ok &= jnp.isfinite(value)
        kept = select(ok, (new_i, new_inner), (i, inner_state))
        applied = jnp.minimum(norm, limit)
        norms = jnp.where(ok, guard.norms.at[guard.count % self.history].set(applied.astype(jnp.float32)),
                          guard.norms)
        guard = GuardState(norms, guard.count + ok.astype(jnp.int32), ~ok, ok & clipped)
        return kept[0], (kept[1], guard)
