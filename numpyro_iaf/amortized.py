"""``AutoAmortizedIAF`` for NumPyro: an IAF posterior for local latents, amortized by an encoder.

Local latents (one per element of a data plate) get ``q(z_i | x_i)``::

    (mu_i, sigma_i, h_i) = encoder(x_i)                      mu_i, sigma_i [D], h_i [C]
    eps_i ~ N(0, I_D),  z_i = mu_i + sigma_i * IAF_h_i(eps_i)    (unconstrained, then to support)
    log q(z_i | x_i) = log N(eps_i; 0, I) - log|det dIAF/deps| - sum_d log sigma_id

(loc and scale after the flow, like :class:`~numpyro_iaf.AutoIAFNormal`, so the flow works at
unit scale; ``affine_first=True`` puts them first, as the paper: ``z_0 = mu + sigma * eps``,
``z = IAF_h(z_0)``). Global latents get an
:class:`~numpyro_iaf.AutoIAFNormal` on the model with the local sites hidden; the two parts are
independent, ``q = q(globals) prod_i q(z_i | x_i)``, unless ``condition_on_globals=True``: then
``mu_i`` moves linearly with the global draw ``g`` (unconstrained, ``[G]``),
``mu_i + A_i (g - loc_g)``, ``A_i [D, G]`` linear in the standardized ``x_i`` and zero at the start,
``loc_g`` the global part's ``loc``: ``q = q(g) prod_i q(z_i | x_i, g)``. See :class:`AutoAmortizedIAF`.

With ``centre_globals=True`` the global part is centred, ``z = loc + scale * (IAF(eps) - IAF(0))``:
its ``loc`` carries the mean and the flow only shapes (see ``_CentredIAFNormal``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.distributions.transforms import AffineTransform, biject_to
from numpyro.distributions.util import sum_rightmost
from numpyro.infer.autoguide import AutoGuide
from numpyro.infer.initialization import init_to_feasible

from .autoguide import AutoIAFNormal, initial_contraction
from .init import GLOBAL_MEDIAN_SAMPLES, init_to_global_median  # noqa: F401
from .masks import STL_MAX_DIM
from .posterior import known_inverse
from .transforms import IAF

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

    def _get_posterior(self) -> dist.TransformedDistribution:
        posterior = super()._get_posterior()
        flow, affine = posterior.transforms
        loc = affine.loc - affine.scale * flow(jnp.zeros(self.latent_dim))
        return dist.TransformedDistribution(posterior.base_dist, [flow, AffineTransform(loc, affine.scale)])


class _LocalPosterior(dist.TransformedDistribution):
    """``q(z_i | x_i)``: ``eps -> mu + sigma * IAF_h(eps)`` (or ``IAF_h(mu + sigma * eps)``);
    with ``stl=True`` the log density of the guide's own draw differentiates only through ``z``
    (encoder outputs and flow parameters stopped), the path-derivative gradient."""

    def __init__(self, flow: IAF, mu, sigma, affine_first: bool, stl: bool, mu_stl=None) -> None:
        affine = AffineTransform(mu, sigma)
        super().__init__(
            dist.Normal(jnp.zeros_like(mu), 1.0).to_event(1), _ordered(flow, affine, affine_first)
        )
        self.stl, self.affine_first = stl, affine_first
        #: the loc of the path-derivative density: parameters stopped, the global draw not (None: mu stopped)
        self.mu_stl = mu_stl

    def log_prob(self, value, intermediates=None):
        if not self.stl or intermediates is None:
            return super().log_prob(value, intermediates)
        stop = jax.lax.stop_gradient
        flow = self.transforms[1 if self.affine_first else 0]
        affine = self.transforms[0 if self.affine_first else 1]
        flow = flow.with_params(stop(flow.params))
        if flow.context is not None:
            flow.context = stop(flow.context)
        mu = stop(affine.loc) if self.mu_stl is None else self.mu_stl
        sigma = stop(affine.scale)
        if self.affine_first:  # z = F(z0), z0 = mu + sigma * eps
            z0, log_det = known_inverse(flow, value, *intermediates[1])
            eps = (z0 - mu) / sigma
        else:  # z = mu + sigma * F(eps)
            eps, log_det = known_inverse(flow, (value - mu) / sigma, *intermediates[0])
        log_sigma = jnp.broadcast_to(jnp.log(sigma), jnp.shape(value)).sum(-1)
        return self.base_dist.log_prob(eps) - log_det - log_sigma


def _ordered(flow, affine, affine_first: bool) -> list:
    """The local posterior's transforms, ``eps -> z``: loc/scale after the flow or before it."""
    return [affine, flow] if affine_first else [flow, affine]


