"""Neal's funnel in D dimensions (no data; the "posterior" is the prior itself).

    v ~ N(0, 3)                        latent site "v", shape []
    x_i ~ N(0, exp(v / 2)), i < D - 1  latent site "x", shape [D - 1] (one event)

Exact reference: mean 0, sd(v) = 3, sd(x_i) = exp(9 / 4) (Var x_i = E[exp v] = exp(9 / 2)),
diagonal covariance, log_evidence 0; quantiles from exact sampling (``default_rng(seed)``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, Reference, build_spec

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
NUM_EXACT_SAMPLES = 200_000


def funnel_model(zeros) -> None:
    """``zeros [D - 1]`` fixes the dimension (and dtype) of ``x``."""
    v = pyro.sample("v", dist.Normal(0.0, 3.0))
    pyro.sample("x", dist.Normal(zeros, ops.exp(v / 2)[..., None]).to_event(1))


def funnel_sample(D: int, num: int, seed: int = 0) -> np.ndarray:
    """Exact draws ``[num, D]`` of the flat latent ``(v, x_1 .. x_{D-1})``."""
    rng = np.random.default_rng(seed)
    v = 3.0 * rng.standard_normal(num)
    x = np.exp(v / 2)[:, None] * rng.standard_normal((num, D - 1))
    return np.concatenate([v[:, None], x], axis=1)


@lru_cache(maxsize=8)
def funnel_reference(D: int = 10) -> Reference:
    if D < 2:
        raise ValueError(f"funnel: D must be >= 2 (v plus at least one x); got {D}")
    sd = np.full(D, np.exp(9 / 4))
    sd[0] = 3.0
    draws = funnel_sample(D, NUM_EXACT_SAMPLES, seed=0)
    return Reference(
        sites=(("v", ()), ("x", (D - 1,))),
        mean=np.zeros(D),
        sd=sd,
        cov=np.diag(sd**2),
        quantiles={q: np.quantile(draws, q, axis=0) for q in QUANTILES},
        log_evidence=0.0,
        source="exact+sampling",
        info={"quantiles": f"{NUM_EXACT_SAMPLES} exact draws, numpy default_rng(0)"},
    )


def funnel(D: int = 10) -> ModelSpec:
    """Spec for the current backend: ``model(zeros)``, latents ``v []``, ``x [D - 1]``."""
    ref = funnel_reference(int(D))
    return build_spec(
        "funnel", funnel_model, (np.zeros(D - 1),), {}, ref.sites, ref, {"D": int(D)}
    )
