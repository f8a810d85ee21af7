"""``AutoAmortizedIAF`` for Pyro: an IAF posterior for local latents, amortized by an encoder.

Local latents (one per element of a data plate) get ``q(z_i | x_i)``::

    (mu_i, sigma_i, h_i) = encoder(x_i)                      mu_i, sigma_i [D], h_i [C]
    eps_i ~ N(0, I_D),  z_i = mu_i + sigma_i * IAF_h_i(eps_i)    (unconstrained, then to support)
    log q(z_i | x_i) = log N(eps_i; 0, I) - log|det dIAF/deps| - sum_d log sigma_id

(loc and scale after the flow, like :class:`~pyro_iaf.AutoIAFNormal`, so the flow works at unit
scale; ``affine_first=True`` puts them first, as the paper: ``z_0 = mu + sigma * eps``,
``z = IAF_h(z_0)``). Global latents get an
:class:`~pyro_iaf.AutoIAFNormal` on ``block(model, hide=local sites)``; the two parts are
independent, ``q = q(globals) prod_i q(z_i | x_i)``. See :class:`AutoAmortizedIAF`.

With ``centre_globals=True`` the global part is centred, ``z = loc + scale * (IAF(eps) - IAF(0))``:
its ``loc`` carries the mean and the flow only shapes (see ``_CentredIAFNormal``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro import poutine
from pyro.distributions.transforms import AffineTransform
from pyro.distributions.util import sum_rightmost
from pyro.infer.autoguide import AutoGuide
from pyro.infer.autoguide.initialization import InitMessenger, init_to_sample
from pyro.poutine.util import site_is_subsample
from pyro.util import ignore_jit_warnings
from torch import nn
from torch.distributions import biject_to

from .autoguide import AutoIAFNormal, initial_contraction, with_feasible_fallback
from .init import GLOBAL_MEDIAN_SAMPLES, init_to_global_median  # noqa: F401
from .masks import STL_MAX_DIM
from .posterior import known_inverse
from .transforms import IAF, ConditionedIAF

__all__ = ["AutoAmortizedIAF", "MLPEncoder"]



class _CentredIAFNormal(AutoIAFNormal):
    """The global part of :class:`AutoAmortizedIAF`: :class:`AutoIAFNormal` with
    ``z = loc + scale * (IAF(eps) - IAF(0))`` (the same family, the log-det unchanged).

    Uncentred, the posterior mean is ``loc + scale * E[IAF(eps)]``: under Adam every flow parameter
    moves ~``lr`` per step, so while the global travels from its initial point the flow's shift
    carries the mean and ``scale`` grows (to 10-50 posterior sds on the benchmark of
    ``models.bench.globals``), and the ELBO is flat along that reparametrization, so it stays: the
    final iterate's mean then jitters by ~1 posterior sd. Centred, ``loc`` is where ``eps = 0``
    lands and carries the mean, as in ``AutoNormal``.
    """

    def _transforms(self) -> list:
        flow, affine = super()._transforms()
        loc = affine.loc - affine.scale * flow(self._zeros)  # before any draw: the flow caches one
        return [flow, AffineTransform(loc, affine.scale, event_dim=1, cache_size=1)]


class _LocalPosterior(dist.TransformedDistribution):
    """``q(z_i | x_i)``: ``eps -> mu + sigma * IAF_h(eps)`` (or ``IAF_h(mu + sigma * eps)``); with
    ``stl=True`` the log density of the draw just made (the transforms cache it) differentiates
    only through ``z`` (encoder outputs and flow weights detached): the path-derivative gradient."""

    def __init__(self, flow, mu, sigma, affine_first: bool, stl: bool, mu_stl=None) -> None:
        affine = AffineTransform(mu, sigma, event_dim=1, cache_size=1)
        base = dist.Normal(torch.zeros_like(mu.detach()), 1.0).to_event(1)
        super().__init__(base, _ordered(flow, affine, affine_first))
        self.stl, self.affine_first = stl, affine_first
        #: the path-derivative density's loc: parameters detached, the global draw not (None: mu detached)
        self.mu_stl = mu_stl

    def expand(self, batch_shape, _instance=None) -> _LocalPosterior:
        new = super().expand(batch_shape, _instance=self._get_checked_instance(_LocalPosterior, _instance))
        new.stl, new.affine_first, new.mu_stl = self.stl, self.affine_first, self.mu_stl
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if not (self.stl and torch.is_grad_enabled()):
            return super().log_prob(value)
        first, second = self.transforms
        cached = _cached_input(first, second, value)
        if cached is None:
            return super().log_prob(value)
        flow, affine = (second, first) if self.affine_first else (first, second)
        mu = affine.loc.detach() if self.mu_stl is None else self.mu_stl
        sigma = affine.scale.detach()
        h = getattr(flow, "context", None)
        h = None if h is None else h.detach()
        bare = flow._iaf
        flow_input = cached[1] if self.affine_first else cached[0]
        flow_cache = getattr(flow, "_cached", None)  # (x, y, log|det|) of the flow's last call
        if flow_cache is not None and flow_cache[0] is flow_input:
            log_det = flow_cache[2]
        else:
            stopped = bare if h is None else ConditionedIAF(bare, h)
            log_det = stopped._forward_with_logdet(flow_input, detach=True)[1]
        if self.affine_first:  # value = F(z0), z0 = mu + sigma * eps
            z0, log_det = known_inverse(bare, value, flow_input, h, log_det)
            eps = (z0 - mu) / sigma
        else:  # value = mu + sigma * F(eps)
            eps, log_det = known_inverse(bare, (value - mu) / sigma, flow_input, h, log_det)
        log_sigma = torch.log(sigma).expand(value.shape).sum(-1)
        return self.base_dist.log_prob(eps) - log_det - log_sigma


def _cached_input(first, second, value):
    """``(eps, middle)`` of the draw that made ``value`` through ``first`` then ``second`` (both
    cache their last call), or None when ``value`` was not this distribution's last draw."""
    x1, y1 = getattr(first, "_cached_x_y", (None, None))
    x2, y2 = getattr(second, "_cached_x_y", (None, None))
    if y2 is not value or x2 is None or y1 is not x2:
        return None
    return x1, x2


