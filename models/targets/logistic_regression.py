"""Bayesian logistic regression on scikit-learn's breast-cancer data (569 rows, 30 features).

    alpha ~ N(0, 1)                    latent "alpha", shape []   (intercept)
    beta ~ N(0, I_F)                   latent "beta", shape [F]   (one event)
    y_n ~ Bernoulli(logits = alpha + X_n beta)   observed, plate "data"

``X [N, F]``: the first ``num_features`` columns, standardized (mean 0, sd 1 over all rows).
Reference: NUTS for the default ``num_features`` (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

NUM_FEATURES = 10


@lru_cache(maxsize=4)
def breast_cancer_data(num_features: int = NUM_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """``X [569, F]`` standardized and ``y [569]`` in {0, 1} (float64)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    if not 1 <= num_features <= data.data.shape[1]:
        raise ValueError(f"logistic_regression: num_features must be in 1..30; got {num_features}")
    X = data.data[:, :num_features]
    X = (X - X.mean(0)) / X.std(0)
    return X, data.target.astype(np.float64)


def logistic_regression_model(X, y) -> None:
    """``X [N, F]`` features, ``y [N]`` labels in {0, 1}."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, 1.0))
    beta = pyro.sample("beta", dist.Normal(ops.zeros_like(X[0]), 1.0).to_event(1))
    logits = alpha + (X * beta).sum(-1)  # [..., N]; broadcasts under a particle plate at dim -2
    with pyro.plate("data", X.shape[0]):
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=y)


def logistic_regression(num_features: int = NUM_FEATURES) -> ModelSpec:
    """Spec for the current backend: ``model(X, y)``, latents ``alpha []``, ``beta [F]``."""
    X, y = breast_cancer_data(int(num_features))
    sites = (("alpha", ()), ("beta", (int(num_features),)))
    config = {"num_features": int(num_features)}
    digest = data_digest(X, y)
    ref = load_reference("logistic_regression", config, digest)
    return build_spec("logistic_regression", logistic_regression_model, (X, y), {}, sites, ref,
                      config, digest)
