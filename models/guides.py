"""Guide factories shared by the benchmark scripts: one name, the same guide in either backend.

    guide = make_guide("iaf", model, latent_dim, backend="numpyro")

``diagonal`` / ``multivariate`` / ``iaf_builtin`` are the framework's own ``AutoDiagonalNormal``,
``AutoMultivariateNormal`` and ``AutoIAFNormal`` (their defaults); ``iaf`` is ours
(``pyro_iaf`` / ``numpyro_iaf.AutoIAFNormal`` with its defaults). ``iaf_builtin_stable`` (Pyro
only) and ``iaf_builtin_size`` (ours at the built-in's size) are ablations for bench_autoguide.
"""

from __future__ import annotations

from collections.abc import Callable

GUIDES = ("diagonal", "multivariate", "iaf_builtin", "iaf_builtin_stable", "iaf", "iaf_builtin_size")
PYRO_ONLY = ("iaf_builtin_stable",)


def pyro_guide(name: str, model: Callable, D: int):
    from pyro.infer import autoguide

    if name == "diagonal":
        return autoguide.AutoDiagonalNormal(model)
    if name == "multivariate":
        return autoguide.AutoMultivariateNormal(model)
    if name == "iaf_builtin":
        return autoguide.AutoIAFNormal(model)
    if name == "iaf_builtin_stable":
        return autoguide.AutoIAFNormal(model, stable=True)
    import pyro_iaf

    if name == "iaf":
        return pyro_iaf.AutoIAFNormal(model)
    if name == "iaf_builtin_size":  # Pyro's defaults: 1 flow of [3 D + 1]
        return pyro_iaf.AutoIAFNormal(model, num_flows=1, hidden_dims=[3 * D + 1])
    raise ValueError(f"Unknown guide {name!r} for pyro; expected one of {GUIDES}")


def numpyro_guide(name: str, model: Callable, D: int):
    from numpyro.infer import autoguide

    if name == "diagonal":
        return autoguide.AutoDiagonalNormal(model)
    if name == "multivariate":
        return autoguide.AutoMultivariateNormal(model)
    if name == "iaf_builtin":
        return autoguide.AutoIAFNormal(model)
    import numpyro_iaf

    if name == "iaf":
        return numpyro_iaf.AutoIAFNormal(model)
    if name == "iaf_builtin_size":  # NumPyro's defaults: 3 flows of [D, D]
        return numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D])
    if name in PYRO_ONLY:
        raise ValueError(f"Guide {name!r} exists only in Pyro")
    raise ValueError(f"Unknown guide {name!r} for numpyro; expected one of {GUIDES}")


def make_guide(name: str, model: Callable, D: int, backend: str):
    """The guide called ``name`` for ``model`` (latent dimension ``D``) in ``backend``."""
    if backend == "pyro":
        return pyro_guide(name, model, D)
    if backend == "numpyro":
        return numpyro_guide(name, model, D)
    raise ValueError(f"Unknown backend {backend!r}; expected 'pyro' or 'numpyro'")
