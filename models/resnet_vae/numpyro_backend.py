"""The ResNet VAE in NumPyro: one flat parameter pytree (``numpyro.param``), jit'd SVI update
(``optax.adamax``), and the jittable prior sampler :func:`sample_images`.

``vae.update(state, batch) -> (state, loss)`` is ``jax.jit(svi.update)`` over all local devices
(:func:`numpyro_iaf.parallel.data_parallel_update`: batch split, state replicated): a pure function of the
SVI state (a pytree: optimiser state with ``{"resnet_vae": {name: array}}``, RNG key) and the
minibatch ``batch [B, C*S*S]`` (batch leading), with no host round-trips, ready to be sharded.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as nd
import optax
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.svi import SVIState

from models.api import backend, bind
from models.vae.numpyro_backend import JitSVITraining, _log_prob_sum, _log_weights
from numpyro_iaf import MADE
from numpyro_iaf.parallel import data_parallel_update

from .config import ResNetVAEConfig
from .likelihood import numpyro_distribution
from .model import layer_terms, resnet_vae_guide, resnet_vae_model
from .nets import Net, data_init, init_params, made_names
from .ops import jax_ops

__all__ = ["NumPyroNets", "NumPyroResNetVAE", "sample_images", "PARAM"]

PARAM = "resnet_vae"
_AOT: dict = {}  # compiled updates per (config, minibatch shape), shared by the VAEs of one config


def _float(x):
    return jnp.asarray(x, dtype=jnp.result_type(float))


@functools.lru_cache(maxsize=16)
def _made(zdim: int, width: int, context: int, reverse: bool) -> MADE:
    """A MADE for its masks (its own weights are not used); cached: building one compiles. Built
    eagerly even inside a trace (``sample_images`` under jit), so no tracer is cached."""
    with jax.ensure_compile_time_eval():
        return MADE(zdim, (width, width), context_dim=context, reverse=reverse)


class NumPyroNets(Net):
    """:class:`~models.resnet_vae.nets.Net` over JAX ops; ``params()`` is ``numpyro.param``."""

    def __init__(self, cfg: ResNetVAEConfig, init: dict | None = None) -> None:
        super().__init__(cfg, jax_ops(), self._made)
        self.init = None if init is None else {k: _float(v) for k, v in init.items()}
        self.mades = [_made(cfg.zdim, cfg.iaf_hidden, cfg.hidden, bool(t)) for t in range(min(cfg.flows, 2))]
        for made in self.mades:
            if set(made.params) != {n for n, _ in made_names(cfg)}:
                raise RuntimeError("numpyro_iaf.MADE's parameter names changed; update nets.made_names")
        self.logistic = numpyro_distribution()

    def _made(self, t, params, z, h):
        return self.mades[t % 2].apply(params, z, h)

    def params(self) -> dict:
        return numpyro.param(PARAM, self.init)

    def likelihood(self, p, out):
        B = out.shape[0]
        if self.cfg.likelihood == "bernoulli":
            return nd.Bernoulli(logits=out.reshape(B, -1))
        log_scale = jnp.broadcast_to(p["dec_log_scale"][None, :, None, None], out.shape)
        return self.logistic(out.reshape(B, -1), log_scale.reshape(B, -1))


@functools.lru_cache(maxsize=8)
def _nets(cfg: ResNetVAEConfig) -> NumPyroNets:
    return NumPyroNets(cfg)


def sample_images(params: dict, cfg: ResNetVAEConfig, key, n: int):
    """``n`` images ``[n, C, S, S]`` by ancestral sampling from the prior through the top-down
    pass and the decoder: Bernoulli means (binary) or discretized-logistic draws in [0, 1].

    Jittable with ``cfg`` and ``n`` static: ``jax.jit(sample_images, static_argnums=(1, 3))``.
    ``params``: the flat dict of :func:`~models.resnet_vae.init_params` (NumPy or JAX arrays).
    """
    nets = _nets(cfg)
    model = bind(functools.partial(resnet_vae_model, nets=nets), "numpyro")
    key_model, key_x = jax.random.split(key)
    params = {k: _float(v) for k, v in params.items()}
    with handlers.block(), handlers.seed(rng_seed=key_model), handlers.substitute(data={PARAM: params}):
        out = model(None, num=n)
    if cfg.likelihood == "bernoulli":
        return jax.nn.sigmoid(out)
    log_scale = jnp.broadcast_to(params["dec_log_scale"][None, :, None, None], out.shape)
    return nets.logistic(out, log_scale).sample(key_x)


_sample_jit = jax.jit(sample_images, static_argnums=(1, 3))


class NumPyroResNetVAE(JitSVITraining):
    """``SVI(model, guide, optax.adamax(lr), Trace_ELBO())`` with a jit'd ``update``.

    ``init_batch [B, C*S*S]``: data-dependent init of the weight norm on it (else ``g`` starts at
    each layer's ``init_scale``). ``params`` (a flat dict) overrides both.
    """

    backend = "numpyro"

    def __init__(self, cfg: ResNetVAEConfig, init_batch=None, params: dict | None = None) -> None:
        self.cfg = cfg
        if params is None:
            params = init_params(cfg, cfg.seed)
            if init_batch is not None:
                params = data_init(cfg, params, init_batch, cfg.seed)
        self.nets = NumPyroNets(cfg, params)
        self.model = bind(functools.partial(resnet_vae_model, nets=self.nets), "numpyro")
        self.guide = bind(functools.partial(resnet_vae_guide, nets=self.nets, free_bits=cfg.free_bits),
                          "numpyro")
        self.eval_guide = bind(functools.partial(resnet_vae_guide, nets=self.nets), "numpyro")
        self.svi = SVI(self.model, self.guide, optax.adamax(cfg.lr), Trace_ELBO())
        key = jax.random.PRNGKey(cfg.seed)
        x0 = jnp.zeros((1, cfg.pixels))
        jax.eval_shape(self.svi.init, key, x0)  # sets svi.constrain_fn; nothing is compiled
        self.state = SVIState(self.svi.optim.init({PARAM: self.nets.init}), None, key)
        self.update = data_parallel_update(self.svi)  # batch split over all local devices
        self._evaluate = jax.jit(self.svi.evaluate)
        self._logw = jax.jit(functools.partial(_log_weights, self.model, self.eval_guide))
        self._compiled = self._inspect = None
        self._aot = _AOT.setdefault(cfg, {})  # warmup: one compilation per minibatch shape

    @property
    def params(self) -> dict:
        """The flat parameter dict ``{name: array}``."""
        return self.svi.get_params(self.state)[PARAM]

    def export_weights(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v) for k, v in self.params.items()}

    def load_weights(self, flat: dict[str, np.ndarray]) -> None:
        """Replace all weights (the optimiser restarts)."""
        if set(flat) != set(self.params):
            raise ValueError(f"load_weights: names differ: {sorted(set(flat) ^ set(self.params))}")
        p = {k: _float(flat[k]) for k in self.params}
        self.state = self.state._replace(optim_state=self.svi.optim.init({PARAM: p}))

    def train_steps(self, batches) -> np.ndarray:
        """One update per minibatch of ``batches [n, B, P]``, in order; each step's loss (summed
        over its minibatch) ``[n]``."""
        if self._compiled is None:
            self.warmup(batches[0])
        losses = []
        for xb in batches:
            self.state, loss = self._compiled(self.state, jnp.asarray(xb))
            losses.append(loss)
        return np.asarray(jnp.stack(losses))

    def sample_images(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` images ``[n, C, S, S]`` from the prior (:func:`sample_images`, compiled) at
        ``PRNGKey(seed)``; advances no state."""
        return np.asarray(_sample_jit(self.params, self.cfg, jax.random.PRNGKey(seed), n))

    def _next_key(self):
        key, sub = jax.random.split(self.state.rng_key)
        self.state = self.state._replace(rng_key=key)
        return sub

    def log_weights(self, x, fixed: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(log p(x, z) [N], log q(z | x) [N])`` for one ``z ~ q`` per row of ``x [N, P]``;
        ``fixed``: ``{"z<i>_0" (IAF) or "z<i>": array}`` pins guide draws."""
        fixed = {k: _float(v) for k, v in fixed.items()} if fixed else None
        lp, lq = self._logw(self.svi.get_params(self.state), _float(x), self._next_key(), fixed)
        return np.asarray(lp), np.asarray(lq)

    def inspect(self, x, fixed: dict) -> dict:
        """Everything at pinned guide draws ``fixed`` (``{"z<i>_0": ...}`` or ``{"z<i>": ...}``)
        for ``x [N, P]``: ``log_p``, ``log_q`` ``[N]``, ``loss`` (``Trace_ELBO`` with free bits,
        summed over the batch), guide ``sites`` ``{name: [N]}`` and ``layers``
        (:func:`~models.resnet_vae.model.layer_terms`). NumPy out."""
        if self._inspect is None:
            self._inspect = jax.jit(functools.partial(_inspect, self))
        out = self._inspect(self.svi.get_params(self.state), _float(x),
                            {k: _float(v) for k, v in fixed.items()})
        return jax.tree.map(np.asarray, out)

    def flow_jacobian(self, i: int, z0, context) -> tuple[np.ndarray, np.ndarray]:
        """Layer ``i``'s IAF on one image, ``z0 [1, Z, s, s]``, context ``[1, hidden, s, s]``:
        ``(z [1, Z, s, s], dz/dz0 [n, n])``, ``n = Z s s``, by autodiff of the whole map."""
        p, z0, ctx = self.params, _float(z0), _float(context)
        fn = lambda v: self.nets.flow(p, i, v.reshape(z0.shape), ctx)[0].reshape(-1)  # noqa: E731
        z, jac = jax.jit(lambda v: (fn(v), jax.jacfwd(fn)(v)))(z0.reshape(-1))
        return np.asarray(z).reshape(z0.shape), np.asarray(jac)


def _inspect(vae, params, x, fixed):
    guide = handlers.substitute(handlers.substitute(vae.guide, data=params), data=fixed)
    gtr = handlers.trace(handlers.seed(guide, 0)).get_trace(x)
    mtr = handlers.trace(handlers.replay(handlers.substitute(vae.model, data=params), trace=gtr)).get_trace(x)
    guide_fixed = handlers.substitute(vae.guide, data=fixed)
    loss = Trace_ELBO().loss(jax.random.PRNGKey(0), params, vae.model, guide_fixed, x)
    sites = {k: s["fn"].log_prob(s["value"]) for k, s in gtr.items()
             if s["type"] == "sample" and k != "free_bits"}
    with backend("numpyro"):
        layers = layer_terms(vae.nets, params[PARAM], x, fixed)
    return dict(log_p=_log_prob_sum(mtr), log_q=_log_prob_sum(gtr), loss=loss, sites=sites, layers=layers)
