"""The inverse-Jacobian product of an IAF, ``(d flow(eps) / d eps)^-T g``: what the path-derivative
("sticking the landing") score needs per draw.

A step's Jacobian is triangular with the step's scales ``d`` on the diagonal. For a MADE with one
hidden layer (the default) it is ``J = diag(d) + A diag(elu') W_1 + diag(f) V`` with ``A [D, H]``
a per-draw mix of the output weights, so ``J^T y = g`` is solved by blocks of
:data:`SOLVE_BLOCK` coordinates, last block first: each block's own ``b x b`` triangle is formed
explicitly (``b^2 H`` per block), the blocks already solved enter through two running sums
(``A^T y [H]`` and ``V^T (f y) [D]``). That is ``O(D b H)`` per draw instead of the ``O(D^2 H)``
of forming ``J``. Other MADEs (no or several hidden layers) form ``J`` from the masked weight
products and solve it whole.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .nn import MADE
from .transforms import AFFINE_LOG_SCALE_RANGE, IAF, _soft_clamp, _step

__all__ = ["solve_jacobian_transpose", "SOLVE_BLOCK"]

#: coordinates per block of the blocked triangular solve.
SOLVE_BLOCK = 32


def _soft_clamp_slope(s: torch.Tensor) -> torch.Tensor:
    """``d _soft_clamp(s) / ds``."""
    lo, hi = AFFINE_LOG_SCALE_RANGE
    return torch.where(s > 0, 1 - torch.tanh(s / hi) ** 2, 1 - torch.tanh(s / -lo) ** 2)


def _step_terms(m, s, z, gated: bool):
    """``(z', d, f, c)`` of one step: ``dz'/dz = diag(d) + diag(f) dm/dz + diag(c) ds/dz``."""
    if gated:
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, sigma, 1 - sigma, (z - m) * sigma * (1 - sigma)
    scale = torch.exp(_soft_clamp(s))
    return m + scale * z, scale, torch.ones_like(scale), scale * z * _soft_clamp_slope(s)


def _step_jacobian(made: MADE, params: dict, z, h, gated: bool):
    """``(z' [..., D], dz'/dz [..., D, D])`` from :meth:`MADE.forward_with_jacobian`."""
    m, s, dm, ds = made.forward_with_jacobian(params, z, h)
    y, d, f, c = _step_terms(m, s, z, gated)
    return y, f[..., None] * dm + c[..., None] * ds + torch.diag_embed(d)


def _solve_whole(jac, g, reverse: bool):
    """``jac^-T g`` for a lower (upper if ``reverse``) triangular ``jac [..., D, D]``."""
    return torch.linalg.solve_triangular(jac.transpose(-1, -2), g[..., None], upper=not reverse)[..., 0]


def _step_blocked(made: MADE, params: dict, z, h, gated: bool, g, block: int):
    """``(z', J^-T g)`` of one step of a one-hidden-layer MADE, by blocks (module docstring)."""
    w1 = params["hidden_weights.0"] * made.hidden_mask_0  # [H, D]
    pre = F.linear(z, w1, params["hidden_biases.0"])
    if h is not None:
        pre = pre + F.linear(h, made.context_gain * params["context_weights.0"])
    hidden = F.elu(pre)
    slope = torch.where(pre > 0, torch.ones_like(pre), torch.exp(torch.clamp(pre, max=0.0)))
    w_out = params["output_weight"] * made.output_mask  # [2 D, H]
    m, s = F.linear(hidden, w_out, params["output_bias"]).split(made.input_dim, dim=-1)
    v = params["skip_weight"] * made.skip_mask if made.skip else None
    if v is not None:
        m = m + F.linear(z, v)
    y, d, f, c = _step_terms(m, s, z, gated)
    wm, ws = w_out.split(made.input_dim, dim=0)
    shape = torch.broadcast_shapes(g.shape, y.shape)
    g, d, f = g.expand(shape), d.expand(shape), f.expand(shape)
    a = (f[..., None] * wm + c[..., None] * ws) * slope[..., None, :]  # A diag(elu'), [..., D, H]
    if made.reverse:  # J upper triangular: flip every D axis so that it is lower
        g, d, f, a, w1 = g.flip(-1), d.flip(-1), f.flip(-1), a.flip(-2), w1.flip(-1)
        v = None if v is None else v.flip(-1, -2)
    D = made.input_dim
    r = g.new_zeros((*shape[:-1], w1.shape[0]))  # A^T y over the blocks solved
    u = torch.zeros_like(g)  # V^T (f y) over the blocks solved
    solved = []
    for start in reversed(range(0, D, block)):
        idx = slice(start, min(start + block, D))
        w1_b = w1[:, idx]  # [H, b]
        jac_b = a[..., idx, :] @ w1_b + torch.diag_embed(d[..., idx])  # J[idx, idx], [..., b, b]
        if v is not None:
            jac_b = jac_b + f[..., idx, None] * v[idx, idx]
        rhs = g[..., idx] - r @ w1_b - u[..., idx]
        y_b = torch.linalg.solve_triangular(jac_b.transpose(-1, -2), rhs[..., None], upper=True)[..., 0]
        solved.append(y_b)
        r = r + (a[..., idx, :] * y_b[..., None]).sum(-2)
        if v is not None:
            u = u + (f[..., idx] * y_b) @ v[idx, :]
    out = torch.cat(solved[::-1], dim=-1)
    return y, (out.flip(-1) if made.reverse else out)


def solve_jacobian_transpose(
    flow: IAF, eps: torch.Tensor, context: torch.Tensor | None, grad: torch.Tensor,
    block: int | None = SOLVE_BLOCK,
) -> torch.Tensor:
    """``(d flow(eps) / d eps)^-T grad`` per draw, ``[..., D]``, the weights detached. A draw
    whose result is not finite (a numerically singular Jacobian) gets zeros.

    Args:
        flow: the ``IAF``.
        eps: ``[..., D]``, the flow's input.
        context: ``[..., C]`` or None.
        grad: ``[..., D]``, a cotangent of the flow's output.
        block: block size of the blocked solve (None: form each step's whole Jacobian).
    """
    x, steps = eps, []
    for made in flow.steps:  # forward: each step's input, and its Jacobian where it is formed
        params = {k: v.detach() for k, v in made.params.items()}
        if block is not None and len(made.hidden_dims) == 1:
            steps.append((made, params, x, None))
            x = _step(made, x, context, flow.gated, params)[0]
        else:
            y, jac = _step_jacobian(made, params, x, context, flow.gated)
            steps.append((made, params, x, jac))
            x = y
    # (J_K ... J_1)^-T = J_K^-T ... J_1^-T: the first step's solve comes first
    g = grad.expand(torch.broadcast_shapes(grad.shape, x.shape))
    for made, params, x_in, jac in steps:
        if jac is None:
            g = _step_blocked(made, params, x_in, context, flow.gated, g, block)[1]
        else:
            g = _solve_whole(jac, g, made.reverse)
    # a draw whose Jacobian is numerically singular gets no path term rather than a NaN
    return torch.where(torch.isfinite(g).all(-1, keepdim=True), g, torch.zeros_like(g))

