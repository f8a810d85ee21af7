"""``AutoIAFNormal`` for Pyro: an IAF over all latents, in one line."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from pyro.distributions import constraints
from pyro.distributions.transforms import AffineTransform, ComposeTransform
from pyro.infer.autoguide import AutoContinuous
from pyro.nn import PyroParam
from pyro.poutine.util import prune_subsample_sites
from torch.distributions import biject_to

from .checks import check_latent_sites
from .init import init_to_global_median
from .masks import autoguide_defaults
from .posterior import IAFPosterior
from .start import valid_start
from .transforms import IAF

__all__ = ["AutoIAFNormal"]


def feasible_point(fn: dist.Distribution) -> torch.Tensor:
    """A point of ``fn``'s support without sampling: unconstrained zeros mapped by ``biject_to``."""
    transform = biject_to(fn.support)
    value = transform(torch.zeros(transform.inverse_shape(fn.batch_shape + fn.event_shape)))
    value._pyro_custom_init = False
    return value


def with_feasible_fallback(init_loc_fn: Callable) -> Callable:
    """``init_loc_fn``, falling back to :func:`feasible_point` for sites that cannot be sampled
    (``ImproperUniform``: Pyro's own ``init_to_median`` and ``init_to_feasible`` raise there)."""

    def init(site: dict | None = None):
        if site is None:
            return init
        try:
            return init_loc_fn(site)
        except NotImplementedError:
            return feasible_point(site["fn"])

    return init


def initial_contraction(num_flows: int, gated: bool, gate_bias: float) -> float:
    """How much a fresh flow shrinks its input: ``sigmoid(gate_bias) ** K`` (1 for affine)."""
    return 1 / (1 + math.exp(-gate_bias)) ** num_flows if gated else 1.0


