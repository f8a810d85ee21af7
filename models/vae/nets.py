"""Encoder and decoder networks, written once over a tiny per-backend op set.

Parameters are a flat ``{name: array}`` dict per network with PyTorch layouts (dense
``w[out, in]``, conv ``w[out, in, k, k]``, transposed conv ``w[in, out, k, k]``), initialised
in NumPy from a seed, so both backends start from the same weights and converting weights
between them is a copy (:mod:`models.vae.convert`). ``F`` is :data:`TORCH_OPS` or
:data:`JAX_OPS` (see :mod:`models.vae.ops`).

Architectures (``x [B, S*S]`` in {0, 1}; latent ``D``, context ``C``):

- ``mlp``: encoder ``P -> hidden -> hidden -> (mu, sigma, h)``, decoder ``D -> hidden -> hidden
  -> P`` logits; ELU.
- ``resnet`` (the paper's MNIST network, without weight normalisation): encoder = ResNet blocks
  (stride 2 to 16, stride 1, stride 2 to 32, stride 1, stride 2 to 32), 3x3 filters, then dense
  450; the decoder mirrors it with transposed convolutions; ELU.

The encoder's last dense layer gives ``2D + C`` numbers: ``mu``, ``sigma = softplus(.) + 1e-4``
and the IAF context ``h``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Arch", "ARCHS", "init_params", "encode", "decode"]

ARCHS = ("mlp", "resnet")
SIGMA_MIN = 1e-4
RESNET_CHANNELS = (16, 32, 32)
RESNET_DENSE = 450


@dataclass(frozen=True)
class Arch:
    """Shapes of the networks: ``name`` in :data:`ARCHS`, images ``side x side``."""

    name: str = "mlp"
    side: int = 28
    latent_dim: int = 32
    context_dim: int = 32
    hidden: int = 300

    def __post_init__(self) -> None:
        if self.name not in ARCHS:
            raise ValueError(f"Unknown arch {self.name!r}; expected one of {ARCHS}")

    @property
    def pixels(self) -> int:
        return self.side * self.side

    @property
    def encoder_out(self) -> int:
        return 2 * self.latent_dim + self.context_dim

    def sides(self) -> list[int]:
        """Feature-map sides of the ResNet: ``side`` halved (rounded up) three times."""
        s = [self.side]
        for _ in RESNET_CHANNELS:
            s.append((s[-1] + 1) // 2)
        return s


# ---- initialisation (NumPy, shared) -------------------------------------------------------------


def _dense(rng, p, name, fan_in, fan_out, scale=1.0):
    p[f"{name}_w"] = (rng.standard_normal((fan_out, fan_in)) * scale / math.sqrt(fan_in)).astype(np.float32)
    p[f"{name}_b"] = np.zeros(fan_out, np.float32)


def _conv(rng, p, name, cin, cout, k, scale=1.0, transposed=False):
    shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
    p[f"{name}_w"] = (rng.standard_normal(shape) * scale / math.sqrt(cin * k * k)).astype(np.float32)
    p[f"{name}_b"] = np.zeros(cout, np.float32)


def _block(rng, p, name, cin, cout, kind):
    """Residual block params: ``kind`` in {"down", "same", "up"}; second conv starts small."""
    _conv(rng, p, f"{name}_c1", cin, cout, 3, transposed=kind == "up")
    _conv(rng, p, f"{name}_c2", cout, cout, 3, scale=0.1)
    if kind != "same":
        _conv(rng, p, f"{name}_sc", cin, cout, 1, transposed=kind == "up")


def _resnet_plan(arch: Arch):
    """``[(name, cin, cout, kind)]`` of the encoder and of the decoder blocks."""
    c = RESNET_CHANNELS
    enc = [("e0", 1, c[0], "down"), ("e1", c[0], c[0], "same"), ("e2", c[0], c[1], "down"),
           ("e3", c[1], c[1], "same"), ("e4", c[1], c[2], "down")]
    dec = [("d0", c[2], c[2], "up"), ("d1", c[2], c[2], "same"), ("d2", c[2], c[1], "up"),
           ("d3", c[1], c[1], "same"), ("d4", c[1], c[0], "up")]
    return enc, dec


def init_params(arch: Arch, seed: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """``{"encoder": {...}, "decoder": {...}}`` float32 NumPy arrays drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    enc: dict[str, np.ndarray] = {}
    dec: dict[str, np.ndarray] = {}
    P, D, H = arch.pixels, arch.latent_dim, arch.hidden
    if arch.name == "mlp":
        _dense(rng, enc, "l0", P, H)
        _dense(rng, enc, "l1", H, H)
        _dense(rng, enc, "out", H, arch.encoder_out, scale=0.1)
        _dense(rng, dec, "l0", D, H)
        _dense(rng, dec, "l1", H, H)
        _dense(rng, dec, "out", H, P)
    else:
        enc_plan, dec_plan = _resnet_plan(arch)
        flat = RESNET_CHANNELS[-1] * arch.sides()[-1] ** 2
        for name, cin, cout, kind in enc_plan:
            _block(rng, enc, name, cin, cout, kind)
        _dense(rng, enc, "dense", flat, RESNET_DENSE)
        _dense(rng, enc, "out", RESNET_DENSE, arch.encoder_out, scale=0.1)
        _dense(rng, dec, "dense", D, RESNET_DENSE)
        _dense(rng, dec, "unflat", RESNET_DENSE, flat)
        for name, cin, cout, kind in dec_plan:
            _block(rng, dec, name, cin, cout, kind)
        _conv(rng, dec, "out", RESNET_CHANNELS[0], 1, 3)
    # start the decoder's output at the logit of a mean image of ~0.13 (MNIST), for both archs
    dec["out_b"][:] = math.log(0.13 / 0.87)
    return {"encoder": enc, "decoder": dec}


