"""Guide factories shared by the benchmark scripts: one name, the same guide in either backend.

    guide = make_guide("iaf", model, latent_dim, backend="numpyro")

``diagonal`` / ``multivariate`` / ``lowrank`` / ``iaf_builtin`` are the framework's own
``AutoDiagonalNormal``, ``AutoMultivariateNormal``, ``AutoLowRankMultivariateNormal`` and
``AutoIAFNormal`` (their defaults); ``iaf`` is ours
(``pyro_iaf`` / ``numpyro_iaf.AutoIAFNormal`` with its defaults). ``iaf_builtin_stable`` (Pyro
only), ``iaf_builtin_size`` (ours at the built-in's size) and ``iaf_builtin_size_noskip`` (the
same without our skip term: the built-in's very architecture) are ablations for bench_autoguide.
"""

from __future__ import annotations

from collections.abc import Callable

GUIDES = (
    "diagonal",
    "multivariate",
    "lowrank",
    "iaf_builtin",
    "iaf_builtin_stable",
    "iaf",
    "iaf_builtin_size",
    "iaf_builtin_size_noskip",
    "iaf_gated",
    "iaf_gated_stl",
    "iaf_nostl",
    "iaf_2affine",
)
#: the built-in-size ablations keep the step they were measured with (gated, no ``stl``)
_GATED_STEPS = {"gated": True, "gate_bias": 2.0, "stl": False}
#: our guide's variants: constructor keywords on top of the defaults
VARIANTS = {
    "iaf_gated": {"num_flows": 2, **_GATED_STEPS},
    "iaf_gated_stl": {"num_flows": 2, **_GATED_STEPS, "stl": True},
    "iaf_nostl": {"stl": False, "num_flows": 1, "gated": False},
    "iaf_2affine": {"stl": True, "num_flows": 2, "gated": False},
}
PYRO_ONLY = ("iaf_builtin_stable",)


def pyro_guide(name: str, model: Callable, D: int, init: str | None = None):
    from pyro.infer import autoguide

    kw = {} if init is None else {"init_loc_fn": _init_fn(init, autoguide)}

    if name == "diagonal":
        return autoguide.AutoDiagonalNormal(model, **kw)
    if name == "multivariate":
        return autoguide.AutoMultivariateNormal(model, **kw)
    if name == "lowrank":
        return autoguide.AutoLowRankMultivariateNormal(model, **kw)
    if name == "iaf_builtin":
        return autoguide.AutoIAFNormal(model, **kw)
    if name == "iaf_builtin_stable":
        return autoguide.AutoIAFNormal(model, stable=True, **kw)
    import pyro_iaf

    if name == "iaf":
        return pyro_iaf.AutoIAFNormal(model, **kw)
    if name in VARIANTS:
        return pyro_iaf.AutoIAFNormal(model, **VARIANTS[name], **kw)
    if name in ("iaf_builtin_size", "iaf_builtin_size_noskip"):  # Pyro's defaults: 1 flow of [3 D + 1]
        skip = name == "iaf_builtin_size"
        return pyro_iaf.AutoIAFNormal(
            model, num_flows=1, hidden_dims=[3 * D + 1], skip=skip, **_GATED_STEPS, **kw
        )
    raise ValueError(f"Unknown guide {name!r} for pyro; expected one of {GUIDES}")


def numpyro_guide(name: str, model: Callable, D: int, init: str | None = None):
    import numpyro.infer.initialization as initialization
    from numpyro.infer import autoguide

    kw = {} if init is None else {"init_loc_fn": _init_fn(init, initialization)}
    if name == "diagonal":
        return autoguide.AutoDiagonalNormal(model, **kw)
    if name == "multivariate":
        return autoguide.AutoMultivariateNormal(model, **kw)
    if name == "lowrank":
        return autoguide.AutoLowRankMultivariateNormal(model, **kw)
    if name == "iaf_builtin":
        return autoguide.AutoIAFNormal(model, **kw)
    import numpyro_iaf

    if name == "iaf":
        return numpyro_iaf.AutoIAFNormal(model, **kw)
    if name in VARIANTS:
        return numpyro_iaf.AutoIAFNormal(model, **VARIANTS[name], **kw)
    if name in ("iaf_builtin_size", "iaf_builtin_size_noskip"):  # NumPyro's defaults: 3 flows of [D, D]
        skip = name == "iaf_builtin_size"
        return numpyro_iaf.AutoIAFNormal(
            model, num_flows=3, hidden_dims=[D, D], skip=skip, **_GATED_STEPS, **kw
        )
    if name in PYRO_ONLY:
        raise ValueError(f"Guide {name!r} exists only in Pyro")
    raise ValueError(f"Unknown guide {name!r} for numpyro; expected one of {GUIDES}")


def _init_fn(init: str, module):
    fn = getattr(module, f"init_to_{init}", None)
    if fn is None:
        raise ValueError(f"Unknown init {init!r}; expected e.g. 'median', 'mean', 'uniform', 'sample'")
    return fn


def make_guide(name: str, model: Callable, D: int, backend: str, init: str | None = None):
    """The guide called ``name`` for ``model`` (latent dimension ``D``) in ``backend``.

    ``init``: ``"median"`` etc. starts every guide at ``init_to_<init>`` of its backend; None
    keeps each guide's own default (Pyro: median; NumPyro's built-ins: uniform; ours: median).
    """
    if backend == "pyro":
        return pyro_guide(name, model, D, init)
    if backend == "numpyro":
        return numpyro_guide(name, model, D, init)
    raise ValueError(f"Unknown backend {backend!r}; expected 'pyro' or 'numpyro'")
