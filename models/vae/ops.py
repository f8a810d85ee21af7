"""The few tensor ops the networks of :mod:`models.vae.nets` need, per backend (PyTorch layouts).

``dense(x, w[out, in], b)``, ``conv(x[B, C, H, W], w[out, in, k, k], b, stride, padding)``,
``conv_t(x, w[in, out, k, k], b, stride, padding, output_padding)`` (``torch.nn.functional.
conv_transpose2d`` semantics), ``elu``, ``softplus``, ``reshape``. Imports are lazy.
"""

from __future__ import annotations

from types import SimpleNamespace

__all__ = ["torch_ops", "jax_ops"]


def torch_ops() -> SimpleNamespace:
    import torch
    import torch.nn.functional as F

    return SimpleNamespace(
        dense=F.linear,
        conv=lambda x, w, b, stride, padding: F.conv2d(x, w, b, stride, padding),
        conv_t=lambda x, w, b, stride, padding, op: F.conv_transpose2d(x, w, b, stride, padding, op),
        elu=F.elu,
        softplus=F.softplus,
        reshape=torch.reshape,
    )


def jax_ops() -> SimpleNamespace:
    import jax
    import jax.numpy as jnp

    dn = ("NCHW", "OIHW", "NCHW")

    def conv(x, w, b, stride, padding):
        y = jax.lax.conv_general_dilated(
            x, w, (stride, stride), [(padding, padding)] * 2, dimension_numbers=dn
        )
        return y + b[:, None, None]

    def conv_t(x, w, b, stride, padding, op):
        # the gradient of a strided conv: dilate the input, flip the kernel, swap in/out
        k = w.shape[-1]
        w = jnp.flip(w, (2, 3)).transpose(1, 0, 2, 3)
        pad = [(k - 1 - padding, k - 1 - padding + op)] * 2
        y = jax.lax.conv_general_dilated(
            x, w, (1, 1), pad, lhs_dilation=(stride, stride), dimension_numbers=dn
        )
        return y + b[:, None, None]

    return SimpleNamespace(
        dense=lambda x, w, b: x @ w.T + b,
        conv=conv,
        conv_t=conv_t,
        elu=jax.nn.elu,
        softplus=jax.nn.softplus,
        reshape=jnp.reshape,
    )
