"""Banana (twisted Gaussian, Haario et al. 1999), 2-D, no data.

    x1 ~ N(0, sigma)                           latent site "x1", shape []
    x2 ~ N(b * (x1^2 - sigma^2), 1)            latent site "x2", shape []

Exact reference: mean 0, sd = (sigma, sqrt(1 + 2 b^2 sigma^4)), covariance diagonal
(Cov(x1, x2) = b E[x1^3] = 0), log_evidence 0; quantiles from exact sampling.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, pyro
from models.spec import ModelSpec, Reference, build_spec
from models.targets.funnel import NUM_EXACT_SAMPLES, QUANTILES


def banana_model(b: float = 0.1, sigma: float = 10.0) -> None:
    x1 = pyro.sample("x1", dist.Normal(0.0, sigma))
    pyro.sample("x2", dist.Normal(b * (x1**2 - sigma**2), 1.0))


def banana_sample(num: int, b: float = 0.1, sigma: float = 10.0, seed: int = 0) -> np.ndarray:
    """Exact draws ``[num, 2]`` of ``(x1, x2)``."""
    rng = np.random.default_rng(seed)
    x1 = sigma * rng.standard_normal(num)
    x2 = b * (x1**2 - sigma**2) + rng.standard_normal(num)
    return np.stack([x1, x2], axis=1)


@lru_cache(maxsize=8)
def banana_reference(b: float = 0.1, sigma: float = 10.0) -> Reference:
    sd = np.array([sigma, np.sqrt(1 + 2 * b**2 * sigma**4)])
    draws = banana_sample(NUM_EXACT_SAMPLES, b, sigma, seed=0)
    return Reference(
        sites=(("x1", ()), ("x2", ())),
        mean=np.zeros(2),
        sd=sd,
        cov=np.diag(sd**2),
        quantiles={q: np.quantile(draws, q, axis=0) for q in QUANTILES},
        log_evidence=0.0,
        source="exact+sampling",
        info={"quantiles": f"{NUM_EXACT_SAMPLES} exact draws, numpy default_rng(0)"},
    )


def banana(b: float = 0.1, sigma: float = 10.0) -> ModelSpec:
    """Spec for the current backend: ``model(b=b, sigma=sigma)``, latents ``x1 []``, ``x2 []``."""
    if not sigma > 0:
        raise ValueError(f"banana: sigma must be > 0; got {sigma}")
    ref = banana_reference(float(b), float(sigma))
    config = {"b": float(b), "sigma": float(sigma)}
    return build_spec("banana", banana_model, (), config, ref.sites, ref, config)
