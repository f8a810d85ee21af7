"""The posterior of ``AutoIAFNormal``: ``z = loc + scale * IAF(eps)``, optionally scored with the
"sticking the landing" gradient (Roeder, Wu & Duvenaud 2017, arXiv:1703.09194)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions.transforms import AffineTransform

from .jacobian import solve_jacobian_transpose
from .transforms import IAF

__all__ = ["IAFPosterior", "known_inverse"]


def known_inverse(flow: IAF, u: jnp.ndarray, eps: jnp.ndarray, log_det: jnp.ndarray | None = None):
    """``eps = flow^-1(u)`` where ``eps [..., D]`` is already known (``flow(eps) == u``), and with
    ``log_det [...]`` (``log|det d flow / d eps|`` at ``eps``, known too) the pair ``(eps, log_det)``.

    The values are the ones given; the derivative with respect to ``u`` goes through the inverse
    Jacobian ``(d flow / d eps)^-1`` (and, for ``log_det``, its derivative in ``eps``): each step's
    blocked triangular solve per draw (``jacobian.solve_jacobian_transpose``), so nothing runs the
    flow's ``D``-pass sequential inverse. The flow's parameters and its context
    (``flow.condition(h)``) get no gradient; a draw whose solve is not finite (a numerically
    singular Jacobian) gets a zero gradient.

    Args:
        flow: the ``IAF`` (conditioned or not) with ``flow(eps) == u``.
        u: ``[..., D]``, the flow's output.
        eps: ``[..., D]``, its known input.
        log_det: ``[...]``, the flow's known log-det at ``eps``, or None.
    """
    stop = jax.lax.stop_gradient
    bare = flow.with_params(stop(flow.params))
    h = None if flow.context is None else stop(flow.context)
    bare.context = None
    with_log_det = log_det is not None

    @jax.custom_vjp
    def inverse(u, e, ld, c):
        return e, ld

    def forward(u, e, ld, c):
        return (e, ld), (e, c)

    def backward(residuals, cotangents):
        (e, c), (grad_e, grad_ld) = residuals, cotangents
        grad = solve_jacobian_transpose(bare, e, c, grad_e, grad_ld if with_log_det else None)
        return _sum_to(grad, jnp.shape(u)), jnp.zeros_like(e), None, None if c is None else jnp.zeros_like(c)

    inverse.defvjp(forward, backward)
    eps, log_det = inverse(u, stop(eps), None if log_det is None else stop(log_det), h)
    return (eps, log_det) if with_log_det else eps


def _sum_to(x: jnp.ndarray, shape: tuple[int, ...]) -> jnp.ndarray:
    """Sum the broadcast dimensions of ``x`` away so it has ``shape``."""
    lead = x.ndim - len(shape)
    x = x.sum(tuple(range(lead))) if lead else x
    axes = tuple(i for i, (a, b) in enumerate(zip(x.shape, shape)) if b == 1 and a != 1)
    return x.sum(axes, keepdims=True) if axes else x


class IAFPosterior(dist.TransformedDistribution):
    """``eps ~ N(0, I_D)``, ``z = loc + scale * flow(eps)``; ``log_prob`` of a draw made by
    ``sample_with_intermediates`` reuses its ``eps``.

    With ``stl=True`` that ``log_prob`` has the same value but differentiates only through ``z``
    (the parameters of ``q`` enter stopped): the path-derivative ELBO gradient, which drops the
    score term (zero in expectation) and with it most of the noise once ``q`` is close to the
    posterior. Costs a blocked triangular solve per step and draw in the backward pass (``jacobian``).

    Args:
        flow: the ``IAF`` applied to ``eps``.
        loc: ``[D]``, the shift after the flow.
        scale: ``[D]``, the scale after the flow (> 0).
        stl: score the distribution's own draws with the path-derivative gradient.
    """

    def __init__(self, flow: IAF, loc: jnp.ndarray, scale: jnp.ndarray, *, stl: bool = False) -> None:
        base = dist.Normal(jnp.zeros(flow.input_dim), 1.0).to_event(1)
        super().__init__(base, [flow, AffineTransform(loc, scale)])
        self.stl = stl

    def log_prob(self, value, intermediates=None):
        if not self.stl or intermediates is None:
            return super().log_prob(value, intermediates)
        stop = jax.lax.stop_gradient
        flow, affine = self.transforms
        flow = flow.with_params(stop(flow.params))
        loc, scale = stop(affine.loc), stop(affine.scale)
        eps, log_det = known_inverse(flow, (value - loc) / scale, *intermediates[0])
        log_scale = jnp.broadcast_to(jnp.log(scale), jnp.shape(value)).sum(-1)
        return self.base_dist.log_prob(eps) - log_det - log_scale
