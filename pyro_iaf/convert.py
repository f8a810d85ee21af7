"""Weights to and from the NumPyro twin: one flat dict of NumPy arrays, names shared."""

from __future__ import annotations

import numpy as np
import pyro
import torch

from .transforms import IAF

__all__ = [
    "export_params",
    "load_params",
    "convert_flow",
    "flow_from_weights",
    "export_guide_params",
    "import_guide_params",
]


def export_params(flow) -> dict[str, np.ndarray]:
    """Flat ``{"steps.<t>.<name>": array}`` of an IAF of either backend (masks excluded).

    Args:
        flow: an ``IAF`` of either backend.
    """
    if hasattr(flow, "state_dict"):  # PyTorch module
        return {
            f"steps.{t}.{k}": v.detach().cpu().numpy()
            for t, made in enumerate(flow.steps)
            for k, v in made.params.items()
        }
    return {f"steps.{t}.{k}": np.asarray(v) for t, step in enumerate(flow.params) for k, v in step.items()}


def convert_flow(flow) -> IAF:
    """A ``pyro_iaf.IAF`` with the configuration and weights of ``flow`` (e.g. a ``numpyro_iaf.IAF``).

    Args:
        flow: an ``IAF`` of either backend.
    """
    return flow_from_weights(flow.config, export_params(flow))


def flow_from_weights(config: dict, weights: dict[str, np.ndarray]) -> IAF:
    """``IAF(**config)`` carrying the flat ``weights`` of :func:`export_params`.

    Args:
        config: the flow's ``IAF.config`` (its constructor arguments).
        weights: flat weights from :func:`export_params`.
    """
    ours = IAF(**config)
    load_params(ours, weights)
    return ours


def load_params(flow: IAF, weights: dict[str, np.ndarray]) -> None:
    """Copy the flat ``{"steps.<t>.<name>": array}`` of :func:`export_params` into ``flow``."""
    names = {f"steps.{t}.{k}" for t, made in enumerate(flow.steps) for k in made.params}
    missing = names ^ set(weights)
    if missing:
        raise ValueError(f"convert_flow: parameter names differ between backends: {sorted(missing)}")
    for t, made in enumerate(flow.steps):
        made.load_params({k: weights[f"steps.{t}.{k}"] for k in made.params})


def export_guide_params(guide, params: dict | None = None) -> dict:
    """Backend-neutral state of a fitted ``AutoIAFNormal`` (``params`` unused: the param store).

    ``{"sites": [(name, size), ...] in latent order, "loc": {site: [size]}, "scale": {site: [size]},
    "flow": export_params(flow)}``: the latent vector is split by site name, so a twin guide
    whose sites are ordered differently can still take it (:func:`import_guide_params`).

    Args:
        guide: a fitted ``AutoIAFNormal``.
        params: unused (the parameters live in the param store); accepted so that both backends take
            the same call.
    """
    loc, scale = guide.loc.detach().cpu().numpy(), guide.scale.detach().cpu().numpy()
    sites, start = [], 0
    out: dict = {"sites": sites, "loc": {}, "scale": {}, "flow": export_params(guide.flow)}
    for site, value in guide._unpack_latent(guide.loc.detach()):
        size = int(value.numel())
        sites.append((site["name"], size))
        out["loc"][site["name"]] = loc[start : start + size]
        out["scale"][site["name"]] = scale[start : start + size]
        start += size
    return out


def import_guide_params(guide, state: dict, *args, **kwargs) -> dict:
    """Load :func:`export_guide_params` output (from either backend) into ``guide``'s parameters.

    ``*args, **kwargs`` are the model's, needed once to set the guide up. Returns the param
    store's ``{name: tensor}`` for the guide. The flow's weights are only meaningful for the same
    latent order, which is checked.

    Args:
        guide: an ``AutoIAFNormal`` of the same model (same latent sites and order).
        state: the output of ``export_guide_params`` of either backend.
        *args: the model's arguments (``**kwargs`` likewise), to set the guide up.
    """
    if guide.prototype_trace is None:
        guide._setup_prototype(*args, **kwargs)
    ours = [(site["name"], int(v.numel())) for site, v in guide._unpack_latent(guide.loc.detach())]
    if [tuple(s) for s in state["sites"]] != ours:
        raise ValueError(
            f"import_guide_params: latent sites {state['sites']} do not match this guide's {ours}; "
            "the flow's autoregressive order depends on it"
        )
    loc = np.concatenate([state["loc"][name] for name, _ in ours])
    scale = np.concatenate([state["scale"][name] for name, _ in ours])
    dtype = guide.loc.dtype
    with torch.no_grad():
        guide.loc = torch.tensor(loc, dtype=dtype)
        guide.scale = torch.tensor(scale, dtype=dtype)
        load_params(guide.flow, state["flow"])
    return {k: v for k, v in pyro.get_param_store().items() if k.startswith(guide._pyro_name)}
