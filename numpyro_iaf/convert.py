"""Weights to and from the PyTorch twin: one flat dict of NumPy arrays, names shared."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .transforms import IAF

__all__ = ["export_params", "convert_flow"]


def export_params(flow) -> dict[str, np.ndarray]:
    """Flat ``{"steps.<t>.<name>": array}`` of an IAF of either backend (masks excluded)."""
    if hasattr(flow, "state_dict"):  # PyTorch module
        return {k: v.detach().cpu().numpy() for k, v in flow.state_dict().items() if "mask" not in k}
    return {f"steps.{t}.{k}": np.asarray(v) for t, step in enumerate(flow.params) for k, v in step.items()}


def convert_flow(flow) -> IAF:
    """A ``numpyro_iaf.IAF`` with the configuration and weights of ``flow`` (e.g. a ``pyro_iaf.IAF``)."""
    ours = IAF(**flow.config)
    weights = export_params(flow)
    expected = {f"steps.{t}.{k}" for t, step in enumerate(ours.params) for k in step}
    missing = expected ^ set(weights)
    if missing:
        raise ValueError(f"convert_flow: parameter names differ between backends: {sorted(missing)}")
    params = tuple(
        {k: jnp.asarray(weights[f"steps.{t}.{k}"], dtype=v.dtype) for k, v in step.items()}
        for t, step in enumerate(ours.params)
    )
    return ours.with_params(params)
