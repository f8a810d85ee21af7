"""MADE conditioner of an IAF step in JAX: ``z [..., D]`` (and context ``h [..., C]``) -> ``(m, s)``.

Parameters are plain pytrees (a dict of arrays per network), stored with ``numpyro.param``: no
module framework, nothing hidden, the same names and ``weight[out, in]`` layout as the PyTorch
twin (so converting weights is a copy), and ``jit``/``vmap``/``grad`` see ordinary arrays.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .masks import made_masks

__all__ = ["MADE"]

Params = dict[str, jnp.ndarray]


def _linear(x: jnp.ndarray, weight: jnp.ndarray) -> jnp.ndarray:
    """``x [..., in] @ weight[out, in].T`` without materialising the transpose."""
    return jax.lax.dot_general(x, weight, (((x.ndim - 1,), (1,)), ((), ())))


def _masked_linear(x: jnp.ndarray, weight: jnp.ndarray, mask: jnp.ndarray, gain: float) -> jnp.ndarray:
    """``gain * x @ (weight * mask).T`` for a boolean ``mask [out, in]``: a select and a scalar
    multiply of the output, which XLA runs much faster than a float mask times the weights."""
    return _linear(x, jnp.where(mask, weight, 0.0)) * gain


class MADE:
    """Masked MLP with ELU hidden layers returning the IAF step's ``(m, s)``, each ``[..., D]``.

    ``hidden_l = elu(W_l^masked hidden_{l-1} + U_l h + b_l)``;
    ``m = W_m^masked hidden_L + b_m (+ V^strict-lower z if skip)``, ``s = W_s^masked hidden_L + b_s``.
    Same maths, names and defaults as ``pyro_iaf.MADE``; ``made(z, h)`` uses ``made.params``,
    ``made.apply(params, z, h)`` any other parameters of the same structure.

    Args:
        input_dim: ``D``, the number of inputs (and of each output ``m``, ``s``).
        hidden_dims: widths of the ELU hidden layers (may be empty).
        context_dim: size ``C`` of the context ``h`` fed to every hidden layer (0: none).
        skip: add the strictly lower-triangular linear term ``V z`` to ``m``.
        reverse: use the reversed variable order.
        s_bias: initial value of ``b_s`` (the gate's or log-scale's bias).
        output_scale: scale of the output layer's initial weights.
        seed: seed of the initial weights.

    Example:
        >>> made = MADE(5, (16,), context_dim=3)
        >>> m, s = made(jnp.ones((7, 5)), jnp.ones((7, 3)))
        >>> m.shape, s.shape
        ((7, 5), (7, 5))
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int] = (),
        *,
        context_dim: int = 0,
        skip: bool = True,
        reverse: bool = False,
        s_bias: float = 2.0,
        output_scale: float = 0.01,
        seed: int = 0,
    ) -> None:
        self.input_dim, self.context_dim = input_dim, context_dim
        self.hidden_dims, self.skip, self.reverse = tuple(hidden_dims), skip, reverse
        self.s_bias, self.output_scale = s_bias, output_scale
        hidden_masks, output_mask, skip_mask = made_masks(
            input_dim, self.hidden_dims, context=context_dim > 0, reverse=reverse
        )
        # the degree of each first-layer hidden unit (the number of inputs it sees), NumPy: the plan
        # of the blocked solve of the path-derivative score (``masks.coupling_units``)
        self.unit_degrees = (hidden_masks[0] != 0).sum(1) if hidden_masks else np.zeros(0, np.int64)
        # each layer's output is scaled by the gain 1/sqrt(fan_in): weights are stored at unit
        # scale, so Adam's step in function space shrinks with the width ("equalized learning rate")
        widths = (input_dim, *self.hidden_dims)
        self.hidden_masks = [jnp.asarray(m > 0) for m in hidden_masks]
        self.hidden_gains = [1 / math.sqrt(w) for w in widths[:-1]]
        self.output_mask = jnp.tile(jnp.asarray(output_mask > 0), (2, 1))
        self.output_gain = 1 / math.sqrt(widths[-1])
        self.skip_mask = jnp.asarray(skip_mask > 0)
        self.skip_gain = 1 / math.sqrt(input_dim)
        self.context_gain = 1 / math.sqrt(max(context_dim, 1))
        self.params = self.init_params(jax.random.PRNGKey(seed))

    def init_params(self, key: jax.Array) -> Params:
        """Fresh parameters: hidden ``N(0, 1/fan_in)``, output ``output_scale`` times that."""
        return _init_params(
            key,
            self.input_dim,
            self.hidden_dims,
            self.context_dim,
            self.skip,
            float(self.s_bias),
            float(self.output_scale),
        )

    def __call__(self, z: jnp.ndarray, h: jnp.ndarray | None = None):
        return self.apply(self.params, z, h)

    def apply(self, params: Params, z: jnp.ndarray, h: jnp.ndarray | None = None):
        """``z [..., D]``, ``h [..., C]`` or None -> ``(m, s)``, each ``[..., D]``."""
        if (h is None) != (self.context_dim == 0):
            raise ValueError(
                f"MADE was built with context_dim={self.context_dim} but got context "
                f"{'None' if h is None else tuple(h.shape)}; pass h of shape [..., "
                f"{self.context_dim}] (use flow.condition(h)) or build it with context_dim=0."
            )
        x = z
        for l, (mask, gain) in enumerate(zip(self.hidden_masks, self.hidden_gains)):
            pre = _masked_linear(x, params[f"hidden_weights.{l}"], mask, gain) + params[f"hidden_biases.{l}"]
            if h is not None:
                pre = pre + _linear(h, params[f"context_weights.{l}"]) * self.context_gain
            x = jax.nn.elu(pre)
        out = _masked_linear(x, params["output_weight"], self.output_mask, self.output_gain)
        out = out + params["output_bias"]
        if h is not None and not self.hidden_dims:
            out = out + _linear(h, params["context_weights.0"]) * self.context_gain
        m, s = jnp.split(out, 2, axis=-1)
        if self.skip:
            m = m + _masked_linear(z, params["skip_weight"], self.skip_mask, self.skip_gain)
        return m, s

    def apply_with_jacobian(self, params: Params, z: jnp.ndarray, h: jnp.ndarray | None = None):
        """``(m, s, dm/dz, ds/dz)``: ``m, s [..., D]`` as :meth:`apply`, and their Jacobians
        ``[..., D, D]`` (``[i, j] = d out_i / d z_j``, strictly triangular) from the masked weight
        products, ``W_out diag(elu') W_L ... diag(elu') W_1``: one batched matrix product per layer
        instead of ``D`` forward-mode passes."""
        x, jac = z, None  # jac: d x / d z, [..., width, D] (None: the identity)
        for l, (mask, gain) in enumerate(zip(self.hidden_masks, self.hidden_gains)):
            w = jnp.where(mask, params[f"hidden_weights.{l}"], 0.0) * gain
            pre = _linear(x, w) + params[f"hidden_biases.{l}"]
            if h is not None:
                pre = pre + _linear(h, params[f"context_weights.{l}"]) * self.context_gain
            x = jax.nn.elu(pre)
            slope = jnp.where(pre > 0, 1.0, jnp.exp(jnp.minimum(pre, 0.0)))
            jac = slope[..., :, None] * (w if jac is None else w @ jac)
        w_out = jnp.where(self.output_mask, params["output_weight"], 0.0) * self.output_gain
        out = _linear(x, w_out) + params["output_bias"]
        if h is not None and not self.hidden_dims:
            out = out + _linear(h, params["context_weights.0"]) * self.context_gain
        d_out = w_out if jac is None else w_out @ jac  # [..., 2 D, D]
        m, s = jnp.split(out, 2, axis=-1)
        dm, ds = jnp.split(d_out, 2, axis=-2)
        if self.skip:
            v = jnp.where(self.skip_mask, params["skip_weight"], 0.0) * self.skip_gain
            m, dm = m + _linear(z, v), dm + v
        return m, s, dm, ds


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4, 5, 6))
def _init_params(
    key: jax.Array,
    D: int,
    hidden_dims: tuple[int, ...],
    C: int,
    skip: bool,
    s_bias: float,
    output_scale: float,
) -> Params:
    """``MADE.init_params``, compiled once per architecture (not once per MADE or per op)."""
    widths = (D, *hidden_dims)
    keys = iter(jax.random.split(key, 2 * len(widths) + 2))
    params: Params = {}
    for l, (fan_in, width) in enumerate(zip(widths, hidden_dims)):
        params[f"hidden_weights.{l}"] = jax.random.normal(next(keys), (width, fan_in))
        params[f"hidden_biases.{l}"] = jnp.zeros(width)
        if C:
            params[f"context_weights.{l}"] = jax.random.normal(next(keys), (width, C))
    last = widths[-1]
    params["output_weight"] = jax.random.normal(next(keys), (2 * D, last)) * output_scale
    params["output_bias"] = jnp.concatenate([jnp.zeros(D), jnp.full((D,), s_bias)])
    if C and not hidden_dims:
        params["context_weights.0"] = jax.random.normal(next(keys), (2 * D, C)) * output_scale
    if skip:
        params["skip_weight"] = jnp.zeros((D, D))
    return params
