"""Weights to and from the PyTorch twin: one flat dict of NumPy arrays, names shared."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .transforms import IAF

__all__ = ["export_params", "convert_flow", "flow_from_weights", "export_guide_params", "import_guide_params"]


def export_params(flow) -> dict[str, np.ndarray]:
    """Flat ``{"steps.<t>.<name>": array}`` of an IAF of either backend (masks excluded).

    Args:
        flow: an ``IAF`` of either backend.
    """
    if hasattr(flow, "state_dict"):  # PyTorch module: each step's weights by name
        return {
            f"steps.{t}.{k}": v.detach().cpu().numpy()
            for t, made in enumerate(flow.steps)
            for k, v in made.params.items()
        }
    return {f"steps.{t}.{k}": np.asarray(v) for t, step in enumerate(flow.params) for k, v in step.items()}


def convert_flow(flow) -> IAF:
    """A ``numpyro_iaf.IAF`` with the configuration and weights of ``flow`` (e.g. a ``pyro_iaf.IAF``).

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
    expected = {f"steps.{t}.{k}" for t, step in enumerate(ours.params) for k in step}
    missing = expected ^ set(weights)
    if missing:
        raise ValueError(f"convert_flow: parameter names differ between backends: {sorted(missing)}")
    params = tuple(
        {k: jnp.asarray(weights[f"steps.{t}.{k}"], dtype=v.dtype) for k, v in step.items()}
        for t, step in enumerate(ours.params)
    )
    return ours.with_params(params)


def export_guide_params(guide, params: dict | None = None) -> dict:
    """Backend-neutral state of a fitted ``AutoIAFNormal`` given its SVI ``params``.

    ``{"sites": [(name, size), ...] in latent order, "loc": {site: [size]}, "scale": {site: [size]},
    "flow": export_params(flow)}``: the latent vector is split by site name, so a twin guide
    whose sites are ordered differently can still take it (:func:`import_guide_params`).

    Args:
        guide: a fitted ``AutoIAFNormal``.
        params: the guide's SVI parameters, e.g. ``FitResult.params``.
    """
    p = guide.prefix
    loc, scale = np.asarray(params[f"{p}_loc"]), np.asarray(params[f"{p}_scale"])
    out: dict = {"sites": [], "loc": {}, "scale": {}}
    start = 0
    for name, value in guide._unpack_latent(jnp.asarray(loc)).items():
        size = int(np.size(value))
        out["sites"].append((name, size))
        out["loc"][name] = loc[start : start + size]
        out["scale"][name] = scale[start : start + size]
        start += size
    out["flow"] = export_params(guide._flow.with_params(params[f"{p}_flow"]))
    return out


def import_guide_params(guide, state: dict, *args, **kwargs) -> dict:
    """SVI ``params`` for ``guide`` from :func:`export_guide_params` output (either backend).

    ``*args, **kwargs`` are the model's, needed once to set the guide up. The flow's weights
    are only meaningful for the same latent order, which is checked.

    Args:
        guide: an ``AutoIAFNormal`` of the same model (same latent sites and order).
        state: the output of ``export_guide_params`` of either backend.
        *args: the model's arguments (``**kwargs`` likewise), to set the guide up.
    """
    import jax
    from numpyro import handlers

    if guide.prototype_trace is None:
        with handlers.block():
            handlers.seed(guide, jax.random.PRNGKey(0))(*args, **kwargs)
    ours = [(n, int(np.size(v))) for n, v in guide._unpack_latent(guide._init_latent).items()]
    if [tuple(s) for s in state["sites"]] != ours:
        raise ValueError(
            f"import_guide_params: latent sites {state['sites']} do not match this guide's {ours}; "
            "the flow's autoregressive order depends on it"
        )
    p = guide.prefix
    flow = flow_from_weights(guide._flow.config, state["flow"])
    return {
        f"{p}_loc": jnp.asarray(np.concatenate([state["loc"][n] for n, _ in ours])),
        f"{p}_scale": jnp.asarray(np.concatenate([state["scale"][n] for n, _ in ours])),
        f"{p}_flow": flow.params,
    }
