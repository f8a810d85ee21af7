"""The VAE in NumPyro: pytree networks stored with ``numpyro.param``, jit'd ``SVI.update`` (optax)."""

from __future__ import annotations

import functools
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import optax
from numpyro import handlers
from numpyro.infer import SVI, Trace_ELBO

from models.api import bind
from numpyro_iaf import IAF, export_params

from . import nets as N
from .config import VAEConfig
from .model import vae_guide, vae_model
from .ops import jax_ops

__all__ = ["NumPyroNets", "NumPyroVAE", "JitSVITraining"]


def _float(x):
    return jnp.asarray(x, dtype=jnp.result_type(float))


class NumPyroNets:
    """Encoder, decoder and (optional) IAF; each call reads its pytree with ``numpyro.param``."""

    def __init__(self, cfg: VAEConfig, arch: N.Arch) -> None:
        init = N.init_params(arch, cfg.seed)
        self.arch, self.latent_dim, self.F = arch, arch.latent_dim, jax_ops()
        self.init = {k: {n: _float(v) for n, v in p.items()} for k, p in init.items()}
        self.iaf = None
        if cfg.posterior == "iaf" and cfg.guide == "hand":
            self.iaf = IAF(arch.latent_dim, num_flows=cfg.flows, hidden_dims=(cfg.width, cfg.width),
                           context_dim=arch.context_dim, seed=cfg.seed)
            self.init["iaf"] = jax.tree.map(_float, self.iaf.params)

    @property
    def has_flow(self) -> bool:
        return self.iaf is not None

    def encode(self, x):
        return N.encode(self.F, self.arch, numpyro.param("encoder", self.init["encoder"]), x)

    def decode(self, z):
        return N.decode(self.F, self.arch, numpyro.param("decoder", self.init["decoder"]), z)

    def flow(self, z, h):
        """``z0 [B, D]`` -> ``(z [B, D], sum_t log sigma_t [B, D])`` (gated IAF steps)."""
        params = numpyro.param("iaf", self.init["iaf"])
        log_sigma = jnp.zeros_like(z)
        for made, p in zip(self.iaf.steps, params):
            m, s = made.apply(p, z, h)
            sigma = jax.nn.sigmoid(s)
            z = sigma * z + (1 - sigma) * m
            log_sigma = log_sigma + jax.nn.log_sigmoid(s)
        return z, log_sigma


class _Encoder:
    """Our encoder in AutoAmortizedIAF's contract: ``init(key, x) -> params``, ``apply``."""

    def __init__(self, nets: NumPyroNets) -> None:
        self.nets = nets

    def init(self, key, x):
        return self.nets.init["encoder"]

    def apply(self, params, x):
        return N.encode(self.nets.F, self.nets.arch, params, x)


def _log_prob_sum(tr):
    """Per-datapoint sum of the log densities of a trace's sample sites (factors excluded)."""
    total = 0.0
    for site in tr.values():
        if site["type"] == "sample" and site["name"] != "free_bits":
            total = total + site["fn"].log_prob(site["value"])
    return total


