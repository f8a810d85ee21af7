"""Plain baselines of the ResNet VAE for the speed benchmark: no PPL, the same network and weights.

:class:`PlainJaxResNetVAE` (JAX + ``optax.adamax``, one compiled step per minibatch: on XLA's
CPU backend a ``lax.scan`` of these steps ran 5x slower per step, an unrolled one as fast as this)
and :class:`PlainTorchResNetVAE` (a ``torch.nn.ParameterDict``, ``torch.optim.Adamax`` in a
plain loop) run the :class:`~models.resnet_vae.nets.Net` of ours (the same weight-normalised
convolutions, the same MADE steps of ``numpyro_iaf`` / ``pyro_iaf``) on the flat weights of
:func:`~models.resnet_vae.init_params`, and write the objective directly, one pass each way
(:func:`plain_terms`, written once over the op set)::

    up pass:       (qm_i, q_logsd_i, c_up_i) for every layer
    top-down, i = L-1..0, from h_top:
        (pm, p_logsd, rm, r_logsd, c_down, d) = down_i(h)
        z_i^0 = qm + rm + exp(q_logsd + r_logsd) * eps_i,  (z_i, log_sigma_i) = IAF_i(z_i^0; c_up + c_down)
        log q += log N(eps_i) - (q_logsd + r_logsd) - log_sigma_i,   log p += log N(z_i; pm, exp(p_logsd))
        h = merge_i(h, z_i, d)
    log p += log p(x | decode(h));    loss = -sum_b (log p - log q) + B sum_{i,c} relu(lambda - KL_{i,c})

So ours over theirs is what Pyro / NumPyro and our model/guide code add (the guide and the model
each run the top-down pass), not another network. ``tests/test_resnet_vae.py`` checks that both
give our ``log p(x, z)``, ``log q(z | x)`` and free-bits loss for the same weights and draws.
"""

from __future__ import annotations

import math

import numpy as np

from .config import ResNetVAEConfig
from .likelihood import discretized_logistic_log_prob
from .nets import Net

__all__ = ["PlainJaxResNetVAE", "PlainTorchResNetVAE", "PLAIN", "plain_terms", "noise_shapes"]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def noise_shapes(cfg: ResNetVAEConfig, batch: int) -> list[tuple[int, ...]]:
    """Shapes of the standard-normal noise ``eps_i [B, zdim, s_i, s_i]``, bottom layer first."""
    return [(batch, cfg.zdim, s, s) for s in cfg.layer_sides()]


def plain_terms(net: Net, p: dict, x, eps: list, free_bits: float = 0.0):
    """``(log p(x, z) [B], log q(z | x) [B], free-bits penalty (scalar), [z_i^0])`` for the noise
    ``eps`` (bottom first, :func:`noise_shapes`); ``x [B, C*S*S]``. Any op set (``net.F``)."""
    F, cfg = net.F, net.cfg
    B = x.shape[0]
    L = net.layers(p)
    ups = net.up(L, net.image(x))
    h = net.top(p, B)
    log_p = log_q = penalty = 0.0
    z0s = [None] * cfg.num_layers
    for i in reversed(range(cfg.num_layers)):
        qm, q_logsd, c_up = ups[i]
        pm, p_logsd, rm, r_logsd, c_down, d = net.down(L, i, h)
        logsd = q_logsd + r_logsd
        z = z0s[i] = qm + rm + F.exp(logsd) * eps[i]
        lq = -0.5 * eps[i] ** 2 - logsd - HALF_LOG_2PI
        if cfg.flows:
            z, log_sigma = net.flow(p, i, z, c_up + c_down)
            lq = lq - log_sigma
        lp = -0.5 * ((z - pm) * F.exp(-p_logsd)) ** 2 - p_logsd - HALF_LOG_2PI
        log_q = log_q + lq.sum((1, 2, 3))
        log_p = log_p + lp.sum((1, 2, 3))
        if free_bits > 0:
            shortfall = free_bits - (lq - lp).sum((2, 3)).mean(0)  # [zdim]
            penalty = penalty + B * F.where(shortfall > 0, shortfall, 0 * shortfall).sum()
        h = net.merge(L, i, h, z, d)
    out = F.reshape(net.decode(L, h), (B, -1))
    if cfg.likelihood == "bernoulli":
        log_px = x * out - F.softplus(out)
    else:
        C = cfg.channels
        log_scale = F.reshape(F.broadcast_to(F.reshape(p["dec_log_scale"], (1, C, 1)), (B, C, cfg.side**2)),
                              (B, -1))
        log_px = discretized_logistic_log_prob(F, x, out, log_scale)
    return log_p + log_px.sum(1), log_q, penalty, z0s


