"""A valid start point for an ``AutoContinuous`` guide: finite log density and gradient.

Pyro's autoguides start wherever ``init_loc_fn`` says, even where the model's log density or its
gradient is NaN (a density written with ``torch.linalg.norm(x)`` and started at ``x = 0``); the
first SVI step then fails. NumPyro's guides and NUTS retry from ``init_to_uniform`` instead, and
so do ours, in both backends.
"""

from __future__ import annotations

import warnings

import torch
from pyro import poutine
from torch.distributions import biject_to

__all__ = ["MAX_TRIES", "UNIFORM_RADIUS", "unconstrained_log_density", "valid_start"]

#: Random starts tried after ``init_loc_fn``'s point fails (NumPyro's ``find_valid_initial_params``: 100).
MAX_TRIES = 100
#: They are drawn uniformly from ``(-radius, radius)`` in the unconstrained space (``init_to_uniform``).
UNIFORM_RADIUS = 2.0


def unconstrained_log_density(guide, latent: torch.Tensor, args: tuple, kwargs: dict):
    """``(log p(x, T(latent)) + log|det dT|, gradient [D])`` at the flat unconstrained ``latent [D]``;
    raises what the model raises (e.g. a validation error outside a support)."""
    latent = latent.detach().clone().requires_grad_()
    values, log_jac = {}, latent.new_zeros(())
    for site, unconstrained in guide._unpack_latent(latent):
        transform = biject_to(site["fn"].support)
        value = transform(unconstrained)
        values[site["name"]] = value
        log_jac = log_jac + transform.log_abs_det_jacobian(unconstrained, value).sum()
    with torch.enable_grad(), torch.random.fork_rng(), poutine.block():
        trace = poutine.trace(poutine.condition(guide.model, values)).get_trace(*args, **kwargs)
        log_density = trace.log_prob_sum() + log_jac
        (grad,) = torch.autograd.grad(log_density, latent, allow_unused=True)
    grad = torch.zeros_like(latent) if grad is None else grad
    return log_density.detach(), grad


def _bad_sites(guide, grad: torch.Tensor) -> list[str]:
    return [site["name"] for site, g in guide._unpack_latent(grad) if not torch.isfinite(g).all()]


def _problem(guide, latent: torch.Tensor, args: tuple, kwargs: dict) -> str | None:
    """Why ``latent`` is not a valid start (None if it is)."""
    try:
        log_density, grad = unconstrained_log_density(guide, latent, args, kwargs)
    except (ValueError, RuntimeError) as error:  # e.g. a covariance that is not positive definite
        return f"the model raised {type(error).__name__}: {str(error).splitlines()[0][:200]}"
    if not torch.isfinite(log_density):
        return f"the log density is {log_density.item()}"
    bad = _bad_sites(guide, grad)
    if bad:
        return f"the gradient is not finite at site(s) {', '.join(map(repr, bad))}"
    return None


def valid_start(guide, init_loc: torch.Tensor, args: tuple, kwargs: dict) -> torch.Tensor:
    """``init_loc [D]`` if the model's log density and its gradient are finite there; else, with a
    warning, the first of :data:`MAX_TRIES` uniform draws in ``(-2, 2)^D`` (unconstrained) that is
    valid, as NumPyro's ``init_to_uniform`` retries. Raises ``ValueError`` if none is."""
    problem = _problem(guide, init_loc, args, kwargs)
    if problem is None:
        return init_loc
    name = type(guide).__name__
    for _ in range(MAX_TRIES):  # torch's global stream, as Pyro's init_to_uniform (pyro.set_rng_seed)
        candidate = (2 * torch.rand_like(init_loc) - 1) * UNIFORM_RADIUS
        if _problem(guide, candidate, args, kwargs) is None:
            warnings.warn(
                f"{name}: at the start point from init_loc_fn {problem}; starting instead from a "
                f"uniform draw in (-{UNIFORM_RADIUS:g}, {UNIFORM_RADIUS:g}) of the unconstrained "
                "space, as NumPyro's guides and NUTS retry (init_to_uniform). Pass another "
                "init_loc_fn to choose the start.",
                UserWarning,
                stacklevel=4,
            )
            return candidate
    raise ValueError(
        f"{name}: at the start point from init_loc_fn {problem}, and no valid point was found in "
        f"{MAX_TRIES} uniform draws in (-{UNIFORM_RADIUS:g}, {UNIFORM_RADIUS:g}) of the "
        "unconstrained space. Check that the model's log density is finite and differentiable "
        "somewhere near its prior, or pass init_loc_fn=init_to_value(values=...) with a valid point."
    )