class JitSVITraining:
    """Training verbs shared by the NumPyro VAEs: needs ``update`` (a jit'd ``svi.update``),
    ``_evaluate`` (jit'd ``svi.evaluate``), ``state`` and ``_compiled`` (None until warm-up).

    With ``scan_chunk = n > 0`` and ``_scan`` (a jit'd :func:`scan_updates`), ``train_epoch``
    runs the minibatches ``n`` at a time in one compiled ``lax.scan`` (no Python or dispatch per
    step; the same updates in the same order), the remainder step by step."""

    scan_chunk = 0

    def warmup(self, xb) -> float:
        """Compile the SVI step (and the ``scan_chunk``-step scan) for minibatches shaped like
        ``xb`` (ahead of timing); seconds."""
        t0 = time.perf_counter()
        xb = jnp.asarray(xb)
        cache = getattr(self, "_aot", {})  # NumPyroVAE: shared by the VAEs of one (cfg, side)
        key = (xb.shape, xb.dtype)
        if key not in cache:
            step = self.update.lower(self.state, xb).compile()
            scan = None
            if self.scan_chunk:
                chunk = jax.ShapeDtypeStruct((self.scan_chunk, *xb.shape), xb.dtype)
                scan = self._scan.lower(self.state, chunk).compile()
            cache[key] = step, scan
        self._compiled, self._scan_compiled = cache[key]
        return time.perf_counter() - t0

    def train_epoch(self, batches: np.ndarray, progress=None) -> float:
        """One pass over ``batches [nb, B, P]``; mean training loss per image."""
        if self._compiled is None:
            self.warmup(batches[0])
        losses, n, start = [], self.scan_chunk, 0
        while n and start + n <= len(batches):
            self.state, loss = self._scan_compiled(self.state, jnp.asarray(batches[start : start + n]))
            losses.append(loss)
            start += n
            if progress is not None:
                progress.update(n)
        for xb in batches[start:]:
            self.state, loss = self._compiled(self.state, jnp.asarray(xb))
            losses.append(loss)
            if progress is not None:
                progress.update(1)
        return float(jnp.stack(losses).sum()) / batches.shape[0] / batches.shape[1]

    def loss(self, x) -> float:
        """Training loss (``-L``, free bits included) per image on ``x`` (advances no state)."""
        return float(self._evaluate(self.state, jnp.asarray(x))) / len(x)

    def state_dict(self) -> dict:
        """``{"svi_state": {path: array}}``: every leaf of the SVI state (parameters, optimiser
        state, RNG key) by its pytree path, as NumPy arrays."""
        leaves = jax.tree_util.tree_flatten_with_path(jax.device_get(self.state))[0]
        return {"svi_state": {jax.tree_util.keystr(path): np.asarray(v) for path, v in leaves}}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of :meth:`state_dict`; the paths and shapes must be this VAE's."""
        leaves, treedef = jax.tree_util.tree_flatten_with_path(self.state)
        saved = state["svi_state"]
        names = [jax.tree_util.keystr(path) for path, _ in leaves]
        if set(names) != set(saved):
            raise ValueError(f"load_state_dict: state entries differ: {sorted(set(names) ^ set(saved))}")
        values = []
        for name, (_, mine) in zip(names, leaves):
            value = np.asarray(saved[name])
            if value.shape != mine.shape or value.dtype != mine.dtype:
                raise ValueError(f"load_state_dict: {name} is {value.dtype}{list(value.shape)}; "
                                 f"this VAE has {mine.dtype}{list(mine.shape)}")
            values.append(jnp.asarray(value))
        self.state = jax.tree_util.tree_unflatten(treedef, values)