class AutoIAFNormal(AutoContinuous):
    """IAF posterior over the concatenated unconstrained latents ``z [D]``.

    ``eps ~ N(0, I)``, ``u = IAF(eps)`` (``num_flows`` steps: affine ``m + exp(s) * z`` by default,
    the paper's gated eq. 11-12 with ``gated=True``), and ``z = loc + scale * u``. ``loc`` starts at
    ``init_loc_fn``'s point and ``scale`` at ``init_scale`` divided by the fresh flow's
    contraction, so the first posterior has mean ``init_loc`` and standard deviations
    ``init_scale``. ``stl=True`` scores the guide's own draws with the path-derivative ("sticking
    the landing") gradient: same ELBO, less noise near the optimum, a blocked triangular solve per
    draw. Left as None (the default), ``stl`` is on up to ``STL_MAX_DIM`` (512) latent
    dimensions, and then ``num_flows=1, gated=False``; above it (no ``stl``) ``num_flows=2,
    gated=True``, the better flow without it; resolved when the guide is set up.
    Unlike Pyro's built-in, ``median`` and
    ``quantiles`` work (Monte Carlo), ``init_loc_fn`` is honoured, and one latent dimension is
    fine. Pyro's spellings ``hidden_dim`` and ``num_transforms`` are accepted. As in Pyro's own
    autoguides, parameters are ``{prefix}.loc``, ``{prefix}.scale``, ``{prefix}.flow$$$...`` and the
    latent site ``_{prefix}_latent``, with ``prefix`` defaulting to the class name; sites that
    cannot be sampled (``ImproperUniform``) start at a feasible point.

    Args:
        model: the model (a callable); its latent sites are found by tracing it once.
        num_flows: IAF steps; None is resolved from the latent dimension at set-up (see
            ``autoguide_defaults``).
        hidden_dims: hidden widths of each step's MADE; None gives ``default_hidden_dims(D)``.
        skip: add the masked linear skip term ``V z`` to each step's shift (one step then covers any
            full-covariance Gaussian).
        gated: the paper's gated step (True) or the affine step (False); None is resolved from the
            latent dimension at set-up (see ``autoguide_defaults``).
        gate_bias: initial ``s`` of the gated steps, so a fresh gate is ``sigmoid(gate_bias)``.
        init_loc_fn: where ``loc`` starts: a per-site init strategy, as in the framework's
            autoguides (default :func:`init_to_global_median`, the prior median). Where the
            model's log density or its gradient is not finite there, the guide warns and starts
            from uniform draws in (-2, 2) of the unconstrained space instead.
        init_scale: the initial posterior standard deviation of every latent coordinate (> 0).
        stl: score the guide's own draws with the path-derivative gradient (same ELBO, less noise
            near the optimum); None is resolved from the latent dimension at set-up (see
            ``autoguide_defaults``).
        prefix: name prefix of the guide's parameters and latent site; see above for the default.
        hidden_dim: Pyro's spelling of ``hidden_dims`` (an int is one layer); wins when given.
        num_transforms: Pyro's spelling of ``num_flows``; wins when given.
        create_plates: as in the framework's autoguides: a callable of the model's arguments
            returning the plates to run the guide in (e.g. a subsampled plate for minibatches).

    Example:
        >>> guide = AutoIAFNormal(model)
        >>> svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    """

    #: Monte Carlo samples and seed used by :meth:`median` and :meth:`quantiles` by default.
    num_mc_samples: int = 4000
    mc_seed: int = 0

    def __init__(
        self,
        model: Callable,
        *,
        num_flows: int | None = None,
        hidden_dims: Sequence[int] | None = None,
        skip: bool = True,
        gated: bool | None = None,
        gate_bias: float = 2.0,
        init_loc_fn: Callable = init_to_global_median,
        init_scale: float = 0.1,
        stl: bool | None = None,
        prefix: str | None = None,
        hidden_dim: Sequence[int] | int | None = None,
        num_transforms: int | None = None,
        create_plates: Callable | None = None,
    ) -> None:
        if init_scale <= 0:
            raise ValueError(f"init_scale must be positive; got {init_scale}")
        if hidden_dim is not None:  # Pyro's spelling
            hidden_dims = [hidden_dim] if isinstance(hidden_dim, int) else hidden_dim
        self.num_flows = num_transforms if num_transforms is not None else num_flows
        self.hidden_dims = None if hidden_dims is None else tuple(hidden_dims)
        self.skip, self.gated, self.gate_bias = skip, gated, gate_bias
        self._init_scale = init_scale
        self.stl = stl
        # None: resolved from the latent dimension at set-up (see autoguide_defaults)
        self._requested = (stl, self.num_flows, gated)
        super().__init__(model, init_loc_fn=with_feasible_fallback(init_loc_fn))
        self.create_plates = create_plates
        if prefix is not None:  # Pyro's own autoguides are named by their class
            self._pyro_name = prefix

    # -- set-up ---------------------------------------------------------------------------------
    def _setup_prototype(self, *args, **kwargs) -> None:
        trace = self._trace_model(args, kwargs)
        latent = [site for _, site in prune_subsample_sites(trace).iter_stochastic_nodes()]
        check_latent_sites(type(self).__name__, latent, "AutoAmortizedIAF")
        super()._setup_prototype(*args, **kwargs)
        self.stl, self.num_flows, self.gated = autoguide_defaults(self.latent_dim, *self._requested)
        init_loc = valid_start(self, self._init_loc().detach(), args, kwargs)
        shrink = initial_contraction(self.num_flows, self.gated, self.gate_bias)
        self.loc = PyroParam(init_loc)
        self.register_buffer("_zeros", torch.zeros_like(init_loc), persistent=False)
        self.scale = PyroParam(
            torch.full_like(init_loc, self._init_scale / shrink), constraints.softplus_positive
        )
        self.flow = IAF(
            self.latent_dim,
            num_flows=self.num_flows,
            hidden_dims=self.hidden_dims,
            skip=self.skip,
            gated=self.gated,
            gate_bias=self.gate_bias,
        ).to(dtype=init_loc.dtype, device=init_loc.device)
        self._adopt_stored_flow()
        self._arg_shapes = _shapes(args, kwargs)

    def _adopt_stored_flow(self) -> None:
        """Start the flow from weights the param store already holds (``pyro.get_param_store().load``).

        Pyro registers the flow with ``pyro.module(..., update_module_params=False)``, which would
        keep the fresh weights in the module and train a stale copy in the store: copy the stored
        values in and let the store hold the module's own tensors again."""
        store = pyro.get_param_store()
        try:
            prefix = f"{self._pyro_get_fullname('flow')}$$$"
        except AssertionError:  # set up outside a Pyro context: a top-level guide's name
            prefix = f"{self._pyro_name}.flow$$$"
        with torch.no_grad():
            for name, param in self.flow.named_parameters():
                key = prefix + name
                if key in store and store[key].shape == param.shape:
                    param.copy_(store[key])
                    del store[key]

    def _trace_model(self, args, kwargs):
        """One blocked run of the model (its sites, for checks); torch's random stream is left as is."""
        with torch.random.fork_rng(), poutine.block():
            return poutine.trace(self.model).get_trace(*args, **kwargs)

    def _check_static_shapes(self, args, kwargs) -> None:
        """Latent shapes are fixed at the first call: re-trace only when argument shapes change."""
        shapes = _shapes(args, kwargs)
        if shapes == self._arg_shapes:
            return
        trace = self._trace_model(args, kwargs)
        for name, site in self.prototype_trace.iter_stochastic_nodes():
            now = trace.nodes.get(name)
            if now is None or now["value"].shape != site["value"].shape:
                got = None if now is None else tuple(now["value"].shape)
                raise ValueError(
                    f"{type(self).__name__}: latent site '{name}' had shape "
                    f"{tuple(site['value'].shape)} when the guide was set up and now has {got}. "
                    "Latent shapes must stay fixed; for latents that grow with the data use "
                    "AutoAmortizedIAF, or build a new guide for the new shapes."
                )
        self._arg_shapes = shapes

    def forward(self, *args, **kwargs):
        if self.prototype_trace is not None and not torch._C._get_tracing_state():
            self._check_static_shapes(args, kwargs)
        return super().forward(*args, **kwargs)

    # -- the posterior --------------------------------------------------------------------------
    def get_base_dist(self) -> dist.Distribution:
        # a buffer, not self.loc.new_zeros: each read of a PyroParam is a pyro.param call
        return dist.Normal(self._zeros, 1.0).to_event(1)

    def get_transform(self, *args, **kwargs) -> ComposeTransform:
        """``eps -> loc + scale * IAF(eps)``; the affine caches so ``log_prob`` of samples is free."""
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        return ComposeTransform(self._transforms(), cache_size=1)

    def get_posterior(self, *args, **kwargs) -> dist.TransformedDistribution:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        flow, affine = self._transforms()
        return IAFPosterior(flow, affine.loc, affine.scale, stl=self.stl)

    def _transforms(self) -> list:
        with warnings.catch_warnings():
            # a frozen guide (requires_grad_(False)) uses its flow's weights as they are; Pyro warns
            # that they are not in the param store, where the built-in's PyroParams do not
            warnings.filterwarnings("ignore", message=".*not registered in the param store because")
            flow = self.flow
        return [flow, AffineTransform(self.loc, self.scale, event_dim=1, cache_size=1)]

    # -- summaries ------------------------------------------------------------------------------
    @torch.no_grad()
    def _latent_samples(self, num_samples: int | None, seed: int | None, *args, **kwargs) -> torch.Tensor:
        num_samples = self.num_mc_samples if num_samples is None else num_samples
        seed = self.mc_seed if seed is None else seed
        with torch.random.fork_rng(), poutine.block():
            torch.manual_seed(seed)
            return self.get_posterior(*args, **kwargs).sample((num_samples,))

    def _loc_scale(self, *args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation ``[D]`` of the unconstrained latent, Monte Carlo as in
        :meth:`median` (Pyro's ``AutoContinuous`` hook; its Gaussian guides return ``loc, scale``)."""
        latent = self._latent_samples(None, None, *args, **kwargs)
        return latent.mean(0), latent.std(0)

    def _constrain(self, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        return {
            site["name"]: biject_to(site["fn"].support)(value) for site, value in self._unpack_latent(latent)
        }

    def median(self, *args, num_samples: int | None = None, seed: int | None = None, **kwargs):
        """Posterior median of each latent site: per-coordinate Monte Carlo median of
        ``num_samples`` (default :attr:`num_mc_samples`) draws with a fixed ``seed``, mapped to the
        site's support. Exact for elementwise-monotone supports; repeated calls agree."""
        latent = self._latent_samples(num_samples, seed, *args, **kwargs)
        return self._constrain(_quantiles(latent, [0.5])[0])

    def quantiles(self, quantiles, *args, num_samples: int | None = None, seed: int | None = None, **kwargs):
        """Posterior quantiles of each latent site, shape ``[len(quantiles), *site_shape]``:
        Monte Carlo over ``num_samples`` draws with a fixed ``seed`` (see :meth:`median`)."""
        latent = self._latent_samples(num_samples, seed, *args, **kwargs)
        per_q = [self._constrain(row) for row in _quantiles(latent, quantiles)]
        return {name: torch.stack([d[name] for d in per_q]) for name in per_q[0]}

    def sample_posterior(self, num_samples: int, *args, seed: int | None = None, **kwargs):
        """``num_samples`` joint draws of every latent site, ``{name: [num_samples, *shape]}``."""
        latent = self._latent_samples(num_samples, seed, *args, **kwargs)
        return self._constrain(latent)


def _shapes(args, kwargs) -> tuple:
    def shape(x):
        return tuple(x.shape) if isinstance(x, torch.Tensor) else None

    return tuple(map(shape, args)), tuple(sorted((k, shape(v)) for k, v in kwargs.items()))


def _quantiles(samples: torch.Tensor, quantiles) -> torch.Tensor:
    """Per-column sample quantiles (linear interpolation, like ``numpy.quantile``): ``[Q, D]``."""
    q = torch.as_tensor(quantiles, dtype=samples.dtype, device=samples.device).reshape(-1)
    ordered = samples.sort(0).values
    position = q * (samples.shape[0] - 1)
    lo = position.floor().long()
    hi = position.ceil().long()
    frac = (position - lo).unsqueeze(-1)
    return ordered[lo] * (1 - frac) + ordered[hi] * frac
