"""The inverse-Jacobian product of an IAF, ``(d flow(eps) / d eps)^-T g``: what the path-derivative
("sticking the landing") score needs per draw.

A step's Jacobian is triangular with the step's scales ``d`` on the diagonal. For a MADE with one
hidden layer (the default) it is ``J = diag(d) + A diag(elu') W_1 + diag(f) V`` with ``A [D, H]``
a per-draw mix of the output weights, so ``J^T y = g`` is solved by blocks of
:data:`SOLVE_BLOCK` coordinates, last block first: each block's own ``b x b`` triangle is formed
explicitly (``b^2 H`` per block), the blocks already solved enter through two running sums
(``A^T y [H]`` and ``V^T (f y) [D]``). That is ``O(D b H)`` per draw instead of the ``O(D^2 H)``
of forming ``J``. Other MADEs (no or several hidden layers) form ``J`` from the masked weight
products and solve it whole. Same algorithm as ``pyro_iaf.jacobian``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .nn import MADE, Params, _linear
from .transforms import AFFINE_LOG_SCALE_RANGE, IAF, _soft_clamp, _step

__all__ = ["solve_jacobian_transpose", "SOLVE_BLOCK"]

#: coordinates per block of the blocked triangular solve.
SOLVE_BLOCK = 32


def _soft_clamp_slope(s):
    """``d _soft_clamp(s) / ds``."""
    lo, hi = AFFINE_LOG_SCALE_RANGE
    return jnp.where(s > 0, 1 - jnp.tanh(s / hi) ** 2, 1 - jnp.tanh(s / -lo) ** 2)


def _step_terms(m, s, z, gated: bool):
    """``(z', d, f, c)`` of one step: ``dz'/dz = diag(d) + diag(f) dm/dz + diag(c) ds/dz``."""
    if gated:
        sigma = jax.nn.sigmoid(s)
        return sigma * z + (1 - sigma) * m, sigma, 1 - sigma, (z - m) * sigma * (1 - sigma)
    scale = jnp.exp(_soft_clamp(s))
    return m + scale * z, scale, jnp.ones_like(scale), scale * z * _soft_clamp_slope(s)


def _step_jacobian(made: MADE, params: Params, z, h, gated: bool):
    """``(z' [..., D], dz'/dz [..., D, D])`` from :meth:`MADE.apply_with_jacobian`."""
    m, s, dm, ds = made.apply_with_jacobian(params, z, h)
    y, d, f, c = _step_terms(m, s, z, gated)
    return y, f[..., None] * dm + c[..., None] * ds + d[..., None] * jnp.eye(made.input_dim, dtype=d.dtype)


def _solve_upper(a, b):
    """``a^-1 b`` for upper triangular ``a [..., n, n]``, ``b [..., n]`` (batch dims broadcast)."""
    shape = jnp.broadcast_shapes(a.shape[:-2], b.shape[:-1])
    a = jnp.broadcast_to(a, (*shape, *a.shape[-2:]))
    b = jnp.broadcast_to(b, (*shape, b.shape[-1]))
    return jax.lax.linalg.triangular_solve(a, b[..., None], left_side=True, lower=False)[..., 0]


def _step_blocked(made: MADE, params: Params, z, h, gated: bool, g, block: int):
    """``J^-T g`` of one step of a one-hidden-layer MADE, by blocks (module docstring)."""
    w1 = jnp.where(made.hidden_masks[0], params["hidden_weights.0"], 0.0) * made.hidden_gains[0]
    pre = _linear(z, w1) + params["hidden_biases.0"]
    if h is not None:
        pre = pre + _linear(h, params["context_weights.0"]) * made.context_gain
    hidden = jax.nn.elu(pre)
    slope = jnp.where(pre > 0, 1.0, jnp.exp(jnp.minimum(pre, 0.0)))
    w_out = jnp.where(made.output_mask, params["output_weight"], 0.0) * made.output_gain  # [2 D, H]
    m, s = jnp.split(_linear(hidden, w_out) + params["output_bias"], 2, axis=-1)
    v = jnp.where(made.skip_mask, params["skip_weight"], 0.0) * made.skip_gain if made.skip else None
    if v is not None:
        m = m + _linear(z, v)
    y, d, f, c = _step_terms(m, s, z, gated)
    wm, ws = jnp.split(w_out, 2, axis=0)
    shape = jnp.broadcast_shapes(jnp.shape(g), y.shape)
    g, d, f = (jnp.broadcast_to(t, shape) for t in (g, d, f))
    a = (f[..., None] * wm + c[..., None] * ws) * slope[..., None, :]  # A diag(elu'), [..., D, H]
    if made.reverse:  # J upper triangular: flip every D axis so that it is lower
        g, d, f, a, w1 = g[..., ::-1], d[..., ::-1], f[..., ::-1], a[..., ::-1, :], w1[:, ::-1]
        v = None if v is None else v[::-1, ::-1]
    D = made.input_dim
    r = jnp.zeros((*shape[:-1], w1.shape[0]), g.dtype)  # A^T y over the blocks solved
    u = jnp.zeros_like(g)  # V^T (f y) over the blocks solved
    solved = []
    for start in reversed(range(0, D, block)):
        stop = min(start + block, D)
        w1_b = w1[:, start:stop]  # [H, b]
        a_b = a[..., start:stop, :]
        jac_b = a_b @ w1_b + d[..., start:stop, None] * jnp.eye(stop - start, dtype=d.dtype)
        if v is not None:
            jac_b = jac_b + f[..., start:stop, None] * v[start:stop, start:stop]
        rhs = g[..., start:stop] - r @ w1_b - u[..., start:stop]
        y_b = _solve_upper(jnp.swapaxes(jac_b, -1, -2), rhs)
        solved.append(y_b)
        r = r + (a_b * y_b[..., None]).sum(-2)
        if v is not None:
            u = u + (f[..., start:stop] * y_b) @ v[start:stop, :]
    out = jnp.concatenate(solved[::-1], axis=-1)
    return out[..., ::-1] if made.reverse else out


def solve_jacobian_transpose(flow: IAF, eps, context, grad, block: int | None = SOLVE_BLOCK):
    """``(d flow(eps) / d eps)^-T grad`` per draw, ``[..., D]``, with ``flow.params``. A draw whose
    result is not finite (a numerically singular Jacobian) gets zeros.

    Args:
        flow: the ``IAF`` (its context is ``context``, not ``flow.context``).
        eps: ``[..., D]``, the flow's input.
        context: ``[..., C]`` or None.
        grad: ``[..., D]``, a cotangent of the flow's output.
        block: block size of the blocked solve (None: form each step's whole Jacobian).
    """
    x, steps = eps, []
    for made, params in zip(flow.steps, flow.params):  # each step's input; its Jacobian if formed
        if block is not None and len(made.hidden_dims) == 1:
            steps.append((made, params, x, None))
            x = _step(made, params, x, context, flow.gated)[0]
        else:
            y, jac = _step_jacobian(made, params, x, context, flow.gated)
            steps.append((made, params, x, jac))
            x = y
    # (J_K ... J_1)^-T = J_K^-T ... J_1^-T: the first step's solve comes first
    g = jnp.broadcast_to(grad, jnp.broadcast_shapes(jnp.shape(grad), x.shape))
    for made, params, x_in, jac in steps:
        if jac is None:
            g = _step_blocked(made, params, x_in, context, flow.gated, g, block)
        else:  # J lower triangular (upper if reversed): J^T the other way
            shape = jnp.broadcast_shapes(jac.shape[:-2], g.shape[:-1])
            jac = jnp.broadcast_to(jac, (*shape, *jac.shape[-2:]))
            g = jax.lax.linalg.triangular_solve(jac, jnp.broadcast_to(g, (*shape, g.shape[-1]))[..., None],
                                                left_side=True, lower=not made.reverse,
                                                transpose_a=True)[..., 0]
    # a draw whose Jacobian is numerically singular gets no path term rather than a NaN
    return jnp.where(jnp.isfinite(g).all(-1, keepdims=True), g, 0.0)
