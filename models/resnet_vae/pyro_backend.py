"""The ResNet VAE in Pyro: the flat parameter dict as one ``nn.ParameterDict`` registered with
``pyro.module``, ``torch.optim.Adamax``; training on ``JitTrace_ELBO`` (the ``Trace_ELBO`` loss traced
once per batch shape by ``torch.jit``, as :mod:`models.vae.pyro_backend` trains), evaluation on
``Trace_ELBO``."""

from __future__ import annotations

import functools
import time
import warnings

import numpy as np
import pyro
import pyro.distributions as pd
import pyro.poutine as poutine
import torch
from pyro.infer import JitTrace_ELBO, Trace_ELBO
from pyro.poutine.util import site_is_subsample
from torch import nn

from models.api import backend, bind
from models.vae.pyro_backend import _log_prob_sum
from pyro_iaf import MADE

from .config import ResNetVAEConfig
from .likelihood import pyro_distribution
from .model import GuidePass, layer_terms, resnet_vae_guide, resnet_vae_model
from .nets import Net, data_init, init_params, made_names
from .ops import torch_ops

__all__ = ["PyroNets", "PyroResNetVAE"]

PARAM = "resnet_vae"


class _Params(nn.Module):
    def __init__(self, params: dict[str, np.ndarray]) -> None:
        super().__init__()
        dtype = torch.get_default_dtype()
        self.p = nn.ParameterDict({k: nn.Parameter(torch.tensor(np.asarray(v), dtype=dtype))
                                   for k, v in params.items()})


class PyroNets(Net):
    """:class:`~models.resnet_vae.nets.Net` over torch ops; ``params()`` is ``pyro.module``.

    The MADE steps are ``pyro_iaf.MADE`` modules (for their masks) called with our weights
    through ``MADE.forward_with``; their own weights are not used."""

    def __init__(self, cfg: ResNetVAEConfig, init: dict) -> None:
        super().__init__(cfg, torch_ops(), self._made)
        self.module = _Params(init)
        self.mades = [MADE(cfg.zdim, (cfg.iaf_hidden,) * 2, context_dim=cfg.hidden, reverse=bool(t))
                      for t in range(min(cfg.flows, 2))]
        for made in self.mades:
            if set(made.params) != {n for n, _ in made_names(cfg)}:
                raise RuntimeError("pyro_iaf.MADE's parameter names changed; update nets.made_names")
        self.logistic = pyro_distribution()

    def _made(self, t, params, z, h):
        return self.mades[t % 2].forward_with(params, z, h)

    def params(self):
        return pyro.module(PARAM, self.module).p

    def likelihood(self, p, out):
        B = out.shape[0]
        if self.cfg.likelihood == "bernoulli":
            return pd.Bernoulli(logits=out.reshape(B, -1))
        log_scale = p["dec_log_scale"][None, :, None, None].expand(out.shape)
        return self.logistic(out.reshape(B, -1), log_scale.reshape(B, -1))


