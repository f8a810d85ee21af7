"""Gaussian-process classification with a *whitened* latent function, on scikit-learn's moons.

    amplitude ~ LogNormal(0, 1)        latent, shape [], positive
    lengthscale ~ LogNormal(0, 1)      latent, shape [], positive
    whitened ~ N(0, I_N)               latent "whitened", shape [N] (one event)
    f = amplitude * chol(C(lengthscale) + JITTER I) @ whitened
    y_n ~ Bernoulli(logits = f_n)      observed, shape [N]

``C[m, n] = exp(-|x_m - x_n|^2 / (2 lengthscale^2))`` over the inputs ``x [N, 2]``; the
Cholesky factor is computed in the body (``ops.linalg.cholesky``, torch and jax.numpy alike).
Geometry: the whitened coordinates are near-standard-normal far from the data, while the two
kernel hyperparameters couple to all of them (funnel in ``amplitude``, lengthscale-dependent
rotations); binary labels give skewed marginals.
Data: ``make_moons(N, noise=0.2, random_state=seed)``.
Reference: NUTS (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

JITTER = 1e-3


@lru_cache(maxsize=4)
def moons_data(num_obs: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardized inputs ``x [N, 2]`` and labels ``y [N]`` in {0, 1} (float64)."""
    from sklearn.datasets import make_moons

    if num_obs < 4:
        raise ValueError(f"gp_classification: num_obs must be >= 4; got {num_obs}")
    x, y = make_moons(num_obs, noise=0.2, random_state=seed)
    return (x - x.mean(0)) / x.std(0), y.astype(np.float64)


def gp_classification_model(sq_dist, eye, y) -> None:
    """``sq_dist [N, N]`` squared input distances, ``eye [N, N]`` identity, ``y [N]`` labels."""
    amplitude = pyro.sample("amplitude", dist.LogNormal(0.0, 1.0))
    lengthscale = pyro.sample("lengthscale", dist.LogNormal(0.0, 1.0))
    whitened = pyro.sample("whitened", dist.Normal(ops.zeros_like(y), 1.0).to_event(1))
    ell2 = lengthscale[..., None, None] ** 2
    L = ops.linalg.cholesky(ops.exp(-0.5 * sq_dist / ell2) + JITTER * eye)
    f = amplitude[..., None] * (L @ whitened[..., None])[..., 0]
    pyro.sample("y", dist.Bernoulli(logits=f).to_event(1), obs=y)


def gp_classification(num_obs: int = 50, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(sq_dist, eye, y)``; latent dim N + 2."""
    N = int(num_obs)
    x, y = moons_data(N, int(seed))
    sq_dist = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    sites = (("amplitude", ()), ("lengthscale", ()), ("whitened", (N,)))
    config = {"num_obs": N, "seed": int(seed)}
    digest = data_digest(x, y)
    ref = load_reference("gp_classification", config, digest)
    return build_spec("gp_classification", gp_classification_model, (sq_dist, np.eye(N), y), {},
                      sites, ref, config, digest)
