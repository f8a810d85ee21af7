"""Ordinal (cumulative-logit) regression with ordered cutpoints, simulated data.

    beta ~ N(0, 2)                     latent "beta", shape [F] (one event)
    first_cut ~ N(0, 5)                latent "first_cut", shape []
    gaps ~ HalfNormal(2)               latent "gaps", shape [K - 2], positive
    cutpoints = first_cut + (0, cumsum(gaps))            (ordered, shape [K - 1])
    y_n ~ OrderedLogistic(X_n beta, cutpoints)           observed, categories 0..K-1

The cumulative sum is ``steps @ gaps`` with ``steps [K-1, K-2]`` (``steps[i, j] = 1`` for
``j < i``), so the body uses only shared ops. Geometry: sparsely used outer categories leave
their gaps weakly pinned (log-gaps skewed toward the prior's mass at 0), and every cutpoint
shifts with ``first_cut`` (a strongly correlated ridge).
Data: ``X [N, F]`` standard normal, latent logistic noise, category counts unbalanced by
``CUTS`` (``default_rng(seed)``).
Reference: NUTS (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

BETA = (1.0, -0.5, 0.8, 0.0, 0.3)
CUTS = (-2.5, -0.5, 0.5, 3.0)


@lru_cache(maxsize=4)
def ordinal_data(num_obs: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X [N, F]`` (float64) and categories ``y [N]`` (int64 in 0..K-1)."""
    if num_obs < 2:
        raise ValueError(f"ordinal_regression: num_obs must be >= 2; got {num_obs}")
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((num_obs, len(BETA)))
    latent = X @ np.array(BETA) + rng.logistic(size=num_obs)
    return X, np.searchsorted(np.array(CUTS), latent).astype(np.int64)


def ordinal_steps(num_categories: int) -> np.ndarray:
    """``steps [K-1, K-2]``: ``cutpoints = first_cut + steps @ gaps``."""
    K = num_categories
    return (np.arange(K - 2)[None, :] < np.arange(K - 1)[:, None]).astype(np.float64)


def ordinal_regression_model(X, y, steps) -> None:
    """``X [N, F]``, ``y [N]`` integer categories, ``steps [K-1, K-2]`` from ``ordinal_steps``."""
    beta = pyro.sample("beta", dist.Normal(X[0] * 0.0, 2.0).to_event(1))
    first = pyro.sample("first_cut", dist.Normal(0.0, 5.0))
    gaps = pyro.sample("gaps", dist.HalfNormal(steps[0] * 0.0 + 2.0).to_event(1))
    cutpoints = first[..., None] + (steps @ gaps[..., None])[..., 0]
    predictor = (X @ beta[..., None])[..., 0]
    pyro.sample("y", dist.OrderedLogistic(predictor, cutpoints[..., None, :]).to_event(1), obs=y)


def ordinal_regression(num_obs: int = 100, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(X, y, steps)``; latent dim F + K - 1."""
    X, y = ordinal_data(int(num_obs), int(seed))
    K = len(CUTS) + 1
    sites = (("beta", (X.shape[1],)), ("first_cut", ()), ("gaps", (K - 2,)))
    config = {"num_obs": int(num_obs), "seed": int(seed)}
    digest = data_digest(X, y)
    ref = load_reference("ordinal_regression", config, digest)
    return build_spec("ordinal_regression", ordinal_regression_model, (X, y, ordinal_steps(K)), {},
                      sites, ref, config, digest)