def _ordered(flow, affine, affine_first: bool) -> list:
    """The local posterior's transforms, ``eps -> z``: loc/scale after the flow or before it."""
    return [affine, flow] if affine_first else [flow, affine]


class MLPEncoder(nn.Module):
    """Default encoder: ELU MLP on standardized inputs, ``x [..., X] -> (mu, sigma, h)``.

    ``a = elu-MLP((x - x_mean) / x_std)``; ``mu = W_mu a + V x_std + b_mu`` (the linear skip ``V``
    makes posteriors whose mean is linear in ``x`` exact), ``sigma = softplus(W_s a + b_s)``,
    ``h = W_h a + b_h``. ``mu`` starts at ``init_mu`` and ``sigma`` at ``init_sigma`` (output
    weights start at 1% of the usual scale, ``V`` at 0); ``x_mean``/``x_std`` are buffers.

    Args:
        input_dim: ``X``, the size of an element's input.
        latent_dim: ``D``, the size of an element's latents.
        context_dim: ``C``, the size of the context ``h`` (0: none).
        hidden_dims: widths of the ELU hidden layers.
        init_mu: the initial ``mu`` ``[D]`` (the guide passes its init point).
        init_sigma: the initial ``sigma`` (> 0).
        x_mean: mean of the inputs, for standardizing (the guide takes it from the first batch).
        x_std: standard deviation of the inputs, likewise.
        seed: seed of the initial weights.
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        context_dim: int,
        hidden_dims: Sequence[int],
        *,
        init_mu: torch.Tensor,
        init_sigma: float,
        x_mean: torch.Tensor,
        x_std: torch.Tensor,
        seed: int = 0,
    ) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.latent_dim, self.context_dim = latent_dim, context_dim
        widths = (input_dim, *hidden_dims)
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        for layer, fan_in in zip(self.hidden, widths):
            with torch.no_grad():
                draw = torch.randn(layer.weight.shape, generator=g, device=g.device)
                layer.weight.copy_(draw / math.sqrt(fan_in))
                layer.bias.zero_()
        self.out = nn.Linear(widths[-1], 2 * latent_dim + context_dim)
        self.skip = nn.Linear(input_dim, latent_dim, bias=False)
        with torch.no_grad():
            draw = torch.randn(self.out.weight.shape, generator=g, device=g.device)
            self.out.weight.copy_(draw / math.sqrt(widths[-1]))
            self.out.weight[: 2 * latent_dim] *= 0.01
            sigma_bias = math.log(math.expm1(init_sigma))  # softplus^-1
            self.out.bias.copy_(
                torch.cat([init_mu, torch.full((latent_dim,), sigma_bias), torch.zeros(context_dim)])
            )
            self.skip.weight.zero_()
        self.register_buffer("x_mean", x_mean)
        self.register_buffer("x_std", x_std)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = (x - self.x_mean) / self.x_std
        a = x
        for layer in self.hidden:
            a = F.elu(layer(a))
        mu, s, h = self.out(a).split([self.latent_dim, self.latent_dim, self.context_dim], dim=-1)
        return mu + self.skip(x), F.softplus(s), h


class AutoAmortizedIAF(AutoGuide):
    """IAF autoguide whose local latents are amortized by an encoder (Kingma et al. 2016).

    A latent site is *local* when it sits in a plate that also holds observed sites, or in a
    subsampled plate (``plate(name, N, subsample_size=B)``); the plate may also be sized by a
    minibatch argument (the VAE pattern). For the ``B`` current elements the guide computes
    ``(mu, sigma, h) = encoder(x)`` with ``x [B, X]``: by default the observed values of that
    plate's sites, flattened per element; or ``encoder_input_fn(*args, **kwargs)`` ``[N, X]``
    (all ``N`` elements of the plate; the guide picks the current ones) for covariates. Then
    ``z = mu + sigma * IAF_h(eps)`` per element, the concatenated unconstrained local latents
    ``[B, D]``, sampled inside the same plate with the same subsample indices (so Pyro scales
    them by ``N / B``). Global latents: :class:`AutoIAFNormal` (``num_flows``, ``hidden_dims``,
    ``skip``, ``gated``, ``gate_bias``, ``init_loc_fn``, ``init_scale`` apply to both parts).
    ``centre_globals=True`` centres that part, ``z = loc + scale * (IAF(eps) - IAF(0))``, so that
    ``loc`` carries the mean (the same family; see ``_CentredIAFNormal``): at a constant learning
    rate the final iterate's mean jitters less, but it travels only ~``lr`` per step, where the
    uncentred flow carries it faster (see :doc:`/guide/local_latents`). The default ``init_loc_fn`` is
    :func:`~pyro_iaf.init.init_to_global_median`: ``init_to_median`` with 1001 prior draws
    for unplated sites.
    ``affine_first=True``: ``z = IAF_h(mu + sigma * eps)`` instead (the paper's order; the flow
    then sees the encoder's scale).
    ``stl`` (left None: on up to ``STL_MAX_DIM`` local dimensions, as in :class:`AutoIAFNormal`)
    scores the local draws with the path-derivative gradient: the encoder outputs and the local
    flow enter ``log q(z_i | x_i)`` stopped, so the gradient loses the score term, whose noise
    made the final iterate of a constant-step run miss the full-data ELBO by 4-33 nats on the
    hierarchy of :doc:`/guide/local_latents` (2-3 with it); the global part keeps ``stl=False``.
    ``condition_on_globals=True`` lets each element's mean move with the global draw ``g`` [G]
    (unconstrained): ``mu_i + A_i (g - loc_g)``, ``A_i [D, G] = reshape(W x_i' + b)`` on the
    standardized input ``x_i'``, zero at the start (module ``global_dependence``), ``loc_g`` the
    global part's ``loc``. Independent parts cannot carry the posterior's correlation between
    globals and locals, and leave the globals' sds too narrow (0.71 of the exact sd of ``mu`` on
    ``mu ~ N(0, 10^2), theta_i ~ N(mu, 1), y_i ~ N(theta_i, 1)``, whose exact posterior this
    family holds).

    Encoder contract: an ``nn.Module``, ``encoder(x [B, X]) -> (mu [B, D], sigma [B, D] > 0,
    h [B, C])`` with ``C = context_dim`` (``h`` may be None if ``context_dim=0``). The default
    is :class:`MLPEncoder` (ELU, ``encoder_hidden_dims``), with inputs standardized by the first
    batch and ``mu, sigma`` starting at ``init_loc_fn``'s mean and ``init_scale``. Parameters do
    not grow with ``N``.

    How the data reach the guide: at set-up, if each observed value equals an argument indexed
    by the subsample indices (``y[idx]``, or ``x`` itself), the guide reads that argument and
    draws the indices itself (the model replays them); otherwise it traces the model (blocked,
    no grad) at every call and reads the indices and observed values from the trace.

    ``sample_posterior(num_samples, *args)`` draws every latent for all ``N`` elements of the
    plate (no subsampling), ``{name: [num_samples, ...]}``.

    Args:
        model: the model; its local latents sit in a plate that holds observed sites or is
            subsampled.
        encoder: the network ``x [B, X] -> (mu [B, D], sigma [B, D], h [B, C])`` (contract above);
            None builds an ``MLPEncoder``.
        encoder_input_fn: ``(*args, **kwargs) -> [N, X]``, the encoder's input for all ``N``
            elements (covariates); None reads the plate's observed values.
        num_flows: IAF steps of the local (and global) flow.
        hidden_dims: hidden widths of each step's MADE; None gives ``default_hidden_dims(D)``.
        context_dim: size ``C`` of the encoder's context ``h`` that conditions the local flow (0:
            none).
        encoder_hidden_dims: hidden widths of the default ``MLPEncoder``.
        skip: the masked linear skip term in each step (as in ``AutoIAFNormal``).
        gated: gated (the paper's) or affine steps.
        gate_bias: initial ``s`` of the gated steps.
        init_loc_fn: init strategy of the global latents (and of the encoder's initial mean); None
            gives ``init_to_global_median``.
        init_scale: initial posterior standard deviation, locals and globals (> 0).
        affine_first: ``z = IAF_h(mu + sigma * eps)`` (the paper's order) instead of ``mu + sigma *
            IAF_h(eps)``.
        centre_globals: centre the global part, ``z = loc + scale * (IAF(eps) - IAF(0))``, so
            ``loc`` carries the mean.
        stl: score the local draws with the path-derivative gradient (None: on up to
            ``STL_MAX_DIM`` local dimensions); the global part keeps ``stl=False``.
        condition_on_globals: the locals' mean moves linearly with the global draw,
            ``q(z_i | x_i, g)`` (see above); needs global latents.
        prefix: name prefix of the guide's parameters and sites.

    Example:
        >>> guide = AutoAmortizedIAF(model)                 # model(x): plate("data", len(x))
        >>> svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    """

    def __init__(
        self,
        model: Callable,
        *,
        encoder: Callable | None = None,
        encoder_input_fn: Callable | None = None,
        num_flows: int = 2,
        hidden_dims: Sequence[int] | None = None,
        context_dim: int = 8,
        encoder_hidden_dims: Sequence[int] = (64, 64),
        skip: bool = True,
        gated: bool = True,
        gate_bias: float = 2.0,
        init_loc_fn: Callable | None = None,
        init_scale: float = 0.1,
        affine_first: bool = False,
        centre_globals: bool = False,
        stl: bool | None = None,
        condition_on_globals: bool = False,
        prefix: str | None = None,
    ) -> None:
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive; got {init_scale}")
        if context_dim < 0:
            raise ValueError(f"context_dim must be >= 0; got {context_dim}")
        super().__init__(model)
        if prefix is not None:  # Pyro's own autoguides are named by their class
            self._pyro_name = prefix
        self.encoder_input_fn = encoder_input_fn
        self._user_encoder = (encoder,)  # a tuple: not registered twice as a submodule
        self.num_flows, self.context_dim = num_flows, context_dim
        self.hidden_dims = None if hidden_dims is None else tuple(hidden_dims)
        self.encoder_hidden_dims = tuple(encoder_hidden_dims)
        self.skip, self.gated, self.gate_bias = skip, gated, gate_bias
        self.affine_first = affine_first
        self.centre_globals = centre_globals
        self.stl, self._stl_requested = stl, stl  # None: resolved by the local dimension at set-up
        self.condition_on_globals = condition_on_globals
        self.global_dependence = None  # condition_on_globals: nn.Linear(X, D * G), made at the first call
        self.init_loc_fn = with_feasible_fallback(
            init_to_global_median() if init_loc_fn is None else init_loc_fn
        )
        # per-call traces read only indices and data: latents from the prior, or feasible points
        self._traced_model = InitMessenger(with_feasible_fallback(init_to_sample))(model)
        self._init_scale = init_scale
        self._full_plate = False

    # -- set-up ---------------------------------------------------------------------------------
    def _check_prototype(self, part_trace) -> None:  # called by the global sub-guide
        pass

    def _setup_prototype(self, *args, **kwargs) -> None:
        with poutine.block(), torch.no_grad():
            trace = poutine.trace(InitMessenger(self.init_loc_fn)(self.model)).get_trace(*args, **kwargs)
        self.prototype_trace, self.plates = trace, {}
        plan = _plan(type(self).__name__, trace, self.encoder_input_fn is not None)
        self.plate_frame, self.local_sites, self.observed_sites = plan
        self.max_plate_nesting = max(
            [-f.dim for s in _sample_sites(trace) for f in s["cond_indep_stack"] if f.vectorized] or [0]
        )
        locals_ = {s["name"] for s in self.local_sites}
        has_global = any(s["name"] not in locals_ for s in _sample_sites(trace) if not s["is_observed"])
        self.global_guide = None
        if has_global:
            self.global_guide = (_CentredIAFNormal if self.centre_globals else AutoIAFNormal)(
                poutine.block(self.model, hide=sorted(locals_)),
                num_flows=self.num_flows,
                hidden_dims=self.hidden_dims,
                skip=self.skip,
                gated=self.gated,
                gate_bias=self.gate_bias,
                init_loc_fn=self.init_loc_fn,
                init_scale=self._init_scale,
                stl=False,  # measured without it (models.bench.globals); not re-measured with it
            )
        frame = self.plate_frame
        if frame is None:
            return
        idx = self._inspect(trace, args, kwargs)
        # per-site layout in the flat unconstrained vector [B, D]
        self._layout, pos, unconstrained = [], 0, []
        for site in self.local_sites:
            value = site["value"]
            u = biject_to(site["fn"].support).inv(value)
            batch_ndim = value.dim() - site["fn"].event_dim
            event = tuple(u.shape[batch_ndim:])
            n = math.prod(event)
            self._layout.append((site["name"], pos, n, event, site["fn"].support, site["fn"].event_dim))
            unconstrained.append(u.reshape(frame.size, n))
            pos += n
        self.latent_dim = pos
        self.stl = pos <= STL_MAX_DIM if self._stl_requested is None else self._stl_requested
        x = self._encoder_input(idx, trace, args, kwargs)
        std = x.std(0) if x.shape[0] > 1 else torch.ones(x.shape[-1], dtype=x.dtype, device=x.device)
        self._x_mean, self._x_std = x.mean(0), torch.where(std > 0, std, torch.ones_like(std))
        if self.condition_on_globals and self.global_guide is None:
            names = ", ".join(f"'{s['name']}'" for s in self.local_sites)
            raise ValueError(
                f"{type(self).__name__}: condition_on_globals=True, but the model has no global latent "
                f"(every latent, {names}, is local to plate '{frame.name}'). Leave condition_on_globals "
                "False for this model."
            )
        if self._user_encoder[0] is not None:
            self.encoder = self._user_encoder[0]
        else:
            shrink = initial_contraction(self.num_flows, self.gated, self.gate_bias)
            self.encoder = MLPEncoder(
                x.shape[-1],
                pos,
                self.context_dim,
                self.encoder_hidden_dims,
                init_mu=torch.cat(unconstrained, -1).mean(0) / (shrink if self.affine_first else 1.0),
                init_sigma=self._init_scale / shrink,
                x_mean=self._x_mean,
                x_std=self._x_std,
            ).to(dtype=x.dtype, device=x.device)
        self.flow = IAF(
            pos,
            num_flows=self.num_flows,
            hidden_dims=self.hidden_dims,
            context_dim=self.context_dim,
            skip=self.skip,
            gated=self.gated,
            gate_bias=self.gate_bias,
        ).to(dtype=x.dtype, device=x.device)
        self._encode(x)  # checks the encoder's output shapes now, with a clear error

    def _inspect(self, trace, args, kwargs) -> torch.Tensor:
        """Plate sizes and where the data are, for these arguments; returns the plate's indices."""
        local = trace.nodes[self.local_sites[0]["name"]]
        (frame,) = [f for f in local["cond_indep_stack"] if f.name == self.plate_frame.name]
        self.full_size = frame.full_size or frame.size
        self.subsampled = frame.size != self.full_size
        self.subsample_size = frame.size
        idx = trace.nodes[frame.name]["value"] if frame.name in trace.nodes else torch.arange(frame.size)
        self._arg_paths = (
            None
            if self.encoder_input_fn
            else _find_arg_paths(
                [trace.nodes[s["name"]] for s in self.observed_sites], frame, idx, args, kwargs
            )
        )
        self._call_key = _call_key(args, kwargs)
        return idx

    def _refresh(self, args, kwargs) -> None:
        """Re-inspect the model when the arguments changed shape or a plain value (e.g. a
        ``subsample_size`` argument): the guide then subsamples as the model now does."""
        if torch._C._get_tracing_state() or _call_key(args, kwargs) == self._call_key:
            return
        with poutine.block(), torch.no_grad(), pyro.validation_enabled(False):
            trace = poutine.trace(self._traced_model).get_trace(*args, **kwargs)
        self._inspect(trace, args, kwargs)

    # -- the data of the current elements -------------------------------------------------------
    def _encoder_input(self, idx, trace, args, kwargs) -> torch.Tensor:
        """``x [B, X]`` for the plate elements ``idx``."""
        if self.encoder_input_fn is not None:
            x = torch.as_tensor(self.encoder_input_fn(*args, **kwargs))
            x = x.reshape(x.shape[0], -1) if x.dim() != 1 else x[:, None]
            return x.index_select(0, idx)
        if self._arg_paths is not None:
            parts = [_get_arg(args, kwargs, key) for key, _, _ in self._arg_paths]
            parts = [
                (a.index_select(axis, idx) if indexed else a).movedim(axis, 0)
                for a, (_, axis, indexed) in zip(parts, self._arg_paths)
            ]
        else:
            parts = [_per_element(trace.nodes[s["name"]], self.plate_frame) for s in self.observed_sites]
        return torch.cat([p.reshape(p.shape[0], -1) for p in parts], -1)

    def _plate(self, args, kwargs):
        """The guide's plate for this call (same name, dim and indices as the model's) and, when
        the model had to be traced for them, the encoder input ``x [B, X]``."""
        frame = self.plate_frame
        if self.encoder_input_fn is not None or self._arg_paths is not None:
            if self.encoder_input_fn is not None:
                full = len(self.encoder_input_fn(*args, **kwargs))
            else:
                key, axis, indexed = self._arg_paths[0]
                with ignore_jit_warnings():  # sizes are constants of a jit trace
                    full = int(_get_arg(args, kwargs, key).shape[axis])
                if not indexed:  # the minibatch itself is the argument; the plate may be scaled
                    size, full = full, (self.full_size if self.subsampled else full)
                    return pyro.plate(frame.name, full, subsample_size=size, dim=frame.dim), None
            size = full if (self._full_plate or not self.subsampled) else min(self.subsample_size, full)
            return pyro.plate(frame.name, full, subsample_size=size, dim=frame.dim), None
        model = self._traced_model
        if self._full_plate and self.subsampled:
            model = poutine.condition(model, data={frame.name: torch.arange(self.full_size)})
        with poutine.block(), torch.no_grad(), pyro.validation_enabled(False):
            trace = poutine.trace(model).get_trace(*args, **kwargs)
        idx = trace.nodes[frame.name]["value"]
        full = trace.nodes[frame.name]["fn"].size
        x = self._encoder_input(idx, trace, args, kwargs)
        return pyro.plate(frame.name, full, subsample=idx, dim=frame.dim), x

    def _encode(self, x: torch.Tensor):
        out = self.encoder(x)
        if not (isinstance(out, tuple | list) and len(out) == 3):
            raise ValueError(
                f"{type(self).__name__}: the encoder must return (mu, sigma, h); got {type(out)}"
            )
        mu, sigma, h = out
        B, D, C = x.shape[0], self.latent_dim, self.context_dim
        if not torch._C._get_tracing_state():
            expected = {"mu": (B, D), "sigma": (B, D), "h": (B, C)}
            for name, value in zip(("mu", "sigma", "h"), out):
                got = None if value is None else tuple(value.shape)
                if got != expected[name] and not (name == "h" and C == 0 and value is None):
                    names = ", ".join(f"'{s['name']}'" for s in self.local_sites)
                    raise ValueError(
                        f"{type(self).__name__}: the encoder returned {name} of shape {got}; expected "
                        f"{expected[name]} ({B} elements of plate '{self.plate_frame.name}', D={D} "
                        f"unconstrained dims of the local sites {names}, C=context_dim={C}). Fix the "
                        f"encoder's output layer or the guide's context_dim."
                    )
        return mu, sigma, h

    # -- the guide ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs) -> dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        result, global_draw = {}, None
        if self.global_guide is not None and self.condition_on_globals:
            with poutine.trace() as global_trace:
                result = dict(self.global_guide(*args, **kwargs))
            # the draw [..., G] (unconstrained) and the loc it came from
            g = global_trace.trace.nodes[f"_{self.global_guide._pyro_name}_latent"]["value"]
            global_draw = g, self.global_guide.loc
        elif self.global_guide is not None:
            result = dict(self.global_guide(*args, **kwargs))
        if self.plate_frame is None:
            return result
        frame = self.plate_frame
        if self._arg_paths is not None or self.encoder_input_fn is not None:
            self._refresh(args, kwargs)
        plate, x = self._plate(args, kwargs)
        with plate as idx:
            x = self._encoder_input(idx, None, args, kwargs) if x is None else x
            mu, sigma, h = self._encode(x)
            pad = (1,) * (-frame.dim - 1)
            B, D = x.shape[0], self.latent_dim
            mu, sigma = mu.reshape(B, *pad, D), sigma.reshape(B, *pad, D)
            mu, mu_stl = self._global_shift(mu, x, global_draw)
            flow = self.flow if self.context_dim == 0 else self.flow.condition(h.reshape(B, *pad, -1))
            posterior = _LocalPosterior(flow, mu, sigma, self.affine_first, self.stl, mu_stl)
            z = pyro.sample(f"_{self._pyro_name}_local_latent", posterior, infer={"is_auxiliary": True})
            for name, pos, n, event, support, event_dim in self._layout:
                u = z[..., pos : pos + n].reshape(*z.shape[:-1], *event)
                transform = biject_to(support)
                value = transform(u)
                log_density = transform.inv.log_abs_det_jacobian(value, u)
                log_density = sum_rightmost(log_density, log_density.dim() - value.dim() + event_dim)
                result[name] = pyro.sample(
                    name, dist.Delta(value, log_density=log_density, event_dim=event_dim)
                )
        return result

    def _global_shift(self, mu: torch.Tensor, x: torch.Tensor, global_draw):
        """``(mu + A (g - loc_g), its path-derivative twin or None)``: ``mu [B, *pad, D]``,
        ``x [B, X]``, ``global_draw = (g [..., G], loc_g [G])`` (None: ``(mu, None)``; ``g``'s batch
        dims, e.g. particles, broadcast against ``mu``'s), ``A [B, *pad, D, G]`` linear in the
        standardized ``x``; the twin detaches every parameter (``mu``, ``A``, ``loc_g``) but not ``g``."""
        if global_draw is None:
            return mu, None
        g, loc = global_draw
        D, G = self.latent_dim, g.shape[-1]
        if self.global_dependence is None:
            layer = nn.Linear(x.shape[-1], D * G).to(dtype=x.dtype, device=x.device)
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
            self.global_dependence = layer
        A = self.global_dependence((x - self._x_mean) / self._x_std).reshape(*mu.shape, G)
        shift = (A * (g - loc)[..., None, :]).sum(-1)
        twin = None
        if self.stl:
            twin = mu.detach() + (A.detach() * (g - loc.detach())[..., None, :]).sum(-1)
        return mu + shift, twin

    @torch.no_grad()
    def sample_posterior(self, num_samples: int, *args, seed: int | None = None, **kwargs):
        """``num_samples`` joint draws of every latent for all elements of the plate (no
        subsampling), ``{name: [num_samples, *site_shape]}``."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        with torch.random.fork_rng():
            if seed is not None:
                torch.manual_seed(seed)
            self._full_plate = True
            try:
                with (
                    poutine.block(),
                    pyro.plate("_num_posterior_samples", num_samples, dim=-self.max_plate_nesting - 1),
                ):
                    trace = poutine.trace(self).get_trace(*args, **kwargs)
            finally:
                self._full_plate = False
        out = {}
        for site in _sample_sites(self.prototype_trace):
            if site["is_observed"]:
                continue
            v = trace.nodes[site["name"]]["value"]
            ndim = site["value"].dim()
            out[site["name"]] = v.reshape(num_samples, *v.shape[v.dim() - ndim :])
        return out


# -- helpers ------------------------------------------------------------------------------------


def _sample_sites(trace) -> list[dict]:
    return [s for s in trace.nodes.values() if s["type"] == "sample" and not site_is_subsample(s)]


def _plan(guide_name: str, trace, has_input_fn: bool):
    """``(plate frame or None, local latent sites, observed sites of that plate)``; raises
    ``ValueError`` naming the site for what the guide cannot amortize."""
    sites = _sample_sites(trace)
    observed_plates = {
        f.name for s in sites if s["is_observed"] for f in s["cond_indep_stack"] if f.vectorized
    }
    local, frames = [], {}
    for site in sites:
        if site["is_observed"] or site["infer"].get("is_auxiliary"):
            continue
        stack = [f for f in site["cond_indep_stack"] if f.vectorized]
        data = [f for f in stack if f.name in observed_plates or (f.full_size or f.size) != f.size]
        if not data:
            continue
        name = site["name"]
        if site["fn"].support.is_discrete:
            raise ValueError(
                f"{guide_name} cannot fit the discrete local site '{name}' ({site['fn'].support}). "
                f"Enumerate it (config_enumerate + TraceEnum_ELBO) and hide it from this guide: "
                f"{guide_name}(block(model, hide=['{name}']))."
            )
        if len(stack) != 1:
            raise ValueError(
                f"{guide_name}: local site '{name}' sits in the plates {[f.name for f in stack]}; "
                "amortization supports local sites in exactly one (data) plate. Move the other plate "
                "into the site's event shape (.to_event) or write that part of the guide by hand."
            )
        frame = stack[0]
        if frame.name not in observed_plates and not has_input_fn:
            raise ValueError(
                f"{guide_name}: local site '{name}' is in the subsampled plate '{frame.name}', which "
                "holds no observed sites, so there is no data to encode. Pass "
                "encoder_input_fn=lambda *args, **kwargs: <per-element inputs [N, X]> (and optionally "
                "encoder=...)."
            )
        frames[frame.name] = frame
        local.append(site)
    if len(frames) > 1:
        raise ValueError(
            f"{guide_name}: local sites are in several data plates {sorted(frames)}; amortize one plate "
            f"per guide: combine {guide_name}(block(model, hide=[...])) guides with AutoGuideList."
        )
    if not frames:
        return None, [], []
    (frame,) = frames.values()
    observed = [
        s for s in sites if s["is_observed"] and any(f.name == frame.name for f in s["cond_indep_stack"])
    ]
    return frame, local, observed


def _per_element(site: dict, frame) -> torch.Tensor:
    """The site's value with the plate's axis first: ``[B, ...]``."""
    fn = site["fn"]
    value = site["value"].expand(fn.batch_shape + fn.event_shape)
    axis = value.dim() - fn.event_dim + frame.dim
    return value.movedim(axis, 0)


def _call_key(args, kwargs) -> tuple:
    """Shapes of tensor arguments and values of plain ones: what decides the plate's sizes."""

    def key(x):
        if isinstance(x, torch.Tensor):
            return ("tensor", tuple(x.shape))
        return x if isinstance(x, int | float | str | bool | type(None)) else type(x).__name__

    return tuple(map(key, args)), tuple(sorted((k, key(v)) for k, v in kwargs.items()))


def _get_arg(args, kwargs, key):
    return args[key] if isinstance(key, int) else kwargs[key]


def _find_arg_paths(observed: list[dict], frame, idx, args, kwargs):
    """``[(arg key, axis, indexed)]`` such that each observed value is the argument itself
    (``indexed=False``: the minibatch is an argument) or ``arg.index_select(axis, idx)``; None
    when some observed value is not found among the arguments."""
    candidates = [(i, a) for i, a in enumerate(args)] + list(kwargs.items())
    paths = []
    for site in observed:
        fn, value = site["fn"], site["value"]
        if not isinstance(value, torch.Tensor) or value.shape != fn.batch_shape + fn.event_shape:
            return None
        axis = value.dim() - fn.event_dim + frame.dim
        rest = value.shape[:axis] + value.shape[axis + 1 :]
        for key, a in candidates:
            if not (
                isinstance(a, torch.Tensor)
                and a.dim() == value.dim()
                and a.dtype == value.dtype
                and a.shape[:axis] + a.shape[axis + 1 :] == rest
            ):
                continue
            if a.shape == value.shape and torch.equal(a, value):
                paths.append((key, axis, False))
                break
            if a.shape[axis] == (frame.full_size or frame.size) and torch.equal(
                a.index_select(axis, idx.to(a.device)), value
            ):
                paths.append((key, axis, True))
                break
        else:
            return None
    if len({indexed for _, _, indexed in paths}) > 1:
        return None
    return paths
