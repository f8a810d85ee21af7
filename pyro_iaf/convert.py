"""Weights to and from the NumPyro twin: one flat dict of NumPy arrays, names shared."""

from __future__ import annotations

import numpy as np
import torch

from .transforms import IAF

__all__ = ["export_params", "convert_flow"]


def export_params(flow) -> dict[str, np.ndarray]:
    """Flat ``{"steps.<t>.<name>": array}`` of an IAF of either backend (masks excluded)."""
    if hasattr(flow, "state_dict"):  # PyTorch module
        return {k: v.detach().cpu().numpy() for k, v in flow.state_dict().items() if "mask" not in k}
    return {f"steps.{t}.{k}": np.asarray(v) for t, step in enumerate(flow.params) for k, v in step.items()}


def convert_flow(flow) -> IAF:
    """A ``pyro_iaf.IAF`` with the configuration and weights of ``flow`` (e.g. a ``numpyro_iaf.IAF``)."""
    ours = IAF(**flow.config)
    weights = export_params(flow)
    state = ours.state_dict()
    missing = {k for k in state if "mask" not in k} ^ set(weights)
    if missing:
        raise ValueError(f"convert_flow: parameter names differ between backends: {sorted(missing)}")
    ours.load_state_dict(
        {
            k: torch.tensor(np.array(weights[k]), dtype=v.dtype) if k in weights else v
            for k, v in state.items()
        }
    )
    return ours
