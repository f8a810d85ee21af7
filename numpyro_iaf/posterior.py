"""The posterior of ``AutoIAFNormal``: ``z = loc + scale * IAF(eps)``, optionally scored with the
"sticking the landing" gradient (Roeder, Wu & Duvenaud 2017, arXiv:1703.09194)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions.transforms import AffineTransform

from .transforms import IAF

__all__ = ["IAFPosterior", "known_inverse"]


def known_inverse(flow: IAF, params, u: jnp.ndarray, eps: jnp.ndarray) -> jnp.ndarray:
    """``eps = flow^-1(u)`` where ``eps [..., D]`` is already known (``flow(eps) == u``).

    The value is ``eps``; the derivative with respect to ``u`` is the inverse Jacobian
    ``(d flow / d eps)^-1``, from ``D`` batched forward-mode passes and one ``D x D`` solve per
    draw, so nothing runs the flow's ``D``-pass sequential inverse. ``params`` get no gradient.
    A draw whose solve is not finite (a numerically singular Jacobian) gets a zero gradient.

    Args:
        flow: the ``IAF``.
        params: the flow's parameters (they get no gradient).
        u: ``[..., D]``, the flow's output.
        eps: ``[..., D]``, its known input.
    """

    def apply(p, e):
        return flow.with_params(p)(e)

    @jax.custom_vjp
    def inverse(p, u, e):
        return e

    def forward(p, u, e):
        return e, (p, e)

    def backward(residuals, cotangent):
        p, e = residuals
        jac = jnp.vectorize(jax.jacfwd(lambda x: apply(p, x)), signature="(d)->(d,d)")(e)
        grad_u = jnp.linalg.solve(jnp.swapaxes(jac, -1, -2), cotangent[..., None])[..., 0]
        # a draw whose Jacobian is numerically singular gets no path term rather than a NaN
        grad_u = jnp.where(jnp.isfinite(grad_u).all(-1, keepdims=True), grad_u, 0.0)
        return jax.tree.map(jnp.zeros_like, p), grad_u, jnp.zeros_like(e)

    inverse.defvjp(forward, backward)
    return inverse(params, u, eps)


class IAFPosterior(dist.TransformedDistribution):
    """``eps ~ N(0, I_D)``, ``z = loc + scale * flow(eps)``; ``log_prob`` of a draw made by
    ``sample_with_intermediates`` reuses its ``eps``.

    With ``stl=True`` that ``log_prob`` has the same value but differentiates only through ``z``
    (the parameters of ``q`` enter stopped): the path-derivative ELBO gradient, which drops the
    score term (zero in expectation) and with it most of the noise once ``q`` is close to the
    posterior. Costs ``D`` forward-mode passes and a ``D x D`` solve per draw in the backward pass.

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
        eps = known_inverse(flow, flow.params, (value - loc) / scale, stop(intermediates[0][0]))
        _, log_det = flow.call_with_intermediates(eps)
        log_scale = jnp.broadcast_to(jnp.log(scale), jnp.shape(value)).sum(-1)
        return self.base_dist.log_prob(eps) - log_det - log_scale
