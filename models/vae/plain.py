"""Plain baselines of our VAE for the speed benchmark: no PPL, the same networks and weights.

:class:`PlainJaxVAE` (JAX + optax, one jitted ``lax.scan`` per epoch) and :class:`PlainTorchVAE`
(``nn.Module`` s, a hand-written ELBO, ``torch.optim`` in a plain loop) build the encoder and
decoder of :mod:`models.vae.nets` and the IAF of ``numpyro_iaf`` / ``pyro_iaf`` with the same
configuration and initial weights as :func:`models.vae.make_vae`, and write the ELBO directly:

    (mu, sigma, h) = encoder(x),  z_0 = mu + sigma * eps,  (m_t, s_t) = MADE_t(z_{t-1}, h)
    z_t = sigmoid(s_t) z_{t-1} + (1 - sigmoid(s_t)) m_t                     (gated IAF steps)
    log q = sum_i [log N(eps_i) - log sigma_i] - sum_t sum_i log sigmoid(s_t,i)
    log p = sum_i log N(z_i; 0, 1) + sum_j log Bernoulli(x_j; logits = decoder(z)_j)

So the time of ours over theirs is what Pyro / NumPyro (and our code around them) add, not a
different network. Plain ELBO only (no free bits); the ``--guide hand`` architecture.
"""

from __future__ import annotations

import math

import numpy as np

from . import nets as N
from .config import VAEConfig

__all__ = ["PlainJaxVAE", "PlainTorchVAE", "PLAIN"]

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def _check(cfg: VAEConfig) -> None:
    if cfg.free_bits or cfg.guide != "hand":
        raise ValueError("the plain baselines are the plain ELBO of --guide hand; use free_bits=0, "
                         "guide='hand'")


class PlainJaxVAE:
    """Our VAE in JAX + optax: ``train_epoch`` is one jitted ``lax.scan`` over the minibatches."""

    backend = "plain-jax"

    def __init__(self, cfg: VAEConfig, side: int) -> None:
        import jax
        import optax

        from numpyro_iaf import IAF

        from .ops import jax_ops

        _check(cfg)
        self.cfg, self.arch, self.F = cfg, cfg.arch_for(side), jax_ops()
        init = N.init_params(self.arch, cfg.seed)
        params = {k: {n: jax.numpy.asarray(v) for n, v in p.items()} for k, p in init.items()}
        self.mades = ()
        if cfg.posterior == "iaf":
            flow = IAF(self.arch.latent_dim, num_flows=cfg.flows, hidden_dims=(cfg.width, cfg.width),
                       context_dim=self.arch.context_dim, seed=cfg.seed)
            self.mades, params["iaf"] = flow.steps, flow.params
        self.opt = (optax.adam if cfg.optimizer == "adam" else optax.adamax)(cfg.lr)
        self.params, self.opt_state = params, self.opt.init(params)
        self.key = jax.random.PRNGKey(cfg.seed)
        self._epoch = jax.jit(self._scan_epoch)
        self._logw = jax.jit(self.log_weights_at)

    def log_weights_at(self, params, x, eps):
        """``(log p(x, z) [B], log q(z | x) [B], z_0 [B, D])`` for the noise ``eps [B, D]``."""
        import jax
        import jax.numpy as jnp

        mu, sigma, h = N.encode(self.F, self.arch, params["encoder"], x)
        z = mu + sigma * eps
        z0 = z
        log_q = -0.5 * eps**2 - jnp.log(sigma) - HALF_LOG_2PI
        for made, p in zip(self.mades, params.get("iaf", ())):
            m, s = made.apply(p, z, h)
            gate = jax.nn.sigmoid(s)
            z = gate * z + (1 - gate) * m
            log_q = log_q - jax.nn.log_sigmoid(s)
        logits = N.decode(self.F, self.arch, params["decoder"], z)
        log_px = (x * logits - jax.nn.softplus(logits)).sum(-1)
        log_p = (-0.5 * z**2 - HALF_LOG_2PI).sum(-1) + log_px
        return log_p, log_q.sum(-1), z0

    def log_weights(self, x: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """NumPy ``(log p(x, z), log q(z | x), z_0)`` with the current weights (see ``log_weights_at``)."""
        import jax.numpy as jnp

        out = self._logw(self.params, jnp.asarray(x, jnp.float32), jnp.asarray(eps, jnp.float32))
        return tuple(np.asarray(a) for a in out)

    def load_weights(self, flat: dict[str, np.ndarray]) -> None:
        """Weights of ``export_weights()`` of ours (either backend); the optimiser restarts."""
        import jax.numpy as jnp

        p = {k: {n: jnp.asarray(flat[f"{k}.{n}"]) for n in self.params[k]} for k in ("encoder", "decoder")}
        if self.mades:
            p["iaf"] = tuple({n: jnp.asarray(flat[f"iaf.steps.{t}.{n}"]) for n in step}
                             for t, step in enumerate(self.params["iaf"]))
        self.params, self.opt_state = p, self.opt.init(p)

    def _loss(self, params, x, key):
        import jax

        eps = jax.random.normal(key, (x.shape[0], self.arch.latent_dim))
        log_p, log_q, _ = self.log_weights_at(params, x, eps)
        return -(log_p - log_q).sum()

    def _scan_epoch(self, params, opt_state, key, batches):
        import jax
        import optax

        def step(carry, x):
            params, opt_state, key = carry
            key, sub = jax.random.split(key)
            loss, grads = jax.value_and_grad(self._loss)(params, x, sub)
            updates, opt_state = self.opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, key), loss

        (params, opt_state, key), losses = jax.lax.scan(step, (params, opt_state, key), batches)
        return params, opt_state, key, losses.sum()

    def warmup(self, xb) -> float:
        """Nothing separate to compile (``train_epoch`` compiles per epoch length); 0 seconds."""
        return 0.0

    def train_epoch(self, batches: np.ndarray, progress=None) -> float:
        """One pass over ``batches [nb, B, P]``; mean training loss per image."""
        import jax.numpy as jnp

        self.params, self.opt_state, self.key, total = self._epoch(
            self.params, self.opt_state, self.key, jnp.asarray(batches))
        if progress is not None:
            progress.update(len(batches))
        return float(total) / batches.shape[0] / batches.shape[1]