class MLPEncoder:
    """Default encoder: ELU MLP on standardized inputs, ``x [..., X] -> (mu, sigma, h)``.

    ``a = elu-MLP((x - x_mean) / x_std)``; ``mu = W_mu a + V x_std + b_mu`` (the linear skip ``V``
    makes posteriors whose mean is linear in ``x`` exact), ``sigma = softplus(W_s a + b_s)``,
    ``h = W_h a + b_h``. ``mu`` starts at ``init_mu`` and ``sigma`` at ``init_sigma``. The same
    maths and initialisation as ``pyro_iaf.amortized.MLPEncoder``; the encoder contract of
    :class:`AutoAmortizedIAF`: ``init(key, x) -> params``, ``apply(params, x) -> (mu, sigma, h)``.

    Args:
        input_dim: ``X``, the size of an element's input.
        latent_dim: ``D``, the size of an element's latents.
        context_dim: ``C``, the size of the context ``h`` (0: none).
        hidden_dims: widths of the ELU hidden layers.
        init_mu: the initial ``mu`` ``[D]`` (the guide passes its init point).
        init_sigma: the initial ``sigma`` (> 0).
        x_mean: mean of the inputs, for standardizing (the guide takes it from the first batch).
        x_std: standard deviation of the inputs, likewise.
    """

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        context_dim: int,
        hidden_dims: Sequence[int],
        *,
        init_mu,
        init_sigma: float,
        x_mean,
        x_std,
    ) -> None:
        self.input_dim, self.latent_dim, self.context_dim = input_dim, latent_dim, context_dim
        self.hidden_dims = tuple(hidden_dims)
        self.init_mu, self.init_sigma = jnp.asarray(init_mu), init_sigma
        self.x_mean, self.x_std = jnp.asarray(x_mean), jnp.asarray(x_std)

    def init(self, key: jax.Array, x=None) -> dict:
        D, C = self.latent_dim, self.context_dim
        widths = (self.input_dim, *self.hidden_dims)
        keys = iter(jax.random.split(key, len(widths) + 1))
        params = {}
        for l, (fan_in, width) in enumerate(zip(widths, widths[1:])):
            params[f"hidden.{l}.weight"] = jax.random.normal(next(keys), (width, fan_in)) / math.sqrt(fan_in)
            params[f"hidden.{l}.bias"] = jnp.zeros(width)
        w = jax.random.normal(next(keys), (2 * D + C, widths[-1])) / math.sqrt(widths[-1])
        params["out.weight"] = w.at[: 2 * D].multiply(0.01)
        sigma_bias = math.log(math.expm1(self.init_sigma))  # softplus^-1
        params["out.bias"] = jnp.concatenate([self.init_mu, jnp.full(D, sigma_bias), jnp.zeros(C)])
        params["skip.weight"] = jnp.zeros((D, self.input_dim))
        return params

    def apply(self, params: dict, x):
        x = (x - self.x_mean) / self.x_std
        a = x
        for l in range(len(self.hidden_dims)):
            a = jax.nn.elu(a @ params[f"hidden.{l}.weight"].T + params[f"hidden.{l}.bias"])
        out = a @ params["out.weight"].T + params["out.bias"]
        D = self.latent_dim
        mu, s, h = out[..., :D], out[..., D : 2 * D], out[..., 2 * D :]
        return mu + x @ params["skip.weight"].T, jax.nn.softplus(s), h


