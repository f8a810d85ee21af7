"""The ResNet VAE's networks, written once over an op set (PyTorch layouts, flat parameter dicts).

Bottom-up (inference only), images ``x [B, C, S, S]`` scaled to ``[-0.5, 0.5]``::

    h = conv5x5/2(x)                                          # [B, hidden, S/2, S/2]
    layer i = 0..L-1:  qm, q_logsd, c_up, a = split(conv3x3(elu(h)))     (stride 2 if i halves)
                       h = down(h) + 0.1 * conv3x3(elu(a))

Top-down (shared by the prior and the posterior), from ``h = h_top`` (a learned vector)::

    layer i = L-1..0:  pm, p_logsd, rm, r_logsd, c_down, d = split(conv3x3(elu(h)))
                       prior      p(z_i | z_>i)    = N(pm, exp(p_logsd))
                       posterior  q(z_i | x, z_>i) = IAF_{c_up + c_down}(N(qm + rm, exp(q_logsd + r_logsd)))
                       h = up(h) + 0.1 * conv3x3(elu([z_i, d]))       (transposed, stride 2, if i halves)
    decoder: out = conv_t5x5/2(elu(h))  -> Bernoulli logits [B, C, S, S] or logistic means

This is the layer of the paper's code (openai/iaf ``IAFLayer``), with every convolution
weight-normalised (:mod:`models.resnet_vae.weightnorm`). The IAF differs from the paper's: each
step is the project's MADE (``numpyro_iaf.MADE`` / ``pyro_iaf.MADE``, two ELU hidden layers)
applied at every pixel over the ``zdim`` latent channels, conditioned on that pixel's context
(a ``[B*H*W, zdim]`` reshape), instead of masked 3x3 convolutions that also see neighbouring
pixels; gated steps ``z <- sigmoid(s) z + (1 - sigmoid(s)) m`` as in the paper's eq. (11).
"""

from __future__ import annotations

import math

import numpy as np

from .config import ResNetVAEConfig
from .weightnorm import WN, init_layer

__all__ = ["Net", "init_params", "made_names", "param_count"]

RES_SCALE = 0.1  # residual branches enter at 0.1 (the paper's code)


def made_names(cfg: ResNetVAEConfig) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape)]`` of one MADE step's parameters, named as in ``*_iaf.MADE``."""
    Z, H, C = cfg.zdim, cfg.iaf_hidden, cfg.hidden
    names = [("hidden_weights.0", (H, Z)), ("hidden_biases.0", (H,)), ("context_weights.0", (H, C)),
             ("hidden_weights.1", (H, H)), ("hidden_biases.1", (H,)), ("context_weights.1", (H, C)),
             ("output_weight", (2 * Z, H)), ("output_bias", (2 * Z,)), ("skip_weight", (Z, Z))]
    return names


def _made_key(i: int, t: int, name: str) -> str:
    return f"l{i}_iaf{t}_" + name.replace(".", "_")


def init_params(cfg: ResNetVAEConfig, seed: int = 0, gate_bias: float = 2.0,
                output_scale: float = 0.01) -> dict[str, np.ndarray]:
    """Flat ``{name: float32 array}`` drawn with ``seed`` (weight-norm ``g = init_scale``,
    ``b = 0``; see :func:`models.resnet_vae.weightnorm` for the data-dependent init).

    MADE steps start like the project's IAF: unit-scale weights (the masks carry the gains),
    output weights times ``output_scale``, ``s`` bias ``gate_bias``, zero skip weights.
    """
    rng = np.random.default_rng(seed)
    p: dict[str, np.ndarray] = {}
    Z, Hd, C = cfg.zdim, cfg.hidden, cfg.channels
    out_ch = C
    init_layer(rng, p, "x_enc", "conv", C, Hd, 5)
    for i in range(cfg.num_layers):
        init_layer(rng, p, f"l{i}_up1", "conv", Hd, 2 * Z + 2 * Hd, 3, 0.1)
        init_layer(rng, p, f"l{i}_up2", "conv", Hd, Hd, 3)
        init_layer(rng, p, f"l{i}_down1", "conv", Hd, 4 * Z + 2 * Hd, 3, 0.1)
        kind = "conv_t" if cfg.downsamples(i) else "conv"
        init_layer(rng, p, f"l{i}_down2", kind, Z + Hd, Hd, 3)
        for t in range(cfg.flows):
            for name, shape in made_names(cfg):
                a = rng.standard_normal(shape).astype(np.float32)
                if name == "output_weight":
                    a *= output_scale
                elif name == "output_bias":
                    a = np.concatenate([np.zeros(Z), np.full(Z, gate_bias)]).astype(np.float32)
                elif "biases" in name or name == "skip_weight":
                    a = np.zeros(shape, np.float32)
                p[_made_key(i, t, name)] = a
    p["h_top"] = np.zeros(Hd, np.float32)
    init_layer(rng, p, "x_dec", "conv_t", Hd, out_ch, 5, 0.1 if cfg.likelihood == "logistic" else 1.0)
    if cfg.likelihood == "logistic":
        p["dec_log_scale"] = np.full(C, math.log(0.1), np.float32)
    return p


def param_count(params: dict) -> int:
    """Number of scalars in a flat parameter dict (any backend's arrays)."""
    return int(sum(np.prod(np.shape(v), dtype=np.int64) for v in params.values()))


