"""Inverse Autoregressive Flow posteriors for Pyro."""

from .amortized import AutoAmortizedIAF
from .autoguide import AutoIAFNormal
from .checks import NonFiniteLossError
from .convert import (
    convert_flow,
    export_guide_params,
    export_params,
    flow_from_weights,
    import_guide_params,
)
from .fit import FitResult, fit
from .masks import default_hidden_dims, made_masks
from .nn import MADE
from .transforms import IAF

__all__ = [
    "AutoAmortizedIAF",
    "AutoIAFNormal",
    "IAF",
    "MADE",
    "FitResult",
    "NonFiniteLossError",
    "fit",
    "convert_flow",
    "export_params",
    "export_guide_params",
    "import_guide_params",
    "flow_from_weights",
    "default_hidden_dims",
    "made_masks",
]