class AutoAmortizedIAF(AutoGuide):
    """IAF autoguide whose local latents are amortized by an encoder (Kingma et al. 2016).

    A latent site is *local* when it sits in a plate that also holds observed sites, or in a
    subsampled plate (``plate(name, N, subsample_size=B)``); the plate may also be sized by a
    minibatch argument (the VAE pattern). For the ``B`` current elements the guide computes
    ``(mu, sigma, h) = encoder(x)`` with ``x [B, X]``: by default the observed values of that
    plate's sites, flattened per element; or ``encoder_input_fn(*args, **kwargs)`` ``[N, X]``
    (all ``N`` elements of the plate; the guide picks the current ones) for covariates. Then
    ``z = mu + sigma * IAF_h(eps)`` per element, the concatenated unconstrained local latents
    ``[B, D]``, sampled inside the same plate with the same subsample indices (so NumPyro scales
    them by ``N / B``). Global latents: :class:`AutoIAFNormal` (``num_flows``, ``hidden_dims``,
    ``skip``, ``gated``, ``gate_bias``, ``init_loc_fn``, ``init_scale`` apply to both parts).
    ``centre_globals=True`` centres that part, ``z = loc + scale * (IAF(eps) - IAF(0))``, so that
    ``loc`` carries the mean (the same family; see ``_CentredIAFNormal``): at a constant learning
    rate the final iterate's mean jitters less, but it travels only ~``lr`` per step, where the
    uncentred flow carries it faster (see :doc:`/guide/local_latents`). The default ``init_loc_fn`` is
    :func:`~numpyro_iaf.init.init_to_global_median`: ``init_to_median`` with 1001 prior draws
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
    standardized input ``x_i'``, zero at the start (parameter ``{prefix}_global_dependence``),
    ``loc_g`` the global part's ``loc``. Independent parts cannot carry the posterior's
    correlation between globals and locals, and leave the globals' sds too narrow (0.71 of the
    exact sd of ``mu`` on ``mu ~ N(0, 10^2), theta_i ~ N(mu, 1), y_i ~ N(theta_i, 1)``, whose
    exact posterior this family holds).

    Encoder contract: an object with ``init(rng_key, x [B, X]) -> params`` (any pytree, stored
    with ``numpyro.param``) and ``apply(params, x) -> (mu [B, D], sigma [B, D] > 0, h [B, C])``,
    ``C = context_dim`` (``h`` may be None if ``context_dim=0``); a flax linen module fits as is.
    Without ``apply``, ``encoder(params, x)`` is called. The default is :class:`MLPEncoder`
    (ELU, ``encoder_hidden_dims``), inputs standardized by the first batch, ``mu, sigma``
    starting at ``init_loc_fn``'s mean and ``init_scale``. Parameters do not grow with ``N``.

    How the data reach the guide: at set-up (outside ``jit``, as in ``SVI.init``), if each
    observed value equals an argument indexed by the subsample indices (``y[idx]``, or ``x``
    itself), the guide reads that argument and draws the indices itself (the model replays
    them); otherwise it traces the model at every call (under ``jit`` the unused parts of that
    trace are compiled away) and reads the indices and observed values from the trace.

    Same constructor as ``pyro_iaf.AutoAmortizedIAF``. ``sample_posterior(rng_key, params,
    *args, sample_shape=())`` draws every latent for all ``N`` elements of the plate.

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
        >>> svi = SVI(model, guide, numpyro.optim.Adam(1e-3), Trace_ELBO())
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
        init_loc_fn = init_to_global_median() if init_loc_fn is None else init_loc_fn
        super().__init__(model, prefix="auto" if prefix is None else prefix, init_loc_fn=init_loc_fn)
        self.encoder_input_fn, self._user_encoder = encoder_input_fn, encoder
        self.num_flows, self.context_dim = num_flows, context_dim
        self.hidden_dims = None if hidden_dims is None else tuple(hidden_dims)
        self.encoder_hidden_dims = tuple(encoder_hidden_dims)
        self.skip, self.gated, self.gate_bias = skip, gated, gate_bias
        self.affine_first = affine_first
        self.centre_globals = centre_globals
        self.stl, self._stl_requested = stl, stl  # None: resolved by the local dimension at set-up
        self.condition_on_globals = condition_on_globals
        self._init_scale = init_scale
        self._full_plate = False

    # -- set-up ---------------------------------------------------------------------------------
    def _trace_model(self, args, kwargs, init: bool = False, full: bool = False) -> dict:
        key = numpyro.prng_key()
        model = handlers.seed(self.model, jax.random.PRNGKey(0) if key is None else key)
        # per-call traces read only indices and data: latents at a feasible point (no sampling,
        # and ImproperUniform sites cannot be sampled)
        model = handlers.substitute(model, substitute_fn=self.init_loc_fn if init else init_to_feasible)
        if full:
            model = handlers.substitute(model, data={self.plate_name: jnp.arange(self.full_size)})
        with handlers.block(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "subsample_size does not match" when full
            return handlers.trace(model).get_trace(*args, **kwargs)

    def _setup_prototype(self, *args, **kwargs) -> None:
        trace = self._trace_model(args, kwargs, init=True)
        self.prototype_trace = trace
        plan = _plan(type(self).__name__, trace, self.encoder_input_fn is not None)
        frame, self.local_sites, self.observed_sites = plan
        local_names = [s["name"] for s in self.local_sites]
        has_global = any(
            s["type"] == "sample"
            and not s["is_observed"]
            and name not in local_names
            and not s["infer"].get("is_auxiliary")
            for name, s in trace.items()
        )
        self.global_guide = None
        if has_global:
            self.global_guide = (_CentredIAFNormal if self.centre_globals else AutoIAFNormal)(
                _hide(self.model, local_names),
                num_flows=self.num_flows,
                hidden_dims=self.hidden_dims,
                skip=self.skip,
                gated=self.gated,
                gate_bias=self.gate_bias,
                init_loc_fn=self.init_loc_fn,
                init_scale=self._init_scale,
                stl=False,  # measured without it (models.bench.globals); not re-measured with it
                prefix=f"{self.prefix}_global",
            )
        self.plate_name = None if frame is None else frame.name
        if frame is None:
            return
        self.plate_dim = frame.dim
        idx = self._inspect(trace, args, kwargs)
        self._layout, pos, unconstrained = [], 0, []
        for site in self.local_sites:
            value, fn = site["value"], site["fn"]
            u = biject_to(fn.support).inv(value)
            batch_ndim = jnp.ndim(value) - fn.event_dim
            event = tuple(jnp.shape(u)[batch_ndim:])
            n = math.prod(event)
            self._layout.append((site["name"], pos, n, event, fn.support, fn.event_dim))
            unconstrained.append(jnp.reshape(u, (frame.size, n)))
            pos += n
        self.latent_dim = pos
        self.stl = pos <= STL_MAX_DIM if self._stl_requested is None else self._stl_requested
        x = self._encoder_input(idx, trace, args, kwargs)
        if _is_concrete(x) and _is_concrete(unconstrained):
            mean, std = (
                jnp.mean(x, 0),
                (jnp.std(x, 0, ddof=1) if x.shape[0] > 1 else jnp.ones(x.shape[-1])),
            )
            std, init_mu = jnp.where(std > 0, std, 1.0), jnp.mean(jnp.concatenate(unconstrained, -1), 0)
        else:  # set up under jit: no data-dependent initialisation
            mean, std, init_mu = jnp.zeros(x.shape[-1]), jnp.ones(x.shape[-1]), jnp.zeros(pos)
        self._x_mean, self._x_std = mean, std
        if self.condition_on_globals and self.global_guide is None:
            names = ", ".join(f"'{s['name']}'" for s in self.local_sites)
            raise ValueError(
                f"{type(self).__name__}: condition_on_globals=True, but the model has no global latent "
                f"(every latent, {names}, is local to plate '{frame.name}'). Leave condition_on_globals "
                "False for this model."
            )
        if self._user_encoder is not None:
            self.encoder = self._user_encoder
        else:
            shrink = initial_contraction(self.num_flows, self.gated, self.gate_bias)
            self.encoder = MLPEncoder(
                x.shape[-1],
                pos,
                self.context_dim,
                self.encoder_hidden_dims,
                init_mu=init_mu / (shrink if self.affine_first else 1.0),
                init_sigma=self._init_scale / shrink,
                x_mean=mean,
                x_std=std,
            )
        self._flow = IAF(
            pos,
            num_flows=self.num_flows,
            hidden_dims=self.hidden_dims,
            context_dim=self.context_dim,
            skip=self.skip,
            gated=self.gated,
            gate_bias=self.gate_bias,
        )
        key = numpyro.prng_key()
        self._check_encoder_output(
            self._apply_encoder(self.encoder.init(jax.random.PRNGKey(0) if key is None else key, x), x),
            x.shape[0],
        )

    def _inspect(self, trace, args, kwargs):
        """Plate sizes and where the data are, for these arguments; returns the plate's indices."""
        plate = trace[self.plate_name]
        self.full_size, size = plate["args"][0], jnp.shape(plate["value"])[0]
        self.subsampled, self.subsample_size = size != self.full_size, size
        idx = plate["value"]
        self._arg_paths = None
        if self.encoder_input_fn is None and _is_concrete((args, kwargs)):
            observed = [trace[s["name"]] for s in self.observed_sites]
            self._arg_paths = _find_arg_paths(observed, self.plate_dim, self.full_size, idx, args, kwargs)
        self._call_key = _call_key(args, kwargs)
        return idx

    # -- the data of the current elements -------------------------------------------------------
    def _encoder_input(self, idx, trace, args, kwargs):
        """``x [B, X]`` for the plate elements ``idx``."""
        if self.encoder_input_fn is not None:
            x = jnp.asarray(self.encoder_input_fn(*args, **kwargs))
            x = x[:, None] if x.ndim == 1 else x.reshape(x.shape[0], -1)
            return x[idx]
        if self._arg_paths is not None and trace is None:
            parts = [_get_arg(args, kwargs, key) for key, _, _ in self._arg_paths]
            parts = [
                jnp.moveaxis(jnp.take(a, idx, axis) if indexed else a, axis, 0)
                for a, (_, axis, indexed) in zip(parts, self._arg_paths)
            ]
        else:
            parts = [_per_element(trace[s["name"]], self.plate_dim) for s in self.observed_sites]
        return jnp.concatenate([p.reshape(p.shape[0], -1) for p in parts], -1)

    def _plate(self, args, kwargs):
        """The guide's plate for this call (same name, dim and indices as the model's) and, when
        the model had to be traced for them, the encoder input ``x [B, X]``."""
        name, dim = self.plate_name, self.plate_dim
        use_args = self.encoder_input_fn is not None or self._arg_paths is not None
        if use_args and _call_key(args, kwargs) != self._call_key:
            if _is_concrete((args, kwargs)):  # new shapes or plain values: look again
                self._inspect(self._trace_model(args, kwargs), args, kwargs)
                use_args = self.encoder_input_fn is not None or self._arg_paths is not None
            else:  # under jit: trace the model for this call
                use_args = self.encoder_input_fn is not None
        if use_args:
            if self.encoder_input_fn is not None:
                full = len(self.encoder_input_fn(*args, **kwargs))
            else:
                key, axis, indexed = self._arg_paths[0]
                full = jnp.shape(_get_arg(args, kwargs, key))[axis]
                if not indexed:  # the minibatch itself is the argument; the plate may be scaled
                    size, full = full, (self.full_size if self.subsampled else full)
                    return numpyro.plate(name, full, subsample_size=size, dim=dim), None
            size = full if (self._full_plate or not self.subsampled) else min(self.subsample_size, full)
            return numpyro.plate(name, full, subsample_size=size, dim=dim), None
        trace = self._trace_model(args, kwargs, full=self._full_plate and self.subsampled)
        idx, full = trace[name]["value"], trace[name]["args"][0]
        x = self._encoder_input(idx, trace, args, kwargs)
        with handlers.substitute(data={name: idx}):
            return numpyro.plate(name, full, subsample_size=idx.shape[0], dim=dim), x

    def _apply_encoder(self, params, x):
        apply = getattr(self.encoder, "apply", self.encoder)
        return apply(params, x)

    def _check_encoder_output(self, out, B: int):
        if not (isinstance(out, tuple | list) and len(out) == 3):
            raise ValueError(
                f"{type(self).__name__}: the encoder must return (mu, sigma, h); got {type(out)}"
            )
        D, C = self.latent_dim, self.context_dim
        expected = {"mu": (B, D), "sigma": (B, D), "h": (B, C)}
        for name, value in zip(("mu", "sigma", "h"), out):
            got = None if value is None else tuple(jnp.shape(value))
            if got != expected[name] and not (name == "h" and C == 0 and value is None):
                names = ", ".join(f"'{s['name']}'" for s in self.local_sites)
                raise ValueError(
                    f"{type(self).__name__}: the encoder returned {name} of shape {got}; expected "
                    f"{expected[name]} ({B} elements of plate '{self.plate_name}', D={D} "
                    f"unconstrained dims of the local sites {names}, C=context_dim={C}). Fix the "
                    f"encoder's output layer or the guide's context_dim."
                )
        return out

    # -- the guide ------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs) -> dict:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        result, global_draw = {}, None
        if self.global_guide is not None and self.condition_on_globals:
            with handlers.trace() as global_trace:
                result = dict(self.global_guide(*args, **kwargs))
            # the draw [G] (unconstrained) and the loc it came from
            prefix = self.global_guide.prefix
            global_draw = global_trace[f"_{prefix}_latent"]["value"], global_trace[f"{prefix}_loc"]["value"]
        elif self.global_guide is not None:
            result = dict(self.global_guide(*args, **kwargs))
        if self.plate_name is None:
            return result
        plate, x = self._plate(args, kwargs)
        with plate as idx:
            x = self._encoder_input(idx, None, args, kwargs) if x is None else x
            enc_params = numpyro.param(f"{self.prefix}_encoder")
            if enc_params is None:
                enc_params = numpyro.param(f"{self.prefix}_encoder", self.encoder.init(numpyro.prng_key(), x))
            flow_params = numpyro.param(f"{self.prefix}_local_flow")
            if flow_params is None:
                flow_params = numpyro.param(
                    f"{self.prefix}_local_flow", self._flow.init_params(numpyro.prng_key())
                )
            mu, sigma, h = self._check_encoder_output(self._apply_encoder(enc_params, x), x.shape[0])
            pad = (1,) * (-self.plate_dim - 1)
            B, D = x.shape[0], self.latent_dim
            mu, mu_stl = self._global_shift(mu, x, global_draw)
            mu, sigma = mu.reshape(B, *pad, D), sigma.reshape(B, *pad, D)
            mu_stl = None if mu_stl is None else mu_stl.reshape(B, *pad, D)
            flow = self._flow.with_params(flow_params)
            if self.context_dim:
                flow = flow.condition(h.reshape(B, *pad, -1))
            posterior = _LocalPosterior(flow, mu, sigma, self.affine_first, self.stl, mu_stl)
            z = numpyro.sample(f"_{self.prefix}_local_latent", posterior, infer={"is_auxiliary": True})
            for name, pos, n, event, support, event_dim in self._layout:
                u = z[..., pos : pos + n].reshape(*z.shape[:-1], *event)
                transform = biject_to(support)
                value = transform(u)
                log_density = -transform.log_abs_det_jacobian(u, value)
                log_density = sum_rightmost(log_density, jnp.ndim(log_density) - jnp.ndim(value) + event_dim)
                result[name] = numpyro.sample(
                    name, dist.Delta(value, log_density=log_density, event_dim=event_dim)
                )
        return result

    def _global_shift(self, mu, x, global_draw):
        """``(mu + A (g - loc_g), its path-derivative twin or None)``: ``mu [B, D]``, ``x [B, X]``,
        ``global_draw = (g [G], loc_g [G])`` (None: ``(mu, None)``), ``A [B, D, G]`` linear in the
        standardized ``x``; the twin stops every parameter (``mu``, ``A``, ``loc_g``) but not ``g``."""
        if global_draw is None:
            return mu, None
        g, loc = global_draw
        B, D, G = mu.shape[0], self.latent_dim, g.shape[-1]
        name = f"{self.prefix}_global_dependence"
        dependence = numpyro.param(name)
        if dependence is None:
            zeros = {"weight": jnp.zeros((D * G, x.shape[-1])), "bias": jnp.zeros(D * G)}
            dependence = numpyro.param(name, zeros)
        x = (x - self._x_mean) / self._x_std
        A = (x @ dependence["weight"].T + dependence["bias"]).reshape(B, D, G)
        stop = jax.lax.stop_gradient
        mu_stl = stop(mu) + stop(A) @ (g - stop(loc)) if self.stl else None
        return mu + A @ (g - loc), mu_stl

    def sample_posterior(self, rng_key, params, *args, sample_shape=(), **kwargs) -> dict:
        """Joint draws of every latent for all elements of the plate (no subsampling),
        ``{name: [*sample_shape, *site_shape]}``."""
        if self.prototype_trace is None:
            handlers.seed(self._setup_prototype, rng_key)(*args, **kwargs)
        guide = handlers.substitute(self, data=params)
        names = [
            n
            for n, s in self.prototype_trace.items()
            if s["type"] == "sample" and not s["is_observed"] and not s["infer"].get("is_auxiliary")
        ]

        def one(key):
            with handlers.block():
                trace = handlers.trace(handlers.seed(guide, key)).get_trace(*args, **kwargs)
            return {n: trace[n]["value"] for n in names}

        num = int(np.prod(sample_shape))
        self._full_plate = True
        try:  # one compiled program rather than op-by-op dispatch
            draws = jax.jit(jax.vmap(one))(jax.random.split(rng_key, max(num, 1)))
        finally:
            self._full_plate = False
        return {k: v.reshape(*sample_shape, *v.shape[1:]) for k, v in draws.items()}

    def median(self, params):
        raise NotImplementedError(
            "AutoAmortizedIAF has no data-free median: use sample_posterior(rng_key, params, *args)"
        )

    def quantiles(self, params, quantiles):
        raise NotImplementedError(
            "AutoAmortizedIAF has no data-free quantiles: use sample_posterior(rng_key, params, *args)"
        )


