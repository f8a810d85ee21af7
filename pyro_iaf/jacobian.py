"""The inverse-Jacobian product of an IAF, ``(d flow(eps) / d eps)^-T g``: what the path-derivative
("sticking the landing") score needs per draw.

A step's Jacobian is triangular with the step's scales ``d`` on the diagonal. For a MADE with one
hidden layer (the default) it is ``J = diag(d) + (diag(f) W_m + diag(c) W_s) diag(elu') W_1 +
diag(f) V``, so ``J^T y = g`` is solved by blocks of :data:`SOLVE_BLOCK` coordinates, last block
first. A hidden unit of degree ``k`` couples output ``i`` to input ``j`` only where ``j <= k < i``,
so a block's own ``b x b`` triangle is formed from the few units whose degree lies inside it
(``masks.coupling_units``), and the blocks already solved enter through two running sums
(``W_m^T f y + W_s^T c y [H]`` and ``V^T f y [D]``): ``O(D H + D b)`` per draw for ``H >= D``,
like a forward pass, instead of the ``O(D^2 H)`` of forming ``J``. Other MADEs (no or several hidden
layers) form ``J`` from the masked weight products and solve it whole. Same algorithm as
``numpyro_iaf.jacobian``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .masks import coupling_units
from .nn import MADE
from .transforms import AFFINE_LOG_SCALE_RANGE, IAF

__all__ = ["solve_jacobian_transpose", "SOLVE_BLOCK"]

#: coordinates per block of the blocked triangular solve (twice JAX's: a torch call costs more than an
#: XLA op, so fewer, larger blocks).
SOLVE_BLOCK = 64


def _step_terms(m, s, z, gated: bool):
    """``(z', d, f, c, q)`` of one step: ``dz'/dz = diag(d) + diag(f) dm/dz + diag(c) ds/dz`` and
    ``q = d log|det| / ds``; ``f`` is None for an affine step (``f = 1``: no product to pay for)."""
    if gated:
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, sigma, 1 - sigma, (z - m) * sigma * (1 - sigma), 1 - sigma
    lo, hi = AFFINE_LOG_SCALE_RANGE  # _soft_clamp(s) = width * tanh(s / width), its slope 1 - tanh^2
    width = torch.where(s > 0, hi, -lo)
    t = torch.tanh(s / width)
    scale, slope = torch.exp(width * t), 1 - t * t
    return m + scale * z, scale, None, scale * z * slope, slope


def _step_jacobian(made: MADE, params: dict, z, h, gated: bool):
    """``(z' [..., D], dz'/dz [..., D, D], d log|det| / dz [..., D])`` from
    :meth:`MADE.forward_with_jacobian`."""
    m, s, dm, ds = made.forward_with_jacobian(params, z, h)
    y, d, f, c, q = _step_terms(m, s, z, gated)
    jac = (dm if f is None else f[..., None] * dm) + c[..., None] * ds + torch.diag_embed(d)
    return y, jac, (q[..., None, :] @ ds)[..., 0, :]


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``x [..., n]`` as ``[N, n]`` (a view where it can be)."""
    return x.reshape(-1, x.shape[-1])


def _take_runs(x: torch.Tensor, runs: tuple[slice, ...], axis: int) -> torch.Tensor:
    """The entries of ``x`` along ``axis`` in ``runs`` (one slice: a view)."""
    parts = [x.narrow(axis, k.start, k.stop - k.start) for k in runs]
    return parts[0] if len(parts) == 1 else torch.cat(parts, axis)


def _step_blocked(made: MADE, params: dict, z, h, gated: bool, g, gl, block: int):
    """``(z', J^-T (g + gl d log|det| / dz))`` of one step of a one-hidden-layer MADE, by blocks
    (module docstring); ``gl [...]`` or None (no log-det term). Written for few torch calls: each
    costs microseconds of dispatch, more than its arithmetic at these sizes."""
    w1 = params["hidden_weights.0"] * made.hidden_mask_0  # [H, D], gain included
    pre = F.linear(z, w1, params["hidden_biases.0"])
    if h is not None:
        pre = pre + F.linear(h, made.context_gain * params["context_weights.0"])
    hidden = F.elu(pre)
    w_out = params["output_weight"] * made.output_mask  # [2 D, H]
    m, s = F.linear(hidden, w_out, params["output_bias"]).split(made.input_dim, dim=-1)
    v = params["skip_weight"] * made.skip_mask if made.skip else None  # [D, D]
    if v is not None:
        m = m + F.linear(z, v)
    D, H = made.input_dim, w1.shape[0]
    y, d, f, c, q = _step_terms(m, s, z, gated)
    slope = torch.where(pre > 0, 1.0, hidden + 1)  # elu'
    w_out = w_out.view(2, D, H)
    if gl is not None:  # d log|det| / dz = W_1^T S W_s^T q
        g = g + gl[..., None] * (((q @ w_out[1]) * slope) @ w1)
    shape = torch.broadcast_shapes(g.shape, y.shape)
    batch = shape[:-1]
    g, d, c, slope = g.expand(shape), d.expand(shape), c.expand(shape), slope.expand(*batch, H)
    f = None if f is None else f.expand(shape)
    if made.reverse:  # J upper triangular: flip every D axis so that it is lower
        g, d, c, w_out, w1 = g.flip(-1), d.flip(-1), c.flip(-1), w_out.flip(1), w1.flip(-1)
        f = None if f is None else f.flip(-1)
        v = None if v is None else v.flip(-1, -2)
    r = g.new_zeros((*batch, H))  # W_m^T (f y) + W_s^T (c y) over the blocks solved
    u = torch.zeros_like(g)  # V^T (f y) over the blocks solved
    solved = []
    for start, stop, units in coupling_units(made.unit_degrees, D, block):
        b = stop - start
        d_b, c_b = d[..., start:stop], c[..., start:stop]
        f_b = None if f is None else f[..., start:stop]
        jac_b = torch.diag_embed(d_b)
        if v is not None:
            v_b = v[start:stop, start:stop]
            jac_b = jac_b + (v_b if f_b is None else f_b[..., None] * v_b)
        if units:  # the units of degree inside the block, a few runs of consecutive indices
            wm_b, ws_b = (_take_runs(w[start:stop], units, -1) for w in w_out)  # [b, K]
            a_b = torch.addcmul(wm_b if f_b is None else f_b[..., None] * wm_b, c_b[..., None], ws_b)
            a_b = (a_b * _take_runs(slope, units, -1)[..., None, :]).reshape(-1, b, a_b.shape[-1])
            w1_b = _take_runs(w1[:, start:stop], units, 0).expand(a_b.shape[0], -1, -1)  # [N, K, b]
            jac_b = torch.baddbmm(jac_b.reshape(-1, b, b), a_b, w1_b).view(*batch, b, b)
        rhs = torch.addmm(_rows(g[..., start:stop] - u[..., start:stop]), _rows(slope * r), w1[:, start:stop],
                          alpha=-1)
        y_b = torch.linalg.solve_triangular(jac_b.transpose(-1, -2), rhs.view(*batch, b, 1), upper=True)
        y_b = y_b[..., 0]
        solved.append(y_b)
        if start:  # what the earlier coordinates still need from this block
            fy = y_b if f_b is None else f_b * y_b
            r = r + torch.cat([fy, c_b * y_b], -1) @ w_out[:, start:stop].reshape(-1, H)
            if v is not None:
                u[..., :start] += fy @ v[start:stop, :start]
    out = torch.cat(solved[::-1], dim=-1)
    return y, (out.flip(-1) if made.reverse else out)


def solve_jacobian_transpose(
    flow: IAF, eps: torch.Tensor, context: torch.Tensor | None, grad: torch.Tensor,
    log_det_grad: torch.Tensor | None = None, block: int | None = SOLVE_BLOCK,
) -> torch.Tensor:
    """``(d flow(eps) / d eps)^-T (grad + log_det_grad d log|det| / d eps)`` per draw, ``[..., D]``,
    the weights detached: the cotangent of ``u = flow(eps)`` given those of ``eps`` and of the
    log-det. A draw whose result is not finite (a numerically singular Jacobian) gets zeros.

    Args:
        flow: the ``IAF``.
        eps: ``[..., D]``, the flow's input.
        context: ``[..., C]`` or None.
        grad: ``[..., D]``, a cotangent of ``eps``.
        log_det_grad: ``[...]``, a cotangent of ``log|det d flow / d eps|``, or None.
        block: block size of the blocked solve (None: form each step's whole Jacobian).
    """
    # step k's cotangent: J_k^-T (g_{k-1} + gl d ld_k / dx_k), since (J_K ... J_1)^-T = J_K^-T ... J_1^-T
    x, g = eps, grad
    for made in flow.steps:
        params = {k: v.detach() for k, v in made.params.items()}
        if block is not None and len(made.hidden_dims) == 1:
            x, g = _step_blocked(made, params, x, context, flow.gated, g, log_det_grad, block)
        else:  # J lower triangular (upper if reversed): J^T the other way
            x, jac, grad_ld = _step_jacobian(made, params, x, context, flow.gated)
            if log_det_grad is not None:
                g = g + log_det_grad[..., None] * grad_ld
            g = torch.linalg.solve_triangular(jac.transpose(-1, -2), g[..., None], upper=not made.reverse)
            g = g[..., 0]
    # a draw whose Jacobian is numerically singular gets no path term rather than a NaN
    return torch.where(torch.isfinite(g).all(-1, keepdim=True), g, torch.zeros_like(g))
