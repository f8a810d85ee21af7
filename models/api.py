"""Thin backend adapter: models are written once against pyro-api and run under Pyro or NumPyro.

Model bodies import ``pyro, distributions as dist, ops`` from here (pyro-api proxies), use only
ops that ``torch`` and ``jax.numpy`` share, and draw randomness only through ``pyro.sample``.

>>> from models.api import backend, as_array
>>> with backend("numpyro"):
...     y = as_array([1.0, 2.0])  # jnp float32 array; a torch tensor under backend("pyro")

pyro-api's own ``"numpy"`` alias goes through ``numpyro.compat`` (where ``ops.zeros`` returns
ones), so we register an alias ``"numpyro"`` that points at the native modules instead.
:func:`backend` switches the proxies without pyro-api's side effect of seeding the RNG.
Everything else here (``log_joint``, ``constrain``, ``latent_sites``) is the per-backend native
code the tests and the reference script need; imports of torch/jax are lazy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from pyroapi import distributions, handlers, ops, pyro, pyro_backend, register_backend
from pyroapi.dispatch import _ALIASES, GenericModule

__all__ = [
    "BACKENDS",
    "as_array",
    "bind",
    "backend",
    "constrain",
    "current_backend",
    "dist",
    "handlers",
    "latent_sites",
    "log_joint",
    "ops",
    "pyro",
    "pyro_backend",
    "to_numpy",
]

dist = distributions
BACKENDS = ("pyro", "numpyro")

register_backend(
    "numpyro",
    {
        "pyro": "numpyro",
        "distributions": "numpyro.distributions",
        "handlers": "numpyro.handlers",
        "ops": "jax.numpy",
        "infer": "numpyro.infer",
        "optim": "numpyro.optim",
    },
)


def _check(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; expected one of {BACKENDS}")
    return name


@contextlib.contextmanager
def backend(name: str) -> Iterator[None]:
    """Route the pyro-api proxies to ``name`` in {"pyro", "numpyro"} (no RNG seeding)."""
    new = _ALIASES[_check(name)]
    old = {k: GenericModule.current_backend[k] for k in new}
    GenericModule.current_backend.update(new)
    try:
        yield
    finally:
        GenericModule.current_backend.update(old)


def current_backend() -> str:
    """The backend the pyro-api proxies point at now: "pyro" (pyro-api's default) or "numpyro"."""
    name = GenericModule.current_backend["pyro"]
    if name not in BACKENDS:
        raise ValueError(f"pyro-api backend {name!r} is not supported; use models.api.backend()")
    return name


def _torch_dtype(dtype: Any):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    return getattr(torch, np.dtype(dtype).name)


def as_array(x: Any, dtype: Any = None, backend_name: str | None = None):
    """``x`` (array-like) as a torch tensor or a jnp array for the current backend.

    ``dtype``: a NumPy dtype (name), or None for the backend's default float: float32, unless
    ``torch.set_default_dtype(torch.float64)`` / ``jax.enable_x64(True)`` is in force. In JAX the
    dtype is canonicalized (float64 -> float32, int64 -> int32 while x64 is off), no warning.
    """
    name = _check(backend_name or current_backend())
    x = np.asarray(x)
    if name == "pyro":
        import torch

        dtype = torch.get_default_dtype() if dtype is None else _torch_dtype(dtype)
        return torch.as_tensor(x, dtype=dtype)
    import jax
    import jax.numpy as jnp

    dtype = jnp.result_type(float) if dtype is None else np.dtype(dtype)
    return jnp.asarray(x, dtype=jax.dtypes.canonicalize_dtype(dtype))


def to_numpy(x: Any) -> np.ndarray:
    """A torch tensor (detached), jax array or array-like as a NumPy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
    return np.asarray(x)


def bind(model: Callable, name: str) -> Callable:
    """``model`` wrapped so that every call runs under ``backend(name)``."""

    def bound(*args, **kwargs):
        with backend(name):
            return model(*args, **kwargs)

    bound.__name__ = getattr(model, "__name__", "model")
    bound.__doc__ = model.__doc__
    bound.__wrapped__ = model
    return bound


# ---- native per-backend helpers (used by tests and make_references) ----------------------------


def _prior_trace(spec, seed: int = 0) -> dict:
    """``{name: site}`` of the latent (non-observed) sample sites, in execution order.

    NumPyro traces abstractly (``jax.eval_shape``: no compilation); there only each site's
    ``fn`` (for its support) and ``value.shape`` are meaningful.
    """
    args, kwargs = spec.model_args, spec.model_kwargs
    if spec.backend == "pyro":
        import pyro.poutine as poutine
        import torch
        from pyro.poutine.util import site_is_subsample

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            tr = poutine.trace(spec.model).get_trace(*args, **kwargs)
        nodes = [(k, s) for k, s in tr.nodes.items() if not site_is_subsample(s)]
    else:
        import jax
        import numpyro.handlers as nh

        captured: dict = {}

        def run(key):
            captured.update(nh.trace(nh.seed(spec.model, key)).get_trace(*args, **kwargs))

        jax.eval_shape(run, jax.random.PRNGKey(seed))
        nodes = captured.items()
    return {k: s for k, s in nodes if s["type"] == "sample" and not s["is_observed"]}


def latent_sites(spec) -> list[tuple[str, tuple[int, ...]]]:
    """``[(name, shape)]`` of the latent sites in execution order (traced from the prior)."""
    return [(k, tuple(s["value"].shape)) for k, s in _prior_trace(spec).items()]


def constrain(spec, z: np.ndarray, dtype: Any = None) -> dict:
    """Flat unconstrained point ``z [latent_dim]`` (site order of ``spec.sites``) -> constrained
    site values: arrays of the spec's backend, ``dtype`` as in :func:`as_array`."""
    sites = _prior_trace(spec)
    z = np.asarray(z)
    if z.shape != (spec.latent_dim,):
        raise ValueError(f"Expected z of shape ({spec.latent_dim},); got {z.shape}")
    if spec.backend == "pyro":
        from torch.distributions import biject_to
    else:
        from numpyro.distributions.transforms import biject_to
    out, i = {}, 0
    for name, shape in spec.sites:
        n = int(np.prod(shape, dtype=int))
        u = as_array(z[i : i + n].reshape(shape), dtype, spec.backend)
        out[name] = biject_to(sites[name]["fn"].support)(u)
        i += n
    return out


def log_joint(spec, values: dict) -> float:
    """``log p(latents=values, data)`` under the spec's backend, all sites summed."""
    args, kwargs = spec.model_args, spec.model_kwargs
    if spec.backend == "pyro":
        import pyro.poutine as poutine

        conditioned = poutine.condition(spec.model, data=values)
        return float(poutine.trace(conditioned).get_trace(*args, **kwargs).log_prob_sum())
    return float(_numpyro_log_density(spec)(values))


def _numpyro_log_density(spec) -> Callable:
    """``jit(values -> log p(values, data))``, cached on the spec (one compile per spec)."""
    fn = spec.cache.get("numpyro_log_density")
    if fn is None:
        import jax
        from numpyro.infer.util import log_density

        args, kwargs = spec.model_args, spec.model_kwargs
        fn = jax.jit(lambda v: log_density(spec.model, args, kwargs, v)[0])
        spec.cache["numpyro_log_density"] = fn
    return fn
