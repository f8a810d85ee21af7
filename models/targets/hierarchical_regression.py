"""Hierarchical linear regression with group intercepts (radon-like, simulated data).

    intercept_loc ~ N(0, 5)                      latent, shape []
    intercept_scale ~ HalfNormal(2)              latent, shape [], positive
    intercepts_j ~ N(intercept_loc, intercept_scale), j < J   latent, shape [J] (plate "groups")
    noise_scale ~ HalfNormal(2)                  latent, shape [], positive
    slope ~ N(0, 5)                              latent, shape []
    y_n ~ N(intercepts[g_n] + slope * x_n, noise_scale)       observed, plate "data"

Data (``default_rng(seed)``): group sizes from a Dirichlet (some groups have 1-3 rows, so
partial pooling matters), ``x_n`` in {0, 1} ("floor"), true parameters in ``TRUE``.
Reference: NUTS for the default arguments (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

TRUE = {"intercept_loc": 1.5, "intercept_scale": 0.6, "slope": -0.7, "noise_scale": 0.8}


@lru_cache(maxsize=4)
def hierarchical_data(
    num_groups: int = 12, num_obs: int = 150, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x [N]`` (float64 in {0, 1}), ``group [N]`` (int64 in 0..J-1), ``y [N]`` (float64)."""
    if num_groups < 1 or num_obs < num_groups:
        raise ValueError(f"hierarchical_regression: need 1 <= num_groups <= num_obs; "
                         f"got {num_groups}, {num_obs}")
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(num_groups, 0.7))
    group = np.concatenate([np.arange(num_groups),  # every group has at least one row
                            rng.choice(num_groups, num_obs - num_groups, p=weights)])
    x = (rng.random(num_obs) < 0.3).astype(np.float64)
    a = TRUE["intercept_loc"] + TRUE["intercept_scale"] * rng.standard_normal(num_groups)
    y = a[group] + TRUE["slope"] * x + TRUE["noise_scale"] * rng.standard_normal(num_obs)
    return x, group.astype(np.int64), y


def hierarchical_regression_model(x, group, y, num_groups: int) -> None:
    """``x [N]``, ``group [N]`` (integer), ``y [N]``; ``num_groups`` J."""
    loc = pyro.sample("intercept_loc", dist.Normal(0.0, 5.0))
    scale = pyro.sample("intercept_scale", dist.HalfNormal(2.0))
    with pyro.plate("groups", num_groups):
        a = pyro.sample("intercepts", dist.Normal(loc, scale))
    noise = pyro.sample("noise_scale", dist.HalfNormal(2.0))
    slope = pyro.sample("slope", dist.Normal(0.0, 5.0))
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Normal(a[..., group] + slope * x, noise), obs=y)


def hierarchical_regression(num_groups: int = 12, num_obs: int = 150, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(x, group, y, num_groups=J)``; latent dim J + 4."""
    J = int(num_groups)
    x, group, y = hierarchical_data(J, int(num_obs), int(seed))
    sites = (("intercept_loc", ()), ("intercept_scale", ()), ("intercepts", (J,)),
             ("noise_scale", ()), ("slope", ()))
    config = {"num_groups": J, "num_obs": int(num_obs), "seed": int(seed)}
    digest = data_digest(x, group, y)
    ref = load_reference("hierarchical_regression", config, digest)
    return build_spec("hierarchical_regression", hierarchical_regression_model, (x, group, y),
                      {"num_groups": J}, sites, ref, config, digest)
