"""Sparse linear regression with a regularized horseshoe prior (non-centered), simulated data.

    lambdas ~ HalfCauchy(1)            latent "lambdas", shape [F], positive (local scales)
    noise ~ HalfNormal(1)              latent "noise", shape [], positive
    tau ~ HalfCauchy(TAU0)             latent "tau", shape [], positive (global scale)
    z ~ N(0, I_F)                      latent "z", shape [F] (one event)
    beta = tau * lambda_tilde * z,     lambda_tilde^2 = SLAB^2 lambda^2 / (SLAB^2 + tau^2 lambda^2)
    y_n ~ N(X_n beta, noise)           observed, shape [N]

The fixed slab ``SLAB`` (Piironen & Vehtari 2017, arXiv:1707.01694) keeps large coefficients
from being unregularized, which also tames the funnels NUTS would diverge in.
Geometry: heavy-tailed (Cauchy) log-scales, funnels between ``tau``, each ``lambda_f`` and
``z_f``, and sparse coefficients whose posteriors are bimodal-ish spikes near 0 with slabs.
Data: ``X [N, F]`` standard normal, ``NONZERO`` true coefficients, the rest 0 (``default_rng``).
Reference: NUTS (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

NONZERO = (2.0, -1.5, 1.0)
NOISE = 0.5
TAU0 = 0.1
SLAB = 3.0


@lru_cache(maxsize=4)
def horseshoe_data(num_features: int = 25, num_obs: int = 40,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X [N, F]`` and ``y [N]`` (float64)."""
    if num_features < len(NONZERO) or num_obs < 2:
        raise ValueError(f"horseshoe_regression: need num_features >= {len(NONZERO)} and "
                         f"num_obs >= 2; got {num_features}, {num_obs}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((num_obs, num_features))
    beta = np.zeros(num_features)
    beta[: len(NONZERO)] = NONZERO
    return X, X @ beta + NOISE * rng.standard_normal(num_obs)


def horseshoe_regression_model(X, y) -> None:
    """``X [N, F]`` features, ``y [N]`` targets."""
    zeros = ops.zeros_like(X[0])
    lambdas = pyro.sample("lambdas", dist.HalfCauchy(zeros + 1.0).to_event(1))
    noise = pyro.sample("noise", dist.HalfNormal(1.0))
    tau = pyro.sample("tau", dist.HalfCauchy(TAU0))
    z = pyro.sample("z", dist.Normal(zeros, 1.0).to_event(1))
    tau_ = tau[..., None]
    lambda_tilde = SLAB * lambdas / ops.sqrt(SLAB**2 + tau_**2 * lambdas**2)
    beta = tau_ * lambda_tilde * z
    mean = (X @ beta[..., None])[..., 0]
    pyro.sample("y", dist.Normal(mean, noise[..., None]).to_event(1), obs=y)


def horseshoe_regression(num_features: int = 25, num_obs: int = 40, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(X, y)``; latent dim 2 F + 2."""
    F = int(num_features)
    X, y = horseshoe_data(F, int(num_obs), int(seed))
    sites = (("lambdas", (F,)), ("noise", ()), ("tau", ()), ("z", (F,)))
    config = {"num_features": F, "num_obs": int(num_obs), "seed": int(seed)}
    digest = data_digest(X, y)
    ref = load_reference("horseshoe_regression", config, digest)
    return build_spec("horseshoe_regression", horseshoe_regression_model, (X, y), {}, sites, ref,
                      config, digest)
