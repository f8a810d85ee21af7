"""Brownian motion with unknown scales and missing middle observations (centered path).

    innovation_scale ~ LogNormal(0, 2)        latent, shape [], positive
    locs ~ MVN(0, innovation_scale^2 B)       latent "locs", shape [T] (one event)
    observation_scale ~ LogNormal(0, 2)       latent, shape [], positive
    y_t ~ N(locs_t, observation_scale), t in observed   observed, shape [T_obs]

``B[s, t] = min(s, t) + 1`` is the random-walk covariance ``x_0 ~ N(0, s)``, ``x_t ~ N(x_{t-1},
s)``; its Cholesky factor is ``tril(ones)``, so ``scale_tril = innovation_scale * tril(ones)``.
Observations at t = 10..19 are missing (as in Inference Gym's
``BrownianMotionUnknownScalesMissingMiddleObservations``, D = 32): the path there is pinned only
by its neighbours, and both scales couple to every location (funnels).
Data: one draw at ``TRUE`` (``default_rng(seed)``).
Reference: NUTS (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

TRUE = {"innovation_scale": 0.1, "observation_scale": 0.15}
MISSING = range(10, 20)


@lru_cache(maxsize=4)
def brownian_data(T: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Observed ``y [T_obs]`` (float64) and their time indices ``observed [T_obs]`` (int64)."""
    if T < 21:
        raise ValueError(f"brownian_motion: T must be >= 21 (t = 10..19 are missing); got {T}")
    rng = np.random.default_rng(seed)
    locs = np.cumsum(TRUE["innovation_scale"] * rng.standard_normal(T))
    observed = np.array([t for t in range(T) if t not in MISSING], np.int64)
    y = locs[observed] + TRUE["observation_scale"] * rng.standard_normal(len(observed))
    return y, observed


def brownian_motion_model(y, observed, walk) -> None:
    """``y [T_obs]`` at integer times ``observed [T_obs]``; ``walk [T, T]`` = tril(ones)."""
    s = pyro.sample("innovation_scale", dist.LogNormal(0.0, 2.0))
    loc = ops.zeros_like(walk[0])
    locs = pyro.sample("locs", dist.MultivariateNormal(loc, scale_tril=s[..., None, None] * walk))
    obs_scale = pyro.sample("observation_scale", dist.LogNormal(0.0, 2.0))
    pyro.sample("y", dist.Normal(locs[..., observed], obs_scale[..., None]).to_event(1), obs=y)


def brownian_motion(T: int = 30, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(y, observed, walk)``; latent dim T + 2."""
    T = int(T)
    y, observed = brownian_data(T, int(seed))
    sites = (("innovation_scale", ()), ("locs", (T,)), ("observation_scale", ()))
    config = {"T": T, "seed": int(seed)}
    digest = data_digest(y, observed)
    ref = load_reference("brownian_motion", config, digest)
    return build_spec("brownian_motion", brownian_motion_model,
                      (y, observed, np.tril(np.ones((T, T)))), {}, sites, ref, config, digest)
