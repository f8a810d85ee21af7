"""The VAE in Pyro: torch networks registered with ``pyro.module``, a torch loop on Trace_ELBO.

Training (``--guide hand``) uses Pyro's ``JitTrace_ELBO``: the same ELBO, traced once by
``torch.jit`` (in :meth:`PyroVAE.warmup`), so that each step no longer pays Pyro's Python
(traces, messengers, per-site validation) but runs one fixed graph, as a plain PyTorch loop
does. The trace holds the minibatch size; ``loss`` and evaluation stay on ``Trace_ELBO``.
"""

from __future__ import annotations

import functools
import time
import warnings

import numpy as np
import pyro
import pyro.poutine as poutine
import torch
import torch.nn.functional as F
from pyro.infer import JitTrace_ELBO, Trace_ELBO
from pyro.poutine.util import site_is_subsample
from torch import nn

from models.api import bind
from pyro_iaf import IAF, export_params
from pyro_iaf.convert import load_params

from . import nets as N
from .config import VAEConfig
from .model import vae_guide, vae_model
from .ops import torch_ops

__all__ = ["PyroNets", "PyroVAE", "torch_optimizer"]


class TorchNet(nn.Module):
    """A network's flat parameter dict as an ``nn.Module`` (``state_dict`` keys ``p.<name>``)."""

    def __init__(self, params: dict[str, np.ndarray]) -> None:
        super().__init__()
        dtype = torch.get_default_dtype()
        self.p = nn.ParameterDict({k: nn.Parameter(torch.tensor(v, dtype=dtype)) for k, v in params.items()})


class PyroNets(nn.Module):
    """Encoder, decoder and (optional) IAF; each call registers its module with ``pyro.module``."""

    def __init__(self, cfg: VAEConfig, arch: N.Arch) -> None:
        super().__init__()
        init = N.init_params(arch, cfg.seed)
        self.arch, self.latent_dim, self.F = arch, arch.latent_dim, torch_ops()
        self.encoder, self.decoder = TorchNet(init["encoder"]), TorchNet(init["decoder"])
        self.iaf = None
        if cfg.posterior == "iaf" and cfg.guide == "hand":
            self.iaf = IAF(arch.latent_dim, num_flows=cfg.flows, hidden_dims=(cfg.width, cfg.width),
                           context_dim=arch.context_dim, seed=cfg.seed)

    @property
    def has_flow(self) -> bool:
        return self.iaf is not None

    def claim_param_store(self) -> None:
        """Point the param store's ``encoder``/``decoder``/``iaf`` entries at these networks'
        parameters (another VAE in this process may have registered its own under those names;
        the eager ELBO uses the modules' tensors anyway, a ``JitTrace_ELBO`` trace takes the store's)."""
        store = pyro.get_param_store()
        for name in ("encoder", "decoder", "iaf"):
            for key in [k for k in store.keys() if k.startswith(f"{name}$$$")]:
                del store[key]
            if getattr(self, name) is not None:
                pyro.module(name, getattr(self, name))

    def encode(self, x):
        pyro.module("encoder", self.encoder)
        return N.encode(self.F, self.arch, self.encoder.p, x)

    def decode(self, z):
        pyro.module("decoder", self.decoder)
        return N.decode(self.F, self.arch, self.decoder.p, z)

    def flow(self, z, h):
        """``z0 [B, D]`` -> ``(z [B, D], sum_t log sigma_t [B, D])`` (gated IAF steps)."""
        pyro.module("iaf", self.iaf)
        log_sigma = torch.zeros_like(z)
        for made in self.iaf.steps:
            m, s = made(z, h)
            sigma = torch.sigmoid(s)
            z = sigma * z + (1 - sigma) * m
            log_sigma = log_sigma + F.logsigmoid(s)
        return z, log_sigma


class _Encoder(nn.Module):
    """Our encoder as an ``nn.Module`` ``x -> (mu, sigma, h)`` (AutoAmortizedIAF's contract)."""

    def __init__(self, nets: PyroNets) -> None:
        super().__init__()
        self.net, self.arch, self.F = nets.encoder, nets.arch, nets.F

    def forward(self, x):
        return N.encode(self.F, self.arch, self.net.p, x)