class PlainJaxResNetVAE:
    """The ResNet VAE in JAX + optax; ``train_epoch`` runs the compiled :meth:`step` per minibatch.

    ``params``: the flat weights (as ours take them); ``cfg.seed`` seeds the noise's PRNG key.
    Not a ``lax.scan`` over the minibatches: on XLA's CPU backend that ran 5x slower per step
    (634-742 vs 126-285 ms, 4 steps at the benchmark's sizes, load ~8); unrolled it matched this loop."""

    backend = "plain-jax"

    def __init__(self, cfg: ResNetVAEConfig, params: dict[str, np.ndarray]) -> None:
        import jax
        import jax.numpy as jnp
        import optax

        from .numpyro_backend import NumPyroNets

        self.cfg = cfg
        self.net = NumPyroNets(cfg)  # Net over JAX ops + the cached numpyro_iaf.MADE masks; no numpyro.param
        self.opt = optax.adamax(cfg.lr)
        self.params = {k: jnp.asarray(v, jnp.float32) for k, v in params.items()}
        self.opt_state = self.opt.init(self.params)
        self.key = jax.random.PRNGKey(cfg.seed)
        self._step = jax.jit(self.step)
        self._compiled = None
        self._terms = jax.jit(self.terms_at)

    def terms_at(self, params, x, eps):
        """:func:`plain_terms` with this VAE's network and free bits."""
        return plain_terms(self.net, params, x, eps, self.cfg.free_bits)

    def log_weights(self, x: np.ndarray, eps: list[np.ndarray]) -> tuple:
        """NumPy ``(log p(x, z) [B], log q(z | x) [B], loss, [z_i^0])`` with the current weights."""
        import jax.numpy as jnp

        lp, lq, pen, z0 = self._terms(self.params, jnp.asarray(x, jnp.float32),
                                      [jnp.asarray(e, jnp.float32) for e in eps])
        lp, lq = np.asarray(lp), np.asarray(lq)
        return lp, lq, float(-(lp - lq).sum() + pen), [np.asarray(z) for z in z0]

    def loss_fn(self, params, x, key):
        """The training loss (``-ELBO`` plus the free-bits penalty, summed over the batch)."""
        import jax

        keys = jax.random.split(key, self.cfg.num_layers)
        eps = [jax.random.normal(k, s) for k, s in zip(keys, noise_shapes(self.cfg, x.shape[0]))]
        log_p, log_q, penalty, _ = self.terms_at(params, x, eps)
        return -(log_p - log_q).sum() + penalty

    def step(self, carry, x):
        """One Adamax step: ``((params, opt_state, key), x [B, P]) -> (carry, loss)``."""
        import jax
        import optax

        params, opt_state, key = carry
        key, sub = jax.random.split(key)
        loss, grads = jax.value_and_grad(self.loss_fn)(params, x, sub)
        updates, opt_state = self.opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    def warmup(self, xb) -> float:
        """Compile :meth:`step` for minibatches shaped like ``xb`` (once per shape); seconds."""
        import time

        import jax.numpy as jnp

        t0 = time.perf_counter()
        carry = (self.params, self.opt_state, self.key)
        if self._compiled is None or self._shape != np.shape(xb):
            self._compiled = self._step.lower(carry, jnp.asarray(xb, jnp.float32)).compile()
            self._shape = np.shape(xb)
        return time.perf_counter() - t0

    def train_epoch(self, batches: np.ndarray, progress=None) -> float:
        """One pass over ``batches [nb, B, P]``; mean training loss per image."""
        import jax.numpy as jnp

        if self._compiled is None:
            self.warmup(batches[0])
        carry, losses = (self.params, self.opt_state, self.key), []
        for xb in batches:
            carry, loss = self._compiled(carry, jnp.asarray(xb, jnp.float32))
            losses.append(loss)
            if progress is not None:
                progress.update(1)
        self.params, self.opt_state, self.key = carry
        return float(jnp.stack(losses).sum()) / batches.shape[0] / batches.shape[1]


class PlainTorchResNetVAE:
    """The ResNet VAE in PyTorch: the same ``Net`` and ``pyro_iaf.MADE`` steps, the objective by
    hand, ``torch.optim.Adamax`` (as ours) in a plain loop."""

    backend = "plain-torch"

    def __init__(self, cfg: ResNetVAEConfig, params: dict[str, np.ndarray]) -> None:
        import torch

        from .pyro_backend import PyroNets

        self.cfg = cfg
        self.net = PyroNets(cfg, params)  # Net over torch ops; its module holds the weights
        self.p = self.net.module.p  # read directly: no pyro.module
        self.optim = torch.optim.Adamax(self.net.module.parameters(), lr=cfg.lr)

    def log_weights(self, x: np.ndarray, eps: list[np.ndarray]) -> tuple:
        """NumPy ``(log p(x, z) [B], log q(z | x) [B], loss, [z_i^0])`` with the current weights."""
        import torch

        with torch.no_grad():
            lp, lq, pen, z0 = plain_terms(self.net, self.p, torch.as_tensor(np.asarray(x, np.float32)),
                                          [torch.as_tensor(np.asarray(e, np.float32)) for e in eps],
                                          self.cfg.free_bits)
        return lp.numpy(), lq.numpy(), float(-(lp - lq).sum() + pen), [z.numpy() for z in z0]

    def step(self, xb) -> float:
        """One Adamax step on ``xb [B, P]`` (a float32 tensor); the loss (sum over the batch)."""
        import torch

        eps = [torch.randn(s) for s in noise_shapes(self.cfg, xb.shape[0])]
        log_p, log_q, penalty, _ = plain_terms(self.net, self.p, xb, eps, self.cfg.free_bits)
        loss = -(log_p - log_q).sum() + penalty
        self.optim.zero_grad()
        loss.backward()
        self.optim.step()
        return loss.item()

    def warmup(self, xb) -> float:
        return 0.0

    def train_epoch(self, batches: np.ndarray, progress=None) -> float:
        """One pass over ``batches [nb, B, P]``; mean training loss per image."""
        import torch

        total = 0.0
        for xb in torch.from_numpy(np.ascontiguousarray(batches, dtype=np.float32)):
            total += self.step(xb)
            if progress is not None:
                progress.update(1)
        return total / batches.shape[0] / batches.shape[1]


PLAIN = {"numpyro": PlainJaxResNetVAE, "pyro": PlainTorchResNetVAE}
