"""Inverse Autoregressive Flow posteriors for Pyro."""

from .masks import default_hidden_dims, made_masks
from .nn import MADE
from .convert import convert_flow, export_params
from .transforms import IAF

__all__ = ["IAF", "MADE", "convert_flow", "export_params", "default_hidden_dims", "made_masks"]
