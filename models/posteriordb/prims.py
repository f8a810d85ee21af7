"""Building blocks of the translated Stan programs, written once over ``models.api``.

- :func:`flat`: a latent with Stan's implicit uniform prior on its support (log density 0),
- :func:`scan`: a recursion over time (``lax.scan`` in NumPyro, a Python loop in Pyro),
- :func:`logsumexp`: the forward algorithm's numerics; :func:`odeint` (from
  :mod:`models.posteriordb.ode`): the ODE models' solver, JAX's Dormand-Prince in both backends,
- :func:`unconstrain`: NumPy float64 ``biject_to(support).inv`` of each kind of site, for mapping
  the reference draws onto the flat unconstrained latent vector.

Site kinds (``KINDS``): "real", "positive", "unit" (0, 1), "simplex", "ordered",
"positive_ordered"; ``unconstrain`` matches Pyro's and NumPyro's ``biject_to`` for each (both use
the same transforms: exp, sigmoid, stick-breaking, ``OrderedTransform``, exp after ordered).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from models.api import current_backend, dist, ops, pyro
from models.posteriordb.ode import odeint as odeint  # re-exported for the programs

KINDS = ("real", "positive", "unit", "simplex", "ordered", "positive_ordered")


def _constraint(kind: str):
    c = dist.constraints
    table = {"real": c.real, "positive": c.positive, "unit": c.unit_interval, "simplex": c.simplex,
             "ordered": c.ordered_vector, "positive_ordered": c.positive_ordered_vector}
    if kind not in table:
        raise ValueError(f"Unknown site kind {kind!r}; expected one of {KINDS}")
    return table[kind]


_FLAT_CLASSES: dict[str, type] = {}


def _flat_class(backend: str) -> type:
    """``ImproperUniform`` whose ``sample`` draws ``biject_to(support)(U(-2, 2))`` (Stan's
    initialization), so prior traces and ``init_to_median`` / ``init_to_uniform`` work."""
    if backend in _FLAT_CLASSES:
        return _FLAT_CLASSES[backend]
    if backend == "pyro":
        import torch
        from pyro.distributions import ImproperUniform
        from torch.distributions import biject_to

        class Flat(ImproperUniform):
            def sample(self, sample_shape=()):
                shape = tuple(sample_shape) + self.batch_shape + self.event_shape
                t = biject_to(self.support)
                u = torch.rand(t.inverse_shape(shape)) * 4 - 2
                return t(u)

            def expand(self, batch_shape, _instance=None):
                return Flat(self.support, torch.Size(batch_shape), self.event_shape)
    else:
        import jax
        from numpyro.distributions import ImproperUniform
        from numpyro.distributions.transforms import biject_to

        class Flat(ImproperUniform):
            def sample(self, key, sample_shape=()):
                shape = tuple(sample_shape) + self.batch_shape + self.event_shape
                t = biject_to(self.support)
                u = jax.random.uniform(key, t.inverse_shape(shape), minval=-2.0, maxval=2.0)
                return t(u)

    _FLAT_CLASSES[backend] = Flat
    return Flat


def flat(name: str, kind: str = "real", shape: tuple[int, ...] = ()):
    """``pyro.sample(name, flat prior on kind)``: Stan's parameter without a ``~`` statement."""
    support, backend = _constraint(kind), current_backend()
    # NumPyro's ImproperUniform makes the support independent itself; Pyro's does not (and its
    # positive_ordered_vector says event_dim 0), so count the kind's own event dims here
    extra = len(shape) - (0 if kind in ("real", "positive", "unit") else 1)
    if backend == "pyro" and extra > 0:
        support = dist.constraints.independent(support, extra)
    return pyro.sample(name, _flat_class(backend)(support, (), tuple(shape)))


def flat_with(name: str, kind: str, prior, shape: tuple[int, ...] = ()):
    """A ``kind`` latent whose density is ``prior`` (unnormalized on the support, as Stan's
    ``x ~ prior`` on a bounded ``x``: the truncation constant is dropped)."""
    x = flat(name, kind, shape)
    pyro.factor(f"{name}_prior", ops.sum(prior.log_prob(x)))
    return x


def logsumexp(x, axis: int = -1):
    """``log sum exp x`` over ``axis`` (stable), for torch tensors and jnp arrays."""
    x = ops.moveaxis(x, axis, -1)
    m = _stop_gradient(ops.amax(x, -1))
    return m + ops.log(ops.sum(ops.exp(x - m[..., None]), -1))


def _stop_gradient(x):
    if current_backend() == "pyro":
        return x.detach()
    import jax

    return jax.lax.stop_gradient(x)


def scan(step: Callable, carry: Any, xs: Any):
    """``lax.scan(step, carry, xs)``: ``step(carry, x_t) -> (carry, y_t)`` over the leading axis
    of ``xs`` (an array or a tuple of arrays); returns ``(carry, ys stacked)``."""
    if current_backend() == "numpyro":
        import jax

        return jax.lax.scan(step, carry, xs)
    import torch

    n = (xs[0] if isinstance(xs, tuple) else xs).shape[0]
    ys = []
    for t in range(n):
        x_t = tuple(a[t] for a in xs) if isinstance(xs, tuple) else xs[t]
        carry, y = step(carry, x_t)
        ys.append(y)
    return carry, torch.stack(ys)


# ---- reference draws -> unconstrained (NumPy, float64) ----------------------------------------


def unconstrain(kind: str, x: np.ndarray) -> np.ndarray:
    """``biject_to(support of kind).inv(x)`` in float64; ``x [..., *shape]``."""
    x = np.asarray(x, float)
    if kind == "real":
        return x
    if kind == "positive":
        return np.log(x)
    if kind == "unit":
        return np.log(x) - np.log1p(-x)
    if kind == "ordered":
        return np.concatenate([x[..., :1], np.log(np.diff(x, axis=-1))], -1)
    if kind == "positive_ordered":
        return unconstrain("ordered", np.log(x))
    if kind == "simplex":  # stick-breaking, as torch's / NumPyro's StickBreakingTransform.inv
        crop = x[..., :-1]
        offset = x.shape[-1] - np.arange(1, crop.shape[-1] + 1)
        rest = np.maximum(1 - np.cumsum(crop, -1), np.finfo(float).tiny)
        return np.log(crop) - np.log(rest) + np.log(offset)
    raise ValueError(f"Unknown site kind {kind!r}; expected one of {KINDS}")

