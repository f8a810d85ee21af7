"""Registry of benchmark models: ``MODELS[name](**kw)`` builds a ``ModelSpec`` for the current
backend; ``get_model(name, backend="numpyro", **kw)`` picks the backend too.

>>> spec = get_model("eight_schools", backend="numpyro")
>>> spec.latent_dim, spec.sites[1], spec.reference.mean.shape
(10, ('tau', ()), (10,))
"""

from __future__ import annotations

from collections.abc import Callable

from models.api import backend as use_backend
from models.spec import ModelSpec
from models.targets.banana import banana
from models.targets.bnn import bnn
from models.targets.brownian_motion import brownian_motion
from models.targets.cox_process import cox_process
from models.targets.eight_schools import eight_schools
from models.targets.funnel import funnel
from models.targets.gp_classification import gp_classification
from models.targets.hierarchical_logistic import hierarchical_logistic
from models.targets.hierarchical_regression import hierarchical_regression
from models.targets.horseshoe_regression import horseshoe_regression
from models.targets.item_response import item_response
from models.targets.linear_gaussian import linear_gaussian
from models.targets.logistic_regression import logistic_regression
from models.targets.ordinal_regression import ordinal_regression
from models.targets.stochastic_volatility import stochastic_volatility
from models.targets.sv_sp500 import sv_sp500

MODELS: dict[str, Callable[..., ModelSpec]] = {
    "linear_gaussian": linear_gaussian,
    "funnel": funnel,
    "banana": banana,
    "eight_schools": eight_schools,
    "logistic_regression": logistic_regression,
    "hierarchical_regression": hierarchical_regression,
    "stochastic_volatility": stochastic_volatility,
    "cox_process": cox_process,
    "brownian_motion": brownian_motion,
    "item_response": item_response,
    "horseshoe_regression": horseshoe_regression,
    "gp_classification": gp_classification,
    "hierarchical_logistic": hierarchical_logistic,
    "ordinal_regression": ordinal_regression,
    "sv_sp500": sv_sp500,
    "bnn": bnn,
}

#: models whose reference comes from ``models/targets/references/<name>.json`` (NUTS)
NUTS_MODELS = ("eight_schools", "logistic_regression", "hierarchical_regression",
               "stochastic_volatility", "cox_process", "item_response",
               "horseshoe_regression", "gp_classification", "hierarchical_logistic",
               "ordinal_regression", "sv_sp500", "bnn")
#: models whose posterior is multimodal: their NUTS reference is one chain in one mode
ONE_MODE_MODELS = ("bnn",)


def is_known(name: str) -> bool:
    """Whether ``name`` is a registered model or a posteriordb posterior (``"<data>-<model>"``)."""
    from models.posteriordb import POSTERIOR_NAMES

    return name in MODELS or name in POSTERIOR_NAMES


def get_model(name: str, backend: str | None = None, **kwargs) -> ModelSpec:
    """``MODELS[name](**kwargs)`` under ``backend`` ("pyro" / "numpyro"; default: current).

    A posteriordb name (:data:`models.posteriordb.POSTERIOR_NAMES`) gives
    :func:`models.posteriordb.get_posterior` (no keyword arguments).
    """
    from models.posteriordb import POSTERIOR_NAMES, get_posterior

    if name in POSTERIOR_NAMES:
        if kwargs:
            raise ValueError(f"Posterior {name!r} takes no arguments; got {sorted(kwargs)}")
        return get_posterior(name, backend=backend)
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; registered: {sorted(MODELS)} or a posteriordb "
                         "name (models.posteriordb.POSTERIOR_NAMES)")
    if backend is None:
        return MODELS[name](**kwargs)
    with use_backend(backend):
        return MODELS[name](**kwargs)