class PlainTorchVAE:
    """Our VAE in PyTorch: the same modules, a hand-written ELBO, ``torch.optim`` in a plain loop."""

    backend = "plain-torch"

    def __init__(self, cfg: VAEConfig, side: int) -> None:
        import torch
        from torch import nn

        from pyro_iaf import IAF

        from .ops import torch_ops
        from .pyro_backend import TorchNet, torch_optimizer

        _check(cfg)
        torch.manual_seed(cfg.seed)
        self.cfg, self.arch, self.F = cfg, cfg.arch_for(side), torch_ops()
        init = N.init_params(self.arch, cfg.seed)
        self.nets = nn.ModuleDict({k: TorchNet(init[k]) for k in ("encoder", "decoder")})
        if cfg.posterior == "iaf":
            self.nets["iaf"] = IAF(self.arch.latent_dim, num_flows=cfg.flows,
                                   hidden_dims=(cfg.width, cfg.width), context_dim=self.arch.context_dim,
                                   seed=cfg.seed)
        self.optim = torch_optimizer(cfg, list(self.nets.parameters()))  # ours: the same optimiser

    def log_weights_at(self, x, eps):
        """``(log p(x, z) [B], log q(z | x) [B], z_0 [B, D])`` for the noise ``eps [B, D]``."""
        import torch
        import torch.nn.functional as F

        mu, sigma, h = N.encode(self.F, self.arch, self.nets["encoder"].p, x)
        z = mu + sigma * eps
        z0 = z
        log_q = -0.5 * eps**2 - torch.log(sigma) - HALF_LOG_2PI
        if "iaf" in self.nets:
            for made in self.nets["iaf"].steps:
                m, s = made(z, h)
                gate = torch.sigmoid(s)
                z = gate * z + (1 - gate) * m
                log_q = log_q - F.logsigmoid(s)
        logits = N.decode(self.F, self.arch, self.nets["decoder"].p, z)
        log_px = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
        log_p = (-0.5 * z**2 - HALF_LOG_2PI).sum(-1) + log_px
        return log_p, log_q.sum(-1), z0

    def log_weights(self, x: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """NumPy ``(log p(x, z), log q(z | x), z_0)`` with the current weights (see ``log_weights_at``)."""
        import torch

        with torch.no_grad():
            out = self.log_weights_at(torch.as_tensor(x, dtype=torch.float32),
                                      torch.as_tensor(eps, dtype=torch.float32))
        return tuple(a.numpy() for a in out)

    def load_weights(self, flat: dict[str, np.ndarray]) -> None:
        """Weights of ``export_weights()`` of ours (either backend)."""
        import torch

        from pyro_iaf.convert import load_params

        with torch.no_grad():
            for k in ("encoder", "decoder"):
                for n, p in self.nets[k].p.items():
                    p.copy_(torch.as_tensor(np.asarray(flat[f"{k}.{n}"]), dtype=p.dtype))
        if "iaf" in self.nets:
            load_params(self.nets["iaf"], {k[4:]: v for k, v in flat.items() if k.startswith("iaf.")})

    def warmup(self, xb) -> float:
        return 0.0

    def train_epoch(self, batches: np.ndarray, progress=None) -> float:
        """One pass over ``batches [nb, B, P]``; mean training loss per image."""
        import torch

        total = 0.0
        for xb in torch.from_numpy(np.ascontiguousarray(batches, dtype=np.float32)):
            eps = torch.randn(xb.shape[0], self.arch.latent_dim)
            log_p, log_q, _ = self.log_weights_at(xb, eps)
            loss = -(log_p - log_q).sum()
            self.optim.zero_grad()
            loss.backward()
            self.optim.step()
            total += loss.item()
            if progress is not None:
                progress.update(1)
        return total / batches.shape[0] / batches.shape[1]


PLAIN = {"numpyro": PlainJaxVAE, "pyro": PlainTorchVAE}