class NumPyroVAE(JitSVITraining):
    """``SVI(model, guide, optax.adam(ax), Trace_ELBO())`` with a jit'd ``update``, run
    ``scan_chunk`` minibatches per compiled ``lax.scan``."""

    backend = "numpyro"
    scan_chunk = 25

    def __init__(self, cfg: VAEConfig, side: int) -> None:
        self.cfg, self.arch = cfg, cfg.arch_for(side)
        key = (cfg, side)
        if key not in _BUILT:  # networks, SVI and jit'd functions depend only on (cfg, side)
            _BUILT[key] = self._build()
        for name, value in _BUILT[key].items():
            setattr(self, name, value)
        self._compiled = None

    def _build(self) -> dict:
        cfg = self.cfg
        nets = NumPyroNets(cfg, self.arch)
        model = bind(functools.partial(vae_model, nets=nets), "numpyro")
        guide = bind(functools.partial(vae_guide, nets=nets, free_bits=cfg.free_bits), "numpyro")
        eval_guide = bind(functools.partial(vae_guide, nets=nets), "numpyro")
        auto = None
        if cfg.guide == "auto":
            from numpyro_iaf import AutoAmortizedIAF

            auto = guide = eval_guide = AutoAmortizedIAF(
                model, encoder=_Encoder(nets), num_flows=cfg.flows,
                hidden_dims=(cfg.width, cfg.width), context_dim=self.arch.context_dim,
                affine_first=cfg.auto_affine == "first",
                stl=False)  # as the hand-written guide it is compared with (benchmarks/vae)
        opt = optax.adam if cfg.optimizer == "adam" else optax.adamax
        svi = SVI(model, guide, opt(cfg.lr), Trace_ELBO())
        x0 = jnp.zeros((cfg.batch_size, self.arch.pixels))
        if auto is None:  # jit'd: eager init would compile each of its ~100 small ops separately
            state = jax.jit(svi.init)(jax.random.PRNGKey(cfg.seed), x0)
        else:  # the autoguide sets itself up outside jit
            state = svi.init(jax.random.PRNGKey(cfg.seed), x0)
        built = dict(nets=nets, auto=auto, model=model, guide=guide, eval_guide=eval_guide, svi=svi, _x0=x0,
                     state=state, update=jax.jit(svi.update), _evaluate=jax.jit(svi.evaluate),
                     _scan=jax.jit(functools.partial(scan_updates, svi.update)), _aot={})
        built["_logw"] = jax.jit(functools.partial(_log_weights, model, eval_guide))
        built["_decode"] = jax.jit(lambda p, z: jax.nn.sigmoid(N.decode(nets.F, self.arch, p, z)))
        built["_eps_jac"] = jax.jit(functools.partial(_eps_to_z_and_jacobian, nets))
        return built

    @property
    def params(self) -> dict:
        return self.svi.get_params(self.state)

    def export_weights(self) -> dict[str, np.ndarray]:
        """Flat ``{"encoder.<name>", "decoder.<name>", "iaf.steps.<t>.<name>": array}``."""
        p = self.params
        if self.auto is not None:  # AutoAmortizedIAF's own names (not convertible)
            leaves = jax.tree_util.tree_flatten_with_path(p)[0]
            return {jax.tree_util.keystr(path): np.asarray(v) for path, v in leaves}
        out = {f"{k}.{n}": np.asarray(v) for k in ("encoder", "decoder") for n, v in p[k].items()}
        if self.nets.iaf is not None:
            out.update({f"iaf.{k}": v for k, v in export_params(self.nets.iaf.with_params(p["iaf"])).items()})
        return out

    def load_weights(self, flat: dict[str, np.ndarray]) -> None:
        """Replace all weights (the optimiser restarts; the RNG key is kept)."""
        if self.auto is not None:
            raise NotImplementedError("load_weights: not for --guide auto (use the checkpoint)")
        mine = self.export_weights()
        if set(mine) != set(flat):
            raise ValueError(f"load_weights: names differ: {sorted(set(mine) ^ set(flat))}")
        p = {k: {n: _float(flat[f"{k}.{n}"]) for n in self.params[k]} for k in ("encoder", "decoder")}
        if self.nets.iaf is not None:
            p["iaf"] = tuple({n: _float(flat[f"iaf.steps.{t}.{n}"]) for n in step}
                             for t, step in enumerate(self.params["iaf"]))
        self.state = self.state._replace(optim_state=self.svi.optim.init(p))

    # ---- evaluation ---------------------------------------------------------------------------

    def _next_key(self):
        key, sub = jax.random.split(self.state.rng_key)
        self.state = self.state._replace(rng_key=key)
        return sub

    def log_weights(self, x, fixed: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(log p(x, z) [N], log q(z | x) [N])`` for one ``z ~ q`` per row of ``x [N, P]``.

        ``fixed``: ``{"z0": ...}`` (IAF) or ``{"z": ...}`` (diagonal) pins the guide's draw."""
        fixed = {k: _float(v) for k, v in fixed.items()} if fixed else None
        lp, lq = self._logw(self.params, _float(x), self._next_key(), fixed)
        return np.asarray(lp), np.asarray(lq)

    def decode_probs(self, z) -> np.ndarray:
        return np.asarray(self._decode(self.params["decoder"], _float(z)))

    def reconstruct(self, x) -> np.ndarray:
        """Bernoulli means of ``p(x | z)`` for one ``z ~ q(z | x)`` per row."""
        guide = handlers.seed(handlers.substitute(self.eval_guide, data=self.params), self._next_key())
        z = guide(_float(x))
        return self.decode_probs(z["z"] if isinstance(z, dict) else z)

    def eps_to_z(self, x1, eps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For one image ``x1 [P]``: ``z0 = mu + sigma eps``, ``z(eps)`` and ``dz/deps [D, D]``."""
        z, z0, jac = self._eps_jac(self.params, _float(x1)[None], _float(eps))
        return np.asarray(z0), np.asarray(z), np.asarray(jac)


_BUILT: dict = {}


def scan_updates(update, state, batches):
    """``update`` (``svi.update``) over ``batches [n, B, P]`` in one ``lax.scan``:
    ``(state, summed loss)``."""
    state, losses = jax.lax.scan(update, state, batches)
    return state, losses.sum()


def _log_weights(model, guide, params, x, key, fixed):
    guide = handlers.substitute(guide, data=params)
    if fixed:
        guide = handlers.substitute(guide, data=fixed)
    gtr = handlers.trace(handlers.seed(guide, key)).get_trace(x)
    model = handlers.substitute(model, data=params)
    mtr = handlers.trace(handlers.replay(model, trace=gtr)).get_trace(x)
    return _log_prob_sum(mtr), _log_prob_sum(gtr)


def _eps_to_z_and_jacobian(nets, params, x, e):
    def fn(e):
        mu, sigma, h = nets.encode(x)
        z0 = mu + sigma * e[None]
        return (nets.flow(z0, h)[0] if nets.has_flow else z0)[0], z0[0]

    fn = handlers.substitute(fn, data=params)
    z, z0 = fn(e)
    return z, z0, jax.jacfwd(lambda e: fn(e)[0])(e)
