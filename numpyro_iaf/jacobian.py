"""The inverse-Jacobian product of an IAF, ``(d flow(eps) / d eps)^-T g``: what the path-derivative
("sticking the landing") score needs per draw.

A step's Jacobian is triangular with the step's scales ``d`` on the diagonal. For a MADE with one
hidden layer (the default) it is ``J = diag(d) + (diag(f) W_m + diag(c) W_s) diag(elu') W_1 +
diag(f) V``, so ``J^T y = g`` is solved by blocks of :data:`SOLVE_BLOCK` coordinates, last block
first. A hidden unit of degree ``k`` couples output ``i`` to input ``j`` only where ``j <= k < i``,
so a block's own ``b x b`` triangle is formed from the few units whose degree lies inside it
(``masks.coupling_units``), and the blocks already solved enter through two running sums
(``W_m^T f y + W_s^T c y [H]`` and ``V^T f y [D]``): ``O(D H + D b)`` per draw for ``H >= D``,
like a forward pass, instead of the ``O(D^2 H)`` of forming ``J``. The forward pass it needs is
written op for op as ``MADE.apply``, so that XLA shares it with the draw's. Other MADEs (no or several
hidden layers) form ``J`` from the masked weight products and solve it whole. Same algorithm as
``pyro_iaf.jacobian``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .masks import coupling_units
from .nn import MADE, Params, _linear, _masked_linear
from .transforms import AFFINE_LOG_SCALE_RANGE, IAF, _soft_clamp

__all__ = ["solve_jacobian_transpose", "SOLVE_BLOCK"]

#: coordinates per block of the blocked triangular solve.
SOLVE_BLOCK = 32


def _soft_clamp_slope(s):
    """``d _soft_clamp(s) / ds``."""
    lo, hi = AFFINE_LOG_SCALE_RANGE
    return jnp.where(s > 0, 1 - jnp.tanh(s / hi) ** 2, 1 - jnp.tanh(s / -lo) ** 2)


def _step_terms(m, s, z, gated: bool):
    """``(z', d, f, c, q)`` of one step: ``dz'/dz = diag(d) + diag(f) dm/dz + diag(c) ds/dz`` and
    ``q = d log|det| / ds``."""
    if gated:
        sigma = jax.nn.sigmoid(s)
        return sigma * z + (1 - sigma) * m, sigma, 1 - sigma, (z - m) * sigma * (1 - sigma), 1 - sigma
    scale, slope = jnp.exp(_soft_clamp(s)), _soft_clamp_slope(s)
    return m + scale * z, scale, jnp.ones_like(scale), scale * z * slope, slope


def _step_jacobian(made: MADE, params: Params, z, h, gated: bool):
    """``(z' [..., D], dz'/dz [..., D, D], d log|det| / dz [..., D])`` from
    :meth:`MADE.apply_with_jacobian`."""
    m, s, dm, ds = made.apply_with_jacobian(params, z, h)
    y, d, f, c, q = _step_terms(m, s, z, gated)
    jac = f[..., None] * dm + c[..., None] * ds + d[..., None] * jnp.eye(made.input_dim, dtype=d.dtype)
    return y, jac, jnp.einsum("...i,...ij->...j", q, ds)


def _solve_upper(a, b):
    """``a^-1 b`` for upper triangular ``a [..., n, n]``, ``b [..., n]`` (batch dims broadcast)."""
    shape = jnp.broadcast_shapes(a.shape[:-2], b.shape[:-1])
    a = jnp.broadcast_to(a, (*shape, *a.shape[-2:]))
    b = jnp.broadcast_to(b, (*shape, b.shape[-1]))
    return jax.lax.linalg.triangular_solve(a, b[..., None], left_side=True, lower=False)[..., 0]


def _take_runs(x, runs: tuple[slice, ...], axis: int):
    """The entries of ``x`` along ``axis`` in ``runs`` (slices, not a gather: XLA's CPU gather is slow)."""
    return jnp.concatenate([jax.lax.slice_in_dim(x, k.start, k.stop, axis=axis) for k in runs], axis)


def _step_blocked(made: MADE, params: Params, z, h, gated: bool, g, gl, block: int):
    """``(z', J^-T (g + gl d log|det| / dz))`` of one step of a one-hidden-layer MADE, by blocks
    (module docstring); ``gl [...]`` or None (no log-det term)."""
    # the step's forward as MADE.apply computes it, op for op, so that XLA shares it with the draw's
    w1 = jnp.where(made.hidden_masks[0], params["hidden_weights.0"], 0.0)  # [H, D], gain apart
    pre = _masked_linear(z, params["hidden_weights.0"], made.hidden_masks[0], made.hidden_gains[0])
    pre = pre + params["hidden_biases.0"]
    if h is not None:
        pre = pre + _linear(h, params["context_weights.0"]) * made.context_gain
    out = _masked_linear(jax.nn.elu(pre), params["output_weight"], made.output_mask, made.output_gain)
    m, s = jnp.split(out + params["output_bias"], 2, axis=-1)
    if made.skip:
        m = m + _masked_linear(z, params["skip_weight"], made.skip_mask, made.skip_gain)
    y, d, f, c, q = _step_terms(m, s, z, gated)
    D, H = made.input_dim, w1.shape[0]
    w_out = jnp.where(made.output_mask, params["output_weight"], 0.0).reshape(2, D, H)  # gain apart
    v = jnp.where(made.skip_mask, params["skip_weight"], 0.0) if made.skip else None  # [D, D]
    # elu' times both layers' gains: J = diag(d) + (diag(f) W_m + diag(c) W_s) S W_1 + g_v diag(f) V
    gains = made.hidden_gains[0] * made.output_gain
    slope = jnp.where(pre > 0, 1.0, jnp.exp(jnp.minimum(pre, 0.0))) * gains
    if gl is not None:  # d log|det| / dz = W_1^T S W_s^T q
        g = g + gl[..., None] * (((q @ w_out[1]) * slope) @ w1)
    shape = jnp.broadcast_shapes(jnp.shape(g), y.shape)
    g, d, f, c = (jnp.broadcast_to(t, shape) for t in (g, d, f, c))
    slope = jnp.broadcast_to(slope, (*shape[:-1], H))
    if made.reverse:  # J upper triangular: flip every D axis so that it is lower
        g, d, f, c = g[..., ::-1], d[..., ::-1], f[..., ::-1], c[..., ::-1]
        w_out, w1 = w_out[:, ::-1], w1[:, ::-1]
        v = None if v is None else v[::-1, ::-1]
    fc = jnp.stack([f, c], axis=-2)  # [..., 2, D]
    r = jnp.zeros((*shape[:-1], H), g.dtype)  # W_m^T (f y) + W_s^T (c y) over the blocks solved
    u = jnp.zeros_like(g)  # g_v V^T (f y) over the blocks solved
    solved = []
    for start, stop, units in coupling_units(made.unit_degrees, D, block):
        f_b, fc_b = f[..., start:stop], fc[..., start:stop]
        jac_b = d[..., start:stop, None] * jnp.eye(stop - start, dtype=d.dtype)
        if v is not None:
            jac_b = jac_b + made.skip_gain * f_b[..., None] * v[start:stop, start:stop]
        if units:  # the units of degree inside the block, a few runs of consecutive indices
            w_out_b = _take_runs(w_out[:, start:stop], units, -1)  # [2, b, K]
            a_b = f_b[..., None] * w_out_b[0] + c[..., start:stop, None] * w_out_b[1]
            a_b = a_b * _take_runs(slope, units, -1)[..., None, :]
            jac_b = jac_b + jnp.tensordot(a_b, _take_runs(w1[:, start:stop], units, 0), 1)
        rhs = g[..., start:stop] - (slope * r) @ w1[:, start:stop] - u[..., start:stop]
        y_b = _solve_upper(jnp.swapaxes(jac_b, -1, -2), rhs)
        solved.append(y_b)
        if start:  # what the earlier coordinates still need from this block
            r = r + (fc_b * y_b[..., None, :]).reshape(*shape[:-1], -1) @ w_out[:, start:stop].reshape(-1, H)
            if v is not None:
                u = u.at[..., :start].add(made.skip_gain * (f_b * y_b) @ v[start:stop, :start])
    out = jnp.concatenate(solved[::-1], axis=-1)
    return y, out[..., ::-1] if made.reverse else out


def solve_jacobian_transpose(
    flow: IAF, eps, context, grad, log_det_grad=None, block: int | None = SOLVE_BLOCK
):
    """``(d flow(eps) / d eps)^-T (grad + log_det_grad d log|det| / d eps)`` per draw, ``[..., D]``,
    with ``flow.params``: the cotangent of ``u = flow(eps)`` given those of ``eps`` and of the
    log-det. A draw whose result is not finite (a numerically singular Jacobian) gets zeros.

    Args:
        flow: the ``IAF`` (its context is ``context``, not ``flow.context``).
        eps: ``[..., D]``, the flow's input.
        context: ``[..., C]`` or None.
        grad: ``[..., D]``, a cotangent of ``eps``.
        log_det_grad: ``[...]``, a cotangent of ``log|det d flow / d eps|``, or None.
        block: block size of the blocked solve (None: form each step's whole Jacobian).
    """
    # step k's cotangent: J_k^-T (g_{k-1} + gl d ld_k / dx_k), since (J_K ... J_1)^-T = J_K^-T ... J_1^-T
    x, g = eps, grad
    for made, params in zip(flow.steps, flow.params):
        if block is not None and len(made.hidden_dims) == 1:
            x, g = _step_blocked(made, params, x, context, flow.gated, g, log_det_grad, block)
        else:  # J lower triangular (upper if reversed): J^T the other way
            x, jac, grad_ld = _step_jacobian(made, params, x, context, flow.gated)
            if log_det_grad is not None:
                g = g + log_det_grad[..., None] * grad_ld
            shape = jnp.broadcast_shapes(jac.shape[:-2], jnp.shape(g)[:-1])
            jac = jnp.broadcast_to(jac, (*shape, *jac.shape[-2:]))
            g = jax.lax.linalg.triangular_solve(jac, jnp.broadcast_to(g, (*shape, g.shape[-1]))[..., None],
                                                left_side=True, lower=not made.reverse,
                                                transpose_a=True)[..., 0]
    # a draw whose Jacobian is numerically singular gets no path term rather than a NaN
    return jnp.where(jnp.isfinite(g).all(-1, keepdims=True), g, 0.0)