# -- helpers ------------------------------------------------------------------------------------


class _Frame:
    def __init__(self, name: str, dim: int, size: int, full_size: int) -> None:
        self.name, self.dim, self.size, self.full_size = name, dim, size, full_size


def _hide(model: Callable, names: list[str]) -> Callable:
    """``model`` with the sites ``names`` hidden (they still draw from their prior, seeded)."""

    def global_model(*args, **kwargs):
        key = numpyro.prng_key()
        with (
            handlers.block(hide=names),
            handlers.seed(rng_seed=jax.random.PRNGKey(0) if key is None else key),
        ):
            return model(*args, **kwargs)

    return global_model


def _plan(guide_name: str, trace: dict, has_input_fn: bool):
    """``(plate frame or None, local latent sites, observed sites of that plate)``; raises
    ``ValueError`` naming the site for what the guide cannot amortize."""
    full_sizes = {name: s["args"][0] for name, s in trace.items() if s["type"] == "plate"}
    sites = [s for s in trace.values() if s["type"] == "sample"]
    observed_plates = {f.name for s in sites if s["is_observed"] for f in s["cond_indep_stack"]}
    local, frames = [], {}
    for site in sites:
        if site["is_observed"] or site["infer"].get("is_auxiliary"):
            continue
        stack = [
            _Frame(f.name, f.dim, f.size, full_sizes.get(f.name, f.size)) for f in site["cond_indep_stack"]
        ]
        data = [f for f in stack if f.name in observed_plates or f.full_size != f.size]
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