class PyroResNetVAE:
    """Model + guide + Adamax; the same interface as the NumPyro twin."""

    backend = "pyro"

    def __init__(self, cfg: ResNetVAEConfig, init_batch=None, params: dict | None = None) -> None:
        pyro.clear_param_store()
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        if params is None:
            params = init_params(cfg, cfg.seed)
            if init_batch is not None:
                params = data_init(cfg, params, init_batch, cfg.seed)
        self.nets = PyroNets(cfg, params)
        self.model = bind(functools.partial(resnet_vae_model, nets=self.nets), "pyro")
        self.guide = bind(functools.partial(resnet_vae_guide, nets=self.nets, free_bits=cfg.free_bits),
                          "pyro")
        self.eval_guide = bind(functools.partial(resnet_vae_guide, nets=self.nets), "pyro")
        self.optim = torch.optim.Adamax(self.nets.module.parameters(), lr=cfg.lr)
        self.elbo = Trace_ELBO()
        self.train_elbo = JitTrace_ELBO(ignore_jit_warnings=True)  # traced in warmup, per batch shape
        self._traced_shape: tuple | None = None

    def _tensor(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())

    @property
    def params(self) -> dict:
        return dict(self.nets.module.p)

    def claim_param_store(self) -> None:
        """Point the param store's ``resnet_vae`` entries at this VAE's tensors (another VAE in this
        process may have registered its own; a ``JitTrace_ELBO`` trace takes the store's)."""
        store = pyro.get_param_store()
        for key in [k for k in store.keys() if k.startswith(f"{PARAM}$$$")]:
            del store[key]
        self.nets.params()

    def warmup(self, xb) -> float:
        """Trace the training loss (``JitTrace_ELBO``: the same loss and gradients as
        ``Trace_ELBO``, without Pyro's Python per step) for minibatches shaped like ``xb``, without
        drawing from the global RNG or changing the parameters; seconds."""
        t0 = time.perf_counter()
        if self._traced_shape not in (None, tuple(np.shape(xb))):  # a trace per batch shape
            self.train_elbo = JitTrace_ELBO(ignore_jit_warnings=True)
        self.claim_param_store()
        with torch.random.fork_rng(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "`torch.jit.trace` is deprecated", DeprecationWarning)
            for _ in range(3):  # the first calls trace and profile the graph
                self.train_elbo.loss_and_grads(self.model, self.guide, self._tensor(xb))
        self.optim.zero_grad()
        self._traced_shape = tuple(np.shape(xb))
        return time.perf_counter() - t0

    def step(self, xb) -> float:
        """One Adamax step on the minibatch ``xb [B, P]`` (traced loss); the loss (sum over the batch)."""
        if self._traced_shape != tuple(np.shape(xb)):
            self.warmup(xb)
        self.claim_param_store()
        self.optim.zero_grad()
        loss = self.train_elbo.loss_and_grads(self.model, self.guide, self._tensor(xb))
        self.optim.step()
        return loss

    def train_steps(self, batches: np.ndarray) -> np.ndarray:
        """One step per minibatch of ``batches [n, B, P]``, in order; each step's loss (summed
        over its minibatch) ``[n]``."""
        return np.array([self.step(xb) for xb in batches], dtype=np.float64)

    @torch.no_grad()
    def sample_images(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` images ``[n, C, S, S]`` by ancestral sampling from the prior, as NumPyro's
        ``sample_images``: Bernoulli means or discretized-logistic draws in [0, 1]. Seeds torch's
        RNG with ``seed`` inside ``fork_rng``: training's RNG state is left as it was."""
        self.claim_param_store()
        GuidePass.take(self.nets, None)  # no guide pass left over: the model draws its own
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            with poutine.block():
                out = self.model(None, num=n)
            if self.cfg.likelihood == "bernoulli":
                return torch.sigmoid(out).numpy()
            log_scale = self.params["dec_log_scale"][None, :, None, None].expand(out.shape)
            return self.nets.logistic(out, log_scale).sample().numpy()

    def train_epoch(self, batches: np.ndarray, progress=None) -> float:
        total = 0.0
        for xb in batches:
            total += self.step(xb)
            if progress is not None:
                progress.update(1)
        return total / batches.shape[0] / batches.shape[1]

    def loss(self, x) -> float:
        with torch.no_grad():
            return self.elbo.loss(self.model, self.guide, self._tensor(x)) / len(x)

    def state_dict(self) -> dict:
        return {"params": self.nets.module.state_dict(), "optim": self.optim.state_dict(),
                "rng": torch.get_rng_state()}

    def load_state_dict(self, state: dict) -> None:
        self.nets.module.load_state_dict(state["params"])
        self.optim.load_state_dict(state["optim"])
        torch.set_rng_state(state["rng"])

    def export_weights(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy().copy() for k, v in self.nets.module.p.items()}

    def load_weights(self, flat: dict[str, np.ndarray]) -> None:
        mine = self.nets.module.p
        if set(flat) != set(mine):
            raise ValueError(f"load_weights: names differ: {sorted(set(flat) ^ set(mine))}")
        with torch.no_grad():
            for k, v in mine.items():
                v.copy_(torch.as_tensor(np.asarray(flat[k]), dtype=v.dtype))

    @torch.no_grad()
    def log_weights(self, x, fixed: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(log p(x, z) [N], log q(z | x) [N])`` for one ``z ~ q`` per row of ``x [N, P]``."""
        x = self._tensor(x)
        guide = self.eval_guide
        if fixed:
            guide = poutine.condition(guide, data={k: self._tensor(v) for k, v in fixed.items()})
        gtr = poutine.trace(guide).get_trace(x)
        for name in fixed or ():  # pinned, not observed
            gtr.nodes[name]["is_observed"] = False
        mtr = poutine.trace(poutine.replay(self.model, trace=gtr)).get_trace(x)
        return _log_prob_sum(mtr).numpy(), _log_prob_sum(gtr).numpy()

    def inspect(self, x, fixed: dict) -> dict:
        """As ``NumPyroResNetVAE.inspect``: ``log_p``, ``log_q``, ``loss``, ``sites``, ``layers``."""
        x, fixed = self._tensor(x), {k: self._tensor(v) for k, v in fixed.items()}
        with torch.no_grad():
            gtr = poutine.trace(poutine.condition(self.guide, data=fixed)).get_trace(x)
            for name in fixed:
                gtr.nodes[name]["is_observed"] = False
            mtr = poutine.trace(poutine.replay(self.model, trace=gtr)).get_trace(x)
            loss = self.elbo.loss(self.model, poutine.condition(self.guide, data=fixed), x)
            sites = {k: s["fn"].log_prob(s["value"]).numpy() for k, s in gtr.nodes.items()
                     if s["type"] == "sample" and not site_is_subsample(s) and k != "free_bits"}
            with backend("pyro"):
                layers = layer_terms(self.nets, self.params, x, fixed)
        return dict(log_p=_log_prob_sum(mtr).numpy(), log_q=_log_prob_sum(gtr).numpy(), loss=loss,
                    sites=sites, layers=[{k: v.numpy() for k, v in t.items()} for t in layers])

    def flow_jacobian(self, i: int, z0, context) -> tuple[np.ndarray, np.ndarray]:
        """Layer ``i``'s IAF on one image: ``(z [1, Z, s, s], dz/dz0 [n, n])``, autodiff."""
        p, z0, ctx = self.params, self._tensor(z0), self._tensor(context)
        fn = lambda v: self.nets.flow(p, i, v.reshape(z0.shape), ctx)[0].reshape(-1)  # noqa: E731
        jac = torch.autograd.functional.jacobian(fn, z0.reshape(-1))
        return fn(z0.reshape(-1)).detach().numpy().reshape(z0.shape), jac.detach().numpy()
