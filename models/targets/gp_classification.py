"""Gaussian-process classification with a *whitened* latent function, on scikit-learn's moons.

    amplitude ~ LogNormal(0, 1)        latent, shape [], positive
    whitened ~ N(0, I_N)               latent "whitened", shape [N] (one event)
    f = amplitude * L @ whitened,      L = chol(C + JITTER I)
    y_n ~ Bernoulli(logits = f_n)      observed, shape [N]

``C[m, n] = exp(-|x_m - x_n|^2 / (2 LENGTHSCALE^2))`` over the standardized inputs ``x [N, 2]``
(fixed lengthscale, so ``L`` is data). Geometry: ``amplitude`` multiplies every coordinate of
``f``, so the posterior over ``(log amplitude, whitened)`` is a curved ridge (large amplitude
with small whitened values and vice versa), the data-pinned directions of ``whitened`` are
rotated by ``L``, and binary labels give skewed marginals; the whitened directions the data do
not reach stay standard normal.
Data: ``make_moons(N, noise=0.2, random_state=seed)``.
Reference: NUTS (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

LENGTHSCALE = 1.0
JITTER = 1e-4


@lru_cache(maxsize=4)
def moons_data(num_obs: int = 50, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Standardized inputs ``x [N, 2]`` and labels ``y [N]`` in {0, 1} (float64)."""
    from sklearn.datasets import make_moons

    if num_obs < 4:
        raise ValueError(f"gp_classification: num_obs must be >= 4; got {num_obs}")
    x, y = make_moons(num_obs, noise=0.2, random_state=seed)
    return (x - x.mean(0)) / x.std(0), y.astype(np.float64)


def gp_cholesky(x: np.ndarray) -> np.ndarray:
    """``L [N, N]``: Cholesky factor of the squared-exponential correlation of ``x [N, 2]``."""
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    return np.linalg.cholesky(np.exp(-0.5 * d2 / LENGTHSCALE**2) + JITTER * np.eye(len(x)))


def gp_classification_model(L, y) -> None:
    """``L [N, N]`` kernel Cholesky factor, ``y [N]`` labels in {0, 1}."""
    amplitude = pyro.sample("amplitude", dist.LogNormal(0.0, 1.0))
    whitened = pyro.sample("whitened", dist.Normal(ops.zeros_like(y), 1.0).to_event(1))
    f = amplitude[..., None] * (L @ whitened[..., None])[..., 0]
    pyro.sample("y", dist.Bernoulli(logits=f).to_event(1), obs=y)


def gp_classification(num_obs: int = 50, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(L, y)``; latent dim N + 1."""
    N = int(num_obs)
    x, y = moons_data(N, int(seed))
    sites = (("amplitude", ()), ("whitened", (N,)))
    config = {"num_obs": N, "seed": int(seed)}
    digest = data_digest(x, y)
    ref = load_reference("gp_classification", config, digest)
    return build_spec("gp_classification", gp_classification_model, (gp_cholesky(x), y), {},
                      sites, ref, config, digest)
