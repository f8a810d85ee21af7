"""The posterior of ``AutoIAFNormal``: ``z = loc + scale * IAF(eps)``, optionally scored with the
"sticking the landing" gradient (Roeder, Wu & Duvenaud 2017, arXiv:1703.09194)."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions.transforms import AffineTransform

from .jacobian import solve_jacobian_transpose
from .transforms import IAF

__all__ = ["IAFPosterior", "known_inverse", "check_param_shapes"]


class _KnownInverse(torch.autograd.Function):
    """Values ``(eps, log_det)``; the gradient with respect to ``u`` through ``(d flow_h / d eps)^-1``."""

    @staticmethod
    def forward(ctx, u, eps, log_det, h, flow: IAF):
        ctx.flow, ctx.with_log_det = flow, log_det is not None
        ctx.save_for_backward(eps, h)
        return eps.clone(), (eps.new_zeros(()) if log_det is None else log_det.clone())

    @staticmethod
    def backward(ctx, grad_eps, grad_log_det):
        eps, h = ctx.saved_tensors
        g = solve_jacobian_transpose(ctx.flow, eps, h, grad_eps, grad_log_det if ctx.with_log_det else None)
        return g.sum_to_size(grad_eps.shape), None, None, None, None


def known_inverse(
    flow: IAF, u: torch.Tensor, eps: torch.Tensor, context: torch.Tensor | None = None,
    log_det: torch.Tensor | None = None,
):
    """``eps = flow_h^-1(u)`` where ``eps [..., D]`` is already known (``flow_h(eps) == u``), and with
    ``log_det [...]`` (``log|det d flow_h / d eps|`` at ``eps``, known too) the pair ``(eps, log_det)``.

    The values are the ones given; the derivative with respect to ``u`` goes through the inverse
    Jacobian ``(d flow_h / d eps)^-1`` (and, for ``log_det``, its derivative in ``eps``): each step's
    blocked triangular solve per draw (``jacobian.solve_jacobian_transpose``), so nothing runs the
    flow's ``D``-pass sequential inverse. The flow and the context get no gradient; a draw whose
    solve is not finite (a numerically singular Jacobian) gets a zero gradient.

    Args:
        flow: the ``IAF`` with ``flow_h(eps) == u``.
        u: ``[..., D]``, the flow's output.
        eps: ``[..., D]``, its known input.
        context: ``h [..., C]`` of a conditioned flow, or None.
        log_det: ``[...]``, the flow's known log-det at ``eps``, or None.
    """
    h = None if context is None else context.detach()
    known = None if log_det is None else log_det.detach()
    eps, log_det = _KnownInverse.apply(u, eps.detach(), known, h, flow)
    return eps if known is None else (eps, log_det)


def check_param_shapes(D: int, loc: torch.Tensor, scale: torch.Tensor) -> None:
    """``loc`` and ``scale`` must have ``D`` entries. In Pyro they come from the param store, which
    may still hold the parameters of a guide of the same name fitted to another model: then say
    so, and how to fix it, instead of failing later inside the flow."""
    if loc.shape[-1:] == (D,) and scale.shape[-1:] == (D,):
        return
    store = pyro.get_param_store()
    name = store.param_name(loc) or store.param_name(scale) or "loc"
    raise ValueError(
        f"The param store holds '{name}' of shape {tuple(loc.shape)}, but this guide's model has {D} "
        "latent dimensions: the store still holds the parameters of a guide of the same name fitted "
        "to another model; call `pyro.clear_param_store()` or pass another `prefix` "
        "(e.g. AutoIAFNormal(model, prefix='second'))."
    )


class IAFPosterior(dist.TransformedDistribution):
    """``eps ~ N(0, I_D)``, ``z = loc + scale * flow(eps)``; scoring the draw just made reuses its
    ``eps`` (the transforms cache it).

    With ``stl=True`` that ``log_prob`` has the same value but differentiates only through ``z``
    (the parameters of ``q`` enter detached): the path-derivative ELBO gradient, which drops the
    score term (zero in expectation) and with it most of the noise once ``q`` is close to the
    posterior. Costs a blocked triangular solve per step and draw in the backward pass (``jacobian``).

    Args:
        flow: the ``IAF`` applied to ``eps``.
        loc: ``[D]``, the shift after the flow.
        scale: ``[D]``, the scale after the flow (> 0).
        stl: score the distribution's own draws with the path-derivative gradient.
    """

    def __init__(self, flow: IAF, loc: torch.Tensor, scale: torch.Tensor, *, stl: bool = False) -> None:
        check_param_shapes(flow.input_dim, loc, scale)
        base = dist.Normal(torch.zeros_like(loc.detach()), 1.0).to_event(1)
        # both transforms cache their last (input, output): log_prob of a fresh draw reuses its eps
        super().__init__(base, [flow, AffineTransform(loc, scale, event_dim=1, cache_size=1)])
        self.stl = stl

    def expand(self, batch_shape, _instance=None) -> IAFPosterior:
        new = super().expand(batch_shape, _instance=self._get_checked_instance(IAFPosterior, _instance))
        new.stl = self.stl
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        cached = self._cached_draw(value) if self.stl and torch.is_grad_enabled() else None
        if cached is None:
            return super().log_prob(value)
        flow, affine = self.transforms
        u = (value - affine.loc.detach()) / affine.scale.detach()
        eps, log_det = known_inverse(flow, u, *cached)
        log_scale = torch.log(affine.scale.detach()).expand(value.shape).sum(-1)
        return self.base_dist.log_prob(eps) - log_det - log_scale

    def _cached_draw(self, value: torch.Tensor) -> tuple[torch.Tensor, None, torch.Tensor] | None:
        """``(eps, None, log_det)`` of this distribution's last draw if it made ``value`` (else None)."""
        flow, affine = self.transforms
        x_y = getattr(affine, "_cached_x_y", (None, None))
        flow_cache = getattr(flow, "_cached", None)
        if x_y[1] is not value or flow_cache is None or flow_cache[1] is not x_y[0]:
            return None
        return flow_cache[0], None, flow_cache[2]
