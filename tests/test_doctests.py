"""The ``>>>`` examples in the docstrings of ``pyro_iaf`` and ``numpyro_iaf`` run (doctest).

Examples that use a ``model`` get a tiny one here: a model with global latents for the
``AutoIAFNormal`` examples, one with a local latent per data point for ``AutoAmortizedIAF``.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

from models.api import bind, dist, ops, pyro

PACKAGES = ("pyro_iaf", "numpyro_iaf")


def _modules(package: str) -> list[str]:
    pkg = importlib.import_module(package)
    return [package] + [f"{package}.{m.name}" for m in pkgutil.iter_modules(pkg.__path__)]


def _global_model(x=None):
    """``mu ~ N(0, 1)``, ``x_i ~ N(mu, 1)``: global latents for the ``AutoIAFNormal`` examples."""
    x = ops.zeros(3) if x is None else x
    mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(mu, 1.0), obs=x)


def _local_model(x=None):
    """``z_i ~ N(0, I_2)``, ``x_i ~ N(z_i, I)``: a local latent per row for ``AutoAmortizedIAF``."""
    x = ops.zeros((3, 2)) if x is None else x
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(0.0, 1.0).expand([2]).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)


def _pyro_globs() -> dict:
    import pyro as native
    import pyro.distributions as native_dist
    import torch
    from pyro.infer import SVI, Trace_ELBO

    native.clear_param_store()
    return {"pyro": native, "dist": native_dist, "torch": torch, "SVI": SVI, "Trace_ELBO": Trace_ELBO}


def _numpyro_globs() -> dict:
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as native_dist
    from numpyro.infer import SVI, Trace_ELBO

    return {"numpyro": numpyro, "dist": native_dist, "jnp": jnp, "SVI": SVI, "Trace_ELBO": Trace_ELBO}


def _globs(package: str, amortized: bool) -> dict:
    """The framework's names plus ``model``, the write-once model bound to that backend."""
    name = "pyro" if package == "pyro_iaf" else "numpyro"
    globs = _pyro_globs() if name == "pyro" else _numpyro_globs()
    return {**globs, "model": bind(_local_model if amortized else _global_model, name)}


CASES = [(package, module) for package in PACKAGES for module in _modules(package)]


@pytest.mark.parametrize("package,module", CASES, ids=[m for _, m in CASES])
def test_docstring_examples_run(package, module):
    mod = importlib.import_module(module)
    globs = _globs(package, "amortized" in module)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    attempted = 0
    for test in doctest.DocTestFinder(exclude_empty=True).find(mod, module, globs=dict(vars(mod), **globs)):
        runner.run(test)
    failed, attempted = runner.summarize(verbose=False)
    assert failed == 0, f"{failed} of {attempted} doctest examples failed in {module} (output above)"


def test_every_class_with_an_example_is_covered():
    """The examples we know of are found (a renamed module would otherwise skip them silently)."""
    found = 0
    for _, module in CASES:
        mod = importlib.import_module(module)
        found += sum(len(t.examples) for t in doctest.DocTestFinder().find(mod, module))
    assert found >= 20