# ---- forward passes (shared; F is the backend's op set) -----------------------------------------


def _apply_block(F, p, name, x, kind, out_side=None):
    h = F.elu(x)
    if kind == "up":
        op = out_side - 2 * x.shape[-1] + 1
        h = F.conv_t(h, p[f"{name}_c1_w"], p[f"{name}_c1_b"], 2, 1, op)
        sc = F.conv_t(x, p[f"{name}_sc_w"], p[f"{name}_sc_b"], 2, 0, op)
    else:
        stride = 2 if kind == "down" else 1
        h = F.conv(h, p[f"{name}_c1_w"], p[f"{name}_c1_b"], stride, 1)
        sc = x if kind == "same" else F.conv(x, p[f"{name}_sc_w"], p[f"{name}_sc_b"], stride, 0)
    h = F.conv(F.elu(h), p[f"{name}_c2_w"], p[f"{name}_c2_b"], 1, 1)
    return sc + h


def encode(F, arch: Arch, p, x):
    """``x [B, P]`` -> ``(mu [B, D], sigma [B, D], h [B, C])``."""
    if arch.name == "mlp":
        a = F.elu(F.dense(x, p["l0_w"], p["l0_b"]))
        a = F.elu(F.dense(a, p["l1_w"], p["l1_b"]))
    else:
        a = F.reshape(x, (x.shape[0], 1, arch.side, arch.side))
        for name, _, _, kind in _resnet_plan(arch)[0]:
            a = _apply_block(F, p, name, a, kind)
        a = F.elu(F.reshape(a, (a.shape[0], -1)))
        a = F.elu(F.dense(a, p["dense_w"], p["dense_b"]))
    out = F.dense(a, p["out_w"], p["out_b"])
    D = arch.latent_dim
    return out[:, :D], F.softplus(out[:, D : 2 * D]) + SIGMA_MIN, out[:, 2 * D :]


def decode(F, arch: Arch, p, z):
    """``z [B, D]`` -> Bernoulli logits ``[B, P]``."""
    if arch.name == "mlp":
        a = F.elu(F.dense(z, p["l0_w"], p["l0_b"]))
        a = F.elu(F.dense(a, p["l1_w"], p["l1_b"]))
        return F.dense(a, p["out_w"], p["out_b"])
    sides = arch.sides()
    a = F.elu(F.dense(z, p["dense_w"], p["dense_b"]))
    a = F.dense(a, p["unflat_w"], p["unflat_b"])
    a = F.reshape(a, (a.shape[0], RESNET_CHANNELS[-1], sides[-1], sides[-1]))
    ups = iter(reversed(sides[:-1]))
    for name, _, _, kind in _resnet_plan(arch)[1]:
        a = _apply_block(F, p, name, a, kind, next(ups) if kind == "up" else None)
    a = F.conv(F.elu(a), p["out_w"], p["out_b"], 1, 1)
    return F.reshape(a, (a.shape[0], arch.pixels))