def torch_optimizer(cfg: VAEConfig, params) -> torch.optim.Optimizer:
    """``torch.optim.Adam`` (fused: one kernel over all ~1M parameters instead of ~8 passes
    per tensor, 1.0 vs 4.0 ms per step here; the same update) or ``Adamax``, at ``cfg.lr``."""
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, fused=True)
    return torch.optim.Adamax(params, lr=cfg.lr)


def _log_prob_sum(tr) -> torch.Tensor:
    """Per-datapoint sum of the log densities of a trace's sample sites (factors excluded)."""
    total = 0.0
    for site in tr.nodes.values():
        if site["type"] == "sample" and not site_is_subsample(site) and site["name"] != "free_bits":
            total = total + site["fn"].log_prob(site["value"])
    return total


class PyroVAE:
    """Model + guide + Adam(ax) on their parameters; ``loss = Trace_ELBO().differentiable_loss``."""

    backend = "pyro"

    def __init__(self, cfg: VAEConfig, side: int) -> None:
        pyro.clear_param_store()
        torch.manual_seed(cfg.seed)
        self.cfg, self.arch = cfg, cfg.arch_for(side)
        self.nets = PyroNets(cfg, self.arch)
        self.model = bind(functools.partial(vae_model, nets=self.nets), "pyro")
        self.guide = bind(functools.partial(vae_guide, nets=self.nets, free_bits=cfg.free_bits), "pyro")
        self.eval_guide = bind(functools.partial(vae_guide, nets=self.nets), "pyro")
        self.auto = None
        params = list(self.nets.parameters())
        if cfg.guide == "auto":
            from pyro_iaf import AutoAmortizedIAF

            self.auto = AutoAmortizedIAF(
                self.model, encoder=_Encoder(self.nets), num_flows=cfg.flows,
                hidden_dims=(cfg.width, cfg.width), context_dim=self.arch.context_dim,
                affine_first=cfg.auto_affine == "first",
                stl=False)  # as the hand-written guide it is compared with (benchmarks/vae)
            self.guide = self.eval_guide = self.auto
            with torch.no_grad():
                self.auto(torch.zeros(cfg.batch_size, self.arch.pixels))  # creates its parameters
            seen = {id(p) for p in params}
            params += [p for p in self.auto.parameters() if id(p) not in seen]
        self.optim = torch_optimizer(cfg, params)
        self.elbo = Trace_ELBO()
        # the autoguide sets itself up lazily and is not traced: it trains on Trace_ELBO
        self.train_elbo = JitTrace_ELBO(ignore_jit_warnings=True) if self.auto is None else self.elbo
        self._traced_shape: tuple | None = None

    def _tensor(self, x) -> torch.Tensor:
        return torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())

    def warmup(self, xb) -> float:
        """Trace the training loss for minibatches shaped like ``xb`` (``JitTrace_ELBO``; its
        first calls also profile the graph) without drawing from the global RNG or changing the
        parameters, so a resumed run takes the same steps as an uninterrupted one; seconds."""
        t0 = time.perf_counter()
        if self.train_elbo is not self.elbo:
            if self._traced_shape not in (None, tuple(np.shape(xb))):  # a trace per batch shape
                self.train_elbo = JitTrace_ELBO(ignore_jit_warnings=True)
            self.nets.claim_param_store()
            with torch.random.fork_rng(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "`torch.jit.trace` is deprecated", DeprecationWarning)
                for _ in range(3):
                    self.train_elbo.loss_and_grads(self.model, self.guide, self._tensor(xb))
            self.optim.zero_grad()
        self._traced_shape = tuple(np.shape(xb))
        return time.perf_counter() - t0

    def train_epoch(self, batches: np.ndarray, progress=None) -> float:
        """One pass over ``batches [nb, B, P]``; mean training loss per image."""
        if self._traced_shape is None:
            self.warmup(batches[0])
        if tuple(batches.shape[1:]) != self._traced_shape:
            raise ValueError(f"train_epoch: minibatches of shape {tuple(batches.shape[1:])}, but the "
                             f"training loss was traced for {self._traced_shape}; make a new VAE "
                             "(or call warmup) for another batch size")
        if self.train_elbo is not self.elbo:
            self.nets.claim_param_store()
        total = 0.0
        for xb in self._tensor(batches):
            self.optim.zero_grad()
            total += self.train_elbo.loss_and_grads(self.model, self.guide, xb)
            self.optim.step()
            if progress is not None:
                progress.update(1)
        return total / batches.shape[0] / batches.shape[1]

    def loss(self, x) -> float:
        """Training loss (``-L``, free bits included) per image on ``x`` with the current RNG."""
        with torch.no_grad():
            return self.elbo.loss(self.model, self.guide, self._tensor(x)) / len(x)

    # ---- state --------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"nets": self.nets.state_dict(), "optim": self.optim.state_dict(),
                "rng": torch.get_rng_state(),
                "auto": None if self.auto is None else self.auto.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.nets.load_state_dict(state["nets"])
        if self.auto is not None:
            self.auto.load_state_dict(state["auto"])
        self.optim.load_state_dict(state["optim"])
        torch.set_rng_state(state["rng"])

    def export_weights(self) -> dict[str, np.ndarray]:
        """Flat ``{"encoder.<name>", "decoder.<name>", "iaf.steps.<t>.<name>": array}``."""
        out = {f"{k}.{n}": v.detach().cpu().numpy() for k in ("encoder", "decoder")
               for n, v in getattr(self.nets, k).p.items()}
        if self.nets.iaf is not None:
            out.update({f"iaf.{k}": v for k, v in export_params(self.nets.iaf).items()})
        if self.auto is not None:  # AutoAmortizedIAF's own names (not convertible)
            out.update({f"auto.{k}": v.detach().cpu().numpy() for k, v in self.auto.state_dict().items()})
        return out

    def load_weights(self, flat: dict[str, np.ndarray]) -> None:
        if self.auto is not None:
            raise NotImplementedError("load_weights: not for --guide auto (use the checkpoint)")
        mine = self.export_weights()
        if set(mine) != set(flat):
            raise ValueError(f"load_weights: names differ: {sorted(set(mine) ^ set(flat))}")
        with torch.no_grad():
            for k in ("encoder", "decoder"):
                for n, p in getattr(self.nets, k).p.items():
                    p.copy_(torch.tensor(np.array(flat[f"{k}.{n}"]), dtype=p.dtype))
            if self.nets.iaf is not None:
                load_params(self.nets.iaf, {k[4:]: v for k, v in flat.items() if k.startswith("iaf.")})

    # ---- evaluation ---------------------------------------------------------------------------

    @torch.no_grad()
    def log_weights(self, x, fixed: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(log p(x, z) [N], log q(z | x) [N])`` for one ``z ~ q`` per row of ``x [N, P]``.

        ``fixed``: ``{"z0": ...}`` (IAF) or ``{"z": ...}`` (diagonal) pins the guide's draw."""
        x = self._tensor(x)
        guide = self.eval_guide
        if fixed:
            guide = poutine.condition(guide, data={k: self._tensor(v) for k, v in fixed.items()})
        gtr = poutine.trace(guide).get_trace(x)
        for name in fixed or ():  # pinned, not observed: the model replays them as latents
            gtr.nodes[name]["is_observed"] = False
        mtr = poutine.trace(poutine.replay(self.model, trace=gtr)).get_trace(x)
        return _log_prob_sum(mtr).numpy(), _log_prob_sum(gtr).numpy()

    @torch.no_grad()
    def decode_probs(self, z) -> np.ndarray:
        return torch.sigmoid(self.nets.decode(self._tensor(z))).numpy()

    @torch.no_grad()
    def reconstruct(self, x) -> np.ndarray:
        """Bernoulli means of ``p(x | z)`` for one ``z ~ q(z | x)`` per row."""
        z = self.eval_guide(self._tensor(x))
        return self.decode_probs(z["z"] if isinstance(z, dict) else z)

    def eps_to_z(self, x1, eps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For one image ``x1 [P]``: ``z0 = mu + sigma eps``, ``z(eps)`` and ``dz/deps [D, D]``."""
        x = self._tensor(x1)[None]

        def fn(e):
            mu, sigma, h = self.nets.encode(x)
            z0 = mu + sigma * e[None]
            return (self.nets.flow(z0, h)[0] if self.nets.has_flow else z0)[0], z0[0]

        e = self._tensor(eps)
        jac = torch.autograd.functional.jacobian(lambda e: fn(e)[0], e)
        z, z0 = fn(e)
        return z0.detach().numpy(), z.detach().numpy(), jac.detach().numpy()