def _per_element(site: dict, plate_dim: int):
    """The site's value with the plate's axis first: ``[B, ...]``."""
    fn = site["fn"]
    value = jnp.broadcast_to(site["value"], fn.batch_shape + fn.event_shape)
    axis = value.ndim - fn.event_dim + plate_dim
    return jnp.moveaxis(value, axis, 0)


def _is_concrete(tree) -> bool:
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(tree))


def _call_key(args, kwargs) -> tuple:
    """Shapes of array arguments and values of plain ones: what decides the plate's sizes."""

    def key(x):
        if hasattr(x, "shape") and hasattr(x, "dtype"):
            return ("array", tuple(x.shape))
        return x if isinstance(x, int | float | str | bool | type(None)) else type(x).__name__

    return tuple(map(key, args)), tuple(sorted((k, key(v)) for k, v in kwargs.items()))


def _get_arg(args, kwargs, key):
    return args[key] if isinstance(key, int) else kwargs[key]


def _find_arg_paths(observed: list[dict], plate_dim: int, full_size: int, idx, args, kwargs):
    """``[(arg key, axis, indexed)]`` such that each observed value is the argument itself
    (``indexed=False``: the minibatch is an argument) or ``take(arg, idx, axis)``; None when
    some observed value is not found among the arguments."""
    candidates = [(i, a) for i, a in enumerate(args)] + list(kwargs.items())
    paths = []
    for site in observed:
        fn, value = site["fn"], site["value"]
        if jnp.shape(value) != fn.batch_shape + fn.event_shape or not _is_concrete((value, idx)):
            return None
        value = np.asarray(value)
        axis = value.ndim - fn.event_dim + plate_dim
        rest = value.shape[:axis] + value.shape[axis + 1 :]
        for key, a in candidates:
            if not (
                hasattr(a, "shape")
                and hasattr(a, "dtype")
                and jnp.ndim(a) == value.ndim
                and a.shape[:axis] + a.shape[axis + 1 :] == rest
            ):
                continue
            a = np.asarray(a)
            if a.shape == value.shape and np.array_equal(a, value):
                paths.append((key, axis, False))
                break
            if a.shape[axis] == full_size and np.array_equal(np.take(a, np.asarray(idx), axis), value):
                paths.append((key, axis, True))
                break
        else:
            return None
    if len({indexed for _, _, indexed in paths}) > 1:
        return None
    return paths
