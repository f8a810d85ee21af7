"""The op sets of the ResNet VAE: :mod:`models.vae.ops` plus a few ops, and a NumPy twin.

Each op set (``torch_ops()``, ``jax_ops()``, ``numpy_ops()``) has ``dense``, ``conv``, ``conv_t``
(PyTorch layouts and semantics, see :mod:`models.vae.ops`), ``elu``, ``softplus``, ``reshape``
and here also ``exp``, ``log``, ``sigmoid``, ``log_sigmoid``, ``where``, ``broadcast_to``,
``concat(xs, axis)``, ``sumsq(x, axes)`` (keepdims), ``upsample2`` (nearest, x2 on the last two
axes), ``to_pixels`` (``[B, C, H, W] -> [B*H*W, C]``) and ``from_pixels`` (its inverse, given ``B, H, W``).

The NumPy set runs the data-dependent initialisation (:mod:`models.resnet_vae.weightnorm`), so
both backends start from the very same weights; it is slow (im2col) and meant for one batch.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from models.vae import ops as vae_ops

__all__ = ["torch_ops", "jax_ops", "numpy_ops"]


def _pixels(transpose):
    def to_pixels(x):
        B, C, H, W = x.shape
        return transpose(x, (0, 2, 3, 1)).reshape(B * H * W, C)

    def from_pixels(y, B, H, W):
        return transpose(y.reshape(B, H, W, y.shape[-1]), (0, 3, 1, 2))

    return to_pixels, from_pixels


def torch_ops() -> SimpleNamespace:
    import torch
    import torch.nn.functional as F

    to_pixels, from_pixels = _pixels(lambda x, perm: x.permute(*perm))
    return SimpleNamespace(
        **vars(vae_ops.torch_ops()),
        exp=torch.exp,
        log=torch.log,
        sigmoid=torch.sigmoid,
        log_sigmoid=F.logsigmoid,
        where=torch.where,
        broadcast_to=torch.broadcast_to,
        concat=lambda xs, axis: torch.cat(xs, dim=axis),
        sumsq=lambda x, axes: (x * x).sum(dim=axes, keepdim=True),
        upsample2=lambda x: x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1),
        to_pixels=to_pixels,
        from_pixels=from_pixels,
    )


def jax_ops() -> SimpleNamespace:
    import jax
    import jax.numpy as jnp

    to_pixels, from_pixels = _pixels(jnp.transpose)
    return SimpleNamespace(
        **vars(vae_ops.jax_ops()),
        exp=jnp.exp,
        log=jnp.log,
        sigmoid=jax.nn.sigmoid,
        log_sigmoid=jax.nn.log_sigmoid,
        where=jnp.where,
        broadcast_to=jnp.broadcast_to,
        concat=lambda xs, axis: jnp.concatenate(xs, axis=axis),
        sumsq=lambda x, axes: (x * x).sum(axis=axes, keepdims=True),
        upsample2=lambda x: jnp.repeat(jnp.repeat(x, 2, axis=-2), 2, axis=-1),
        to_pixels=to_pixels,
        from_pixels=from_pixels,
    )


def _np_conv(x, w, b, stride, padding):
    """``x [B, C, H, W]``, ``w [O, C, k, k]`` -> ``[B, O, H', W']`` (cross-correlation, im2col)."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    return np.einsum("bchwij,ocij->bohw", win, w, optimize=True) + b[:, None, None]


def _np_conv_t(x, w, b, stride, padding, op):
    """``conv_transpose2d``: dilate ``x`` by ``stride``, pad, convolve with the flipped kernel."""
    B, C, H, W = x.shape
    k = w.shape[-1]
    xd = np.zeros((B, C, (H - 1) * stride + 1, (W - 1) * stride + 1), x.dtype)
    xd[:, :, ::stride, ::stride] = x
    lo, hi = k - 1 - padding, k - 1 - padding + op
    xd = np.pad(xd, ((0, 0), (0, 0), (lo, hi), (lo, hi)))
    return _np_conv(xd, np.flip(w, (2, 3)).transpose(1, 0, 2, 3), b, 1, 0)


def numpy_ops() -> SimpleNamespace:
    def softplus(x):
        return np.logaddexp(0.0, x)

    to_pixels, from_pixels = _pixels(np.transpose)
    return SimpleNamespace(
        dense=lambda x, w, b: x @ w.T + b,
        conv=_np_conv,
        conv_t=_np_conv_t,
        elu=lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0))),
        softplus=softplus,
        reshape=np.reshape,
        exp=np.exp,
        log=np.log,
        sigmoid=lambda x: 1 / (1 + np.exp(-x)),
        log_sigmoid=lambda x: -softplus(-x),
        where=np.where,
        broadcast_to=np.broadcast_to,
        concat=lambda xs, axis: np.concatenate(xs, axis=axis),
        sumsq=lambda x, axes: (x * x).sum(axis=axes, keepdims=True),
        upsample2=lambda x: np.repeat(np.repeat(x, 2, axis=-2), 2, axis=-1),
        to_pixels=to_pixels,
        from_pixels=from_pixels,
    )