class Net:
    """The architecture over op set ``F``; every method takes the flat parameter dict ``p``.

    ``made(t, params, z, h) -> (m, s)``: the backend's MADE step ``t`` (``None``: no IAF, as in
    the NumPy data-dependent init, where the fresh IAF is close to ``z -> 0.88 z``).
    """

    def __init__(self, cfg: ResNetVAEConfig, F, made=None) -> None:
        self.cfg, self.F, self.made = cfg, F, made

    def layers(self, p, init: bool = False, record: dict | None = None) -> WN:
        return WN(self.F, p, init, record)

    def image(self, x):
        """Flat data ``x [B, C*S*S]`` in [0, 1] -> network input ``[B, C, S, S]`` in [-0.5, 0.5]."""
        c = self.cfg
        return self.F.reshape(x, (x.shape[0], c.channels, c.side, c.side)) - 0.5

    def up(self, L: WN, x) -> list[tuple]:
        """Bottom-up pass: ``[(qm, q_logsd, c_up)]`` per layer, bottom first, each ``[B, ., s, s]``."""
        F, Z, Hd = self.F, self.cfg.zdim, self.cfg.hidden
        h = L.conv("x_enc", x, stride=2, padding=2)
        out = []
        for i in range(self.cfg.num_layers):
            ds = self.cfg.downsamples(i)
            a = L.conv(f"l{i}_up1", F.elu(h), stride=2 if ds else 1, init_scale=0.1)
            qm, q_logsd, c_up, a = a[:, :Z], a[:, Z : 2 * Z], a[:, 2 * Z : 2 * Z + Hd], a[:, 2 * Z + Hd :]
            a = L.conv(f"l{i}_up2", F.elu(a))
            h = (h[:, :, ::2, ::2] if ds else h) + RES_SCALE * a
            out.append((qm, q_logsd, c_up))
        return out

    def top(self, p, batch: int):
        """The top-down pass's input ``[B, hidden, s_top, s_top]``."""
        s = self.cfg.layer_sides()[-1]
        h = self.F.reshape(p["h_top"], (1, -1, 1, 1))
        return self.F.broadcast_to(h, (batch, self.cfg.hidden, s, s))

    def down(self, L: WN, i: int, h):
        """Layer ``i``'s top-down split: ``(pm, p_logsd, rm, r_logsd, c_down, d)``."""
        Z, Hd = self.cfg.zdim, self.cfg.hidden
        a = L.conv(f"l{i}_down1", self.F.elu(h), init_scale=0.1)
        return (a[:, :Z], a[:, Z : 2 * Z], a[:, 2 * Z : 3 * Z], a[:, 3 * Z : 4 * Z],
                a[:, 4 * Z : 4 * Z + Hd], a[:, 4 * Z + Hd :])

    def merge(self, L: WN, i: int, h, z, d):
        """Next top-down state from layer ``i``'s sample ``z`` and deterministic maps ``d``."""
        F = self.F
        a = F.elu(F.concat([z, d], 1))
        if self.cfg.downsamples(i):
            return F.upsample2(h) + RES_SCALE * L.conv_t(f"l{i}_down2", a)
        return h + RES_SCALE * L.conv(f"l{i}_down2", a)

    def decode(self, L: WN, h):
        """``[B, C, S, S]``: Bernoulli logits or discretized-logistic means (in [-1, 1] units)."""
        init_scale = 0.1 if self.cfg.likelihood == "logistic" else 1.0
        return L.conv_t("x_dec", self.F.elu(h), stride=2, padding=2, init_scale=init_scale)

    def flow(self, p, i: int, z0, context):
        """IAF of layer ``i`` at every pixel: ``z0 [B, Z, s, s]``, context ``[B, hidden, s, s]`` ->
        ``(z, sum_t log sigma_t)``, both ``[B, Z, s, s]``."""
        F = self.F
        B, _, Hs, Ws = z0.shape
        z, h = F.to_pixels(z0), F.to_pixels(context)
        log_sigma = 0 * z
        for t in range(self.cfg.flows):
            params = {name: p[_made_key(i, t, name)] for name, _ in made_names(self.cfg)}
            m, s = self.made(t, params, z, h)
            sigma = F.sigmoid(s)
            z = sigma * z + (1 - sigma) * m
            log_sigma = log_sigma + F.log_sigmoid(s)
        return F.from_pixels(z, B, Hs, Ws), F.from_pixels(log_sigma, B, Hs, Ws)


def data_init(cfg: ResNetVAEConfig, params: dict[str, np.ndarray], x: np.ndarray, seed: int = 0,
              record: dict | None = None) -> dict[str, np.ndarray]:
    """Data-dependent init of every weight-normalised layer on the init batch ``x [B, C*S*S]``.

    Runs the inference path (bottom-up, then top-down with ``z ~ q`` drawn in NumPy from
    ``seed``; the fresh IAF is left out, it is near ``z -> 0.88 z``) and the decoder in NumPy,
    setting each layer's ``g, b`` so its output has per-channel mean 0 and std ``init_scale``
    on ``x``. Returns a new dict (float32); ``record`` receives every layer's output.
    """
    from .ops import numpy_ops

    x = np.asarray(x, np.float64)
    if x.ndim != 2 or x.shape[1] != cfg.pixels:
        raise ValueError(f"data_init expects x of shape [B, {cfg.pixels}]; got {x.shape}")
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    rng = np.random.default_rng(seed)
    net = Net(cfg, numpy_ops())
    L = net.layers(p, init=True, record=record)
    ups = net.up(L, net.image(x))
    h = net.top(p, len(x))
    for i in reversed(range(cfg.num_layers)):
        qm, q_logsd, _ = ups[i]
        _, _, rm, r_logsd, _, d = net.down(L, i, h)
        z = qm + rm + np.exp(q_logsd + r_logsd) * rng.standard_normal(qm.shape)
        h = net.merge(L, i, h, z, d)
    net.decode(L, h)
    return {k: np.asarray(v, np.float32) for k, v in p.items()}
