"""Hierarchical logistic regression with varying intercepts and slopes (centered), simulated.

    mu ~ N(0, 2)                       latent "mu", shape [K] (one event; population means)
    sigma ~ HalfNormal(1)              latent "sigma", shape [K], positive (population sds)
    theta_j ~ N(mu, sigma), j < J      latent "theta", shape [J, K] (plate "groups", one event)
    y_n ~ Bernoulli(logits = X_n . theta[g_n])   observed, shape [N]

``X [N, K]``: a column of ones (intercept) and K - 1 standard-normal covariates.
Geometry: centered hierarchy, so every group's coefficients sit in a funnel with ``sigma``;
groups with few rows are barely pinned by their binary labels (skewed marginals). D = J K + 2 K.
Data: ``default_rng(seed)``, group sizes from a Dirichlet, true parameters in ``TRUE``.
Reference: NUTS, ``theta`` sampled non-centered (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

TRUE = {"mu": (-0.5, 1.0, -0.8), "sigma": (0.8, 0.5, 0.3)}


@lru_cache(maxsize=4)
def hier_logistic_data(num_groups: int = 32, num_obs: int = 400,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``X [N, K]`` (float64), ``group [N]`` (int64 in 0..J-1), ``y [N]`` in {0, 1}."""
    if num_groups < 1 or num_obs < num_groups:
        raise ValueError(f"hierarchical_logistic: need 1 <= num_groups <= num_obs; "
                         f"got {num_groups}, {num_obs}")
    rng = np.random.default_rng(seed)
    mu, sigma = np.array(TRUE["mu"]), np.array(TRUE["sigma"])
    K = len(mu)
    group = np.concatenate([np.arange(num_groups),
                            rng.choice(num_groups, num_obs - num_groups,
                                       p=rng.dirichlet(np.full(num_groups, 1.0)))])
    X = np.concatenate([np.ones((num_obs, 1)), rng.standard_normal((num_obs, K - 1))], axis=1)
    theta = mu + sigma * rng.standard_normal((num_groups, K))
    logits = (X * theta[group]).sum(-1)
    return X, group.astype(np.int64), (rng.random(num_obs) < 1 / (1 + np.exp(-logits))) * 1.0


def hierarchical_logistic_model(X, group, y, num_groups: int) -> None:
    """``X [N, K]``, ``group [N]`` (integer), ``y [N]`` labels; ``num_groups`` J."""
    zeros = ops.zeros_like(X[0])
    mu = pyro.sample("mu", dist.Normal(zeros, 2.0).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(zeros + 1.0).to_event(1))
    # written to broadcast over Pyro's vectorized particles (mu [P, 1, K], theta [P, J, K])
    with pyro.plate("groups", num_groups):
        theta = pyro.sample("theta", dist.Normal(mu, sigma).to_event(1))
    logits = (X * theta[..., group, :]).sum(-1)
    with pyro.plate("obs", y.shape[-1]):
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def hierarchical_logistic(num_groups: int = 32, num_obs: int = 400, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(X, group, y, num_groups=J)``; latent dim (J + 2) K."""
    J = int(num_groups)
    X, group, y = hier_logistic_data(J, int(num_obs), int(seed))
    K = X.shape[1]
    sites = (("mu", (K,)), ("sigma", (K,)), ("theta", (J, K)))
    config = {"num_groups": J, "num_obs": int(num_obs), "seed": int(seed)}
    digest = data_digest(X, group, y)
    ref = load_reference("hierarchical_logistic", config, digest)
    return build_spec("hierarchical_logistic", hierarchical_logistic_model, (X, group, y),
                      {"num_groups": J}, sites, ref, config, digest)
