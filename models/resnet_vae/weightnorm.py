"""Weight-normalised layers (Salimans & Kingma 2016) over an op set, with data-dependent init.

A layer ``name`` has parameters ``<name>_v`` (direction, PyTorch layout), ``<name>_g`` (gain, one
per output channel) and ``<name>_b``; its weight is ``w = g * v / ||v||``, the norm taken over
everything but the output channel. Data-dependent init (the paper's and its code's): run an
init batch through the network once; each layer first computes ``y = conv(x, v / ||v||)`` and
then sets ``g = s / std_c(y)``, ``b = -s * mean_c(y) / std_c(y)`` (``s`` the layer's
``init_scale``; mean and std per output channel over batch and pixels), so that its output on
that batch has per-channel mean 0 and standard deviation ``s`` (a channel that is constant on
the batch, such as the top layer's prior before ``h_top`` moves, is only centred). The init runs in NumPy
(:func:`models.resnet_vae.ops.numpy_ops`), one function for both backends.

>>> L = WN(F, params)                     # applies layers with the current g, b
>>> y = L.conv("x_enc", x, stride=2, padding=2)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["WN", "init_layer"]

_AXES = {"dense": (1,), "conv": (1, 2, 3), "conv_t": (0, 2, 3)}


def init_layer(rng: np.random.Generator, p: dict, name: str, kind: str, cin: int, cout: int,
               k: int = 1, init_scale: float = 1.0) -> None:
    """Add ``<name>_v`` ~ N(0, 1), ``<name>_g = init_scale``, ``<name>_b = 0`` to ``p``."""
    shape = {"dense": (cout, cin), "conv": (cout, cin, k, k), "conv_t": (cin, cout, k, k)}[kind]
    p[f"{name}_v"] = rng.standard_normal(shape).astype(np.float32) * np.float32(1 / math.sqrt(cin * k * k))
    p[f"{name}_g"] = np.full(cout, init_scale, np.float32)
    p[f"{name}_b"] = np.zeros(cout, np.float32)


class WN:
    """Applies weight-normalised layers of the flat dict ``p`` with op set ``F``.

    ``init=True`` (NumPy ``p``, modified in place): data-dependent init as each layer runs.
    ``record``: a dict that receives every layer's output (pre-activation) by name.
    """

    def __init__(self, F, p, init: bool = False, record: dict | None = None) -> None:
        self.F, self.p, self.init, self.record = F, p, init, record

    def _weight(self, name: str, kind: str):
        v, g = self.p[f"{name}_v"], self.p[f"{name}_g"]
        scale = 1.0 if self.init else g
        shape = (-1, 1) if kind == "dense" else ((1, -1, 1, 1) if kind == "conv_t" else (-1, 1, 1, 1))
        return v * self.F.reshape(scale / self.F.sumsq(v, _AXES[kind]).reshape(-1) ** 0.5, shape)

    def _apply(self, name, kind, y_fn, init_scale):
        w = self._weight(name, kind)
        if not self.init:
            y = y_fn(w, self.p[f"{name}_b"])
        else:
            y = y_fn(w, np.zeros(w.shape[1 if kind == "conv_t" else 0], w.dtype))
            axes = (0,) if kind == "dense" else (0, 2, 3)
            mean, std = y.mean(axes), y.std(axes)
            std = np.where(std > 1e-6, std, 1.0)  # a constant channel (e.g. the top's) keeps g
            self.p[f"{name}_g"] = (init_scale / std).astype(np.float32)
            self.p[f"{name}_b"] = (-init_scale * mean / std).astype(np.float32)
            shape = (1, -1) if kind == "dense" else (1, -1, 1, 1)
            y = (y - mean.reshape(shape)) * (init_scale / std).reshape(shape)
        if self.record is not None:
            self.record[name] = y
        return y

    def dense(self, name: str, x, init_scale: float = 1.0):
        """``x [B, in]`` -> ``[B, out]``."""
        return self._apply(name, "dense", lambda w, b: self.F.dense(x, w, b), init_scale)

    def conv(self, name: str, x, stride: int = 1, padding: int = 1, init_scale: float = 1.0):
        """``x [B, in, H, W]`` -> ``[B, out, H', W']``."""
        return self._apply(name, "conv", lambda w, b: self.F.conv(x, w, b, stride, padding), init_scale)

    def conv_t(self, name: str, x, stride: int = 2, padding: int = 1, output_padding: int = 1,
               init_scale: float = 1.0):
        """Transposed conv ``x [B, in, H, W]`` -> ``[B, out, H', W']`` (``w [in, out, k, k]``)."""
        return self._apply(
            name, "conv_t", lambda w, b: self.F.conv_t(x, w, b, stride, padding, output_padding), init_scale)
