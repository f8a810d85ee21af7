"""``AutoIAFNormal`` for NumPyro: an IAF over all latents, in one line."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions import constraints
from numpyro.distributions.transforms import ComposeTransform
from numpyro.infer.autoguide import AutoContinuous
from numpyro.infer.initialization import init_to_uniform

from .checks import check_latent_sites
from .init import init_to_global_median
from .masks import autoguide_defaults
from .posterior import IAFPosterior
from .transforms import IAF

__all__ = ["AutoIAFNormal"]


def initial_contraction(num_flows: int, gated: bool, gate_bias: float) -> float:
    """How much a fresh flow shrinks its input: ``sigmoid(gate_bias) ** K`` (1 for affine)."""
    return 1 / (1 + math.exp(-gate_bias)) ** num_flows if gated else 1.0


class _Frame:
    """A plate frame with its full size (NumPyro keeps full sizes on the guide)."""

    def __init__(self, frame, full_size: int) -> None:
        self.name, self.size, self.full_size = frame.name, frame.size, full_size


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
    Unlike NumPyro's built-in, one latent
    dimension is fine and the default widths do not grow with ``D**2`` beyond the skip term.
    Same constructor as ``pyro_iaf.AutoIAFNormal``; methods follow NumPyro (``median(params)``,
    ``quantiles(params, quantiles)``, ``sample_posterior(rng_key, params, ...)``). Parameters are
    named ``{prefix}_loc``, ``{prefix}_scale``, ``{prefix}_flow`` (``prefix`` defaults to "auto").

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
        >>> svi = SVI(model, guide, numpyro.optim.Adam(1e-2), Trace_ELBO())
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
        if create_plates is not None:
            raise ValueError("create_plates is a Pyro option; NumPyro guides find plates themselves")
        self.num_flows = num_transforms if num_transforms is not None else num_flows
        self.hidden_dims = None if hidden_dims is None else tuple(hidden_dims)
        self.skip, self.gated, self.gate_bias = skip, gated, gate_bias
        self._init_scale = init_scale
        self.stl = stl
        # None: resolved from the latent dimension at set-up (see autoguide_defaults)
        self._requested = (stl, self.num_flows, gated)
        super().__init__(model, prefix="auto" if prefix is None else prefix, init_loc_fn=init_loc_fn)

    # -- set-up ---------------------------------------------------------------------------------
    def _setup_prototype(self, *args, **kwargs) -> None:
        try:
            self._setup_valid_prototype(args, kwargs)
        except Exception as error:  # e.g. NumPyro's ImportError for discrete sites
            try:
                trace = self._trace_model(args, kwargs)
            except Exception:
                raise error from None
            self._check_sites(trace)  # a ValueError naming the site and the fix, if the model is why
            raise
        self._check_sites(self.prototype_trace)
        self.stl, self.num_flows, self.gated = autoguide_defaults(self.latent_dim, *self._requested)
        self._flow = IAF(
            self.latent_dim,
            num_flows=self.num_flows,
            hidden_dims=self.hidden_dims,
            skip=self.skip,
            gated=self.gated,
            gate_bias=self.gate_bias,
        )
        self._arg_shapes = _shapes(args, kwargs)

    def _setup_valid_prototype(self, args, kwargs) -> None:
        """NumPyro's set-up, which retries ``init_loc_fn`` until the log density and its gradient
        are finite; when every try fails (a deterministic ``init_loc_fn`` at a bad point), retry
        from ``init_to_uniform`` as NumPyro's own guides do, with a warning."""
        try:
            super()._setup_prototype(*args, **kwargs)
        except RuntimeError as error:
            tried_uniform = self.init_loc_fn is init_to_uniform
            if "Cannot find valid initial parameters" not in str(error) or tried_uniform:
                raise
            warnings.warn(
                f"{type(self).__name__}: the model's log density or its gradient is not finite at "
                "the start point from init_loc_fn; starting instead from a uniform draw in (-2, 2) "
                "of the unconstrained space, as NumPyro's guides and NUTS retry (init_to_uniform). "
                "Pass another init_loc_fn to choose the start.",
                UserWarning,
                stacklevel=5,
            )
            self.init_loc_fn = init_to_uniform
            super()._setup_prototype(*args, **kwargs)

    def _check_sites(self, trace: dict) -> None:
        full_sizes = {name: s["args"][0] for name, s in trace.items() if s["type"] == "plate"}
        latent = [
            {
                "name": name,
                "fn": site["fn"],
                "cond_indep_stack": [
                    _Frame(f, full_sizes.get(f.name, f.size)) for f in site["cond_indep_stack"]
                ],
            }
            for name, site in trace.items()
            if site["type"] == "sample" and not site["is_observed"] and not site["infer"].get("is_auxiliary")
        ]
        check_latent_sites(type(self).__name__, latent, "AutoAmortizedIAF")

    def _trace_model(self, args, kwargs) -> dict:
        """One blocked, seeded run of the model under ``init_loc_fn`` (its sites, for checks), as
        NumPyro's own set-up runs it: sites that cannot be sampled (``ImproperUniform``) get values."""
        model = handlers.seed(self.model, jax.random.PRNGKey(0))
        model = handlers.substitute(model, substitute_fn=self.init_loc_fn)
        with handlers.block():
            return handlers.trace(model).get_trace(*args, **kwargs)

    def _check_static_shapes(self, args, kwargs) -> None:
        """Latent shapes are fixed at the first call: re-trace only when argument shapes change."""
        shapes = _shapes(args, kwargs)
        if shapes == self._arg_shapes:
            return
        trace = self._trace_model(args, kwargs)
        for name, site in self.prototype_trace.items():
            if site["type"] != "sample" or site["is_observed"]:
                continue
            now = trace.get(name)
            if now is None or jnp.shape(now["value"]) != jnp.shape(site["value"]):
                got = None if now is None else jnp.shape(now["value"])
                raise ValueError(
                    f"{type(self).__name__}: latent site '{name}' had shape "
                    f"{jnp.shape(site['value'])} when the guide was set up and now has {got}. "
                    "Latent shapes must stay fixed; for latents that grow with the data use "
                    "AutoAmortizedIAF, or build a new guide for the new shapes."
                )
        self._arg_shapes = shapes

    def __call__(self, *args, **kwargs):
        if self.prototype_trace is not None:
            self._check_static_shapes(args, kwargs)
        return super().__call__(*args, **kwargs)

    # -- the posterior --------------------------------------------------------------------------
    def get_base_dist(self) -> dist.Distribution:
        return dist.Normal(jnp.zeros(self.latent_dim), 1.0).to_event(1)

    def _get_posterior(self) -> dist.TransformedDistribution:
        flow_params = numpyro.param(f"{self.prefix}_flow")
        if flow_params is None:
            flow_params = numpyro.param(f"{self.prefix}_flow", self._flow.init_params(numpyro.prng_key()))
        shrink = initial_contraction(self.num_flows, self.gated, self.gate_bias)
        loc = numpyro.param(f"{self.prefix}_loc", self._init_latent)
        scale = numpyro.param(
            f"{self.prefix}_scale",
            jnp.full(self.latent_dim, self._init_scale / shrink),
            constraint=constraints.softplus_positive,
        )
        return IAFPosterior(self._flow.with_params(flow_params), loc, scale, stl=self.stl)

    def get_transform(self, params: dict) -> ComposeTransform:
        """``eps -> loc + scale * IAF(eps)`` for the given parameters."""
        posterior = handlers.substitute(self._get_posterior, params)()
        return ComposeTransform(posterior.transforms)

    # -- summaries ------------------------------------------------------------------------------
    def _latent_samples(self, params: dict, num_samples: int | None, seed: int | None) -> jnp.ndarray:
        num_samples = self.num_mc_samples if num_samples is None else num_samples
        seed = self.mc_seed if seed is None else seed
        # one compiled function instead of dozens of small op-by-op compilations
        sample = jax.jit(lambda p, key: self.get_posterior(p).sample(key, (num_samples,)))
        return sample(params, jax.random.PRNGKey(seed))

    def _constrain(self, latent: jnp.ndarray, params: dict) -> dict:
        return jax.jit(self._unpack_and_constrain)(latent, params)

    def median(self, params: dict, *, num_samples: int | None = None, seed: int | None = None) -> dict:
        """Posterior median of each latent site: per-coordinate Monte Carlo median of
        ``num_samples`` (default :attr:`num_mc_samples`) draws with a fixed ``seed``, mapped to the
        site's support. Exact for elementwise-monotone supports; repeated calls agree."""
        latent = self._latent_samples(params, num_samples, seed)
        return self._constrain(jnp.quantile(latent, 0.5, axis=0), params)

    def quantiles(
        self, params: dict, quantiles, *, num_samples: int | None = None, seed: int | None = None
    ) -> dict:
        """Posterior quantiles of each latent site, shape ``[len(quantiles), *site_shape]``:
        Monte Carlo over ``num_samples`` draws with a fixed ``seed`` (see :meth:`median`)."""
        latent = self._latent_samples(params, num_samples, seed)
        return self._constrain(jnp.quantile(latent, jnp.asarray(quantiles), axis=0), params)


def _shapes(args, kwargs) -> tuple:
    def shape(x):
        return tuple(jnp.shape(x)) if hasattr(x, "shape") else None

    return tuple(map(shape, args)), tuple(sorted((k, shape(v)) for k, v in kwargs.items()))
