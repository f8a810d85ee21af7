"""Stochastic volatility (AR(1) log-variance, non-centered innovations), simulated returns.

    mu ~ N(0, 2)                     latent "mu", shape []       (mean log-variance)
    phi ~ Beta(20, 1.5)              latent "phi", shape [], in (0, 1) (unconstrained: logit)
    sigma ~ HalfNormal(1)            latent "sigma", shape [], positive
    z ~ N(0, I_T)                    latent "z", shape [T] (one event; standardized innovations)
    h_0 = mu + sigma z_0 / sqrt(1 - phi^2),  h_t = mu + phi (h_{t-1} - mu) + sigma z_t
    r_t ~ N(0, exp(h_t / 2))         observed returns, shape [T]

The recursion is written as ``h = mu + (causal * phi^lags) @ innovations`` (``lags[t, s] =
max(t - s, 0)``, ``causal = tril(ones)``) so the body uses only shared torch/jax.numpy ops.
Data: ``default_rng(seed)`` from the true parameters in ``TRUE``.
Reference: NUTS for the default arguments (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

TRUE = {"mu": -1.0, "phi": 0.95, "sigma": 0.25}


@lru_cache(maxsize=4)
def sv_data(T: int = 100, seed: int = 0) -> np.ndarray:
    """Simulated returns ``r [T]`` (float64)."""
    if T < 2:
        raise ValueError(f"stochastic_volatility: T must be >= 2; got {T}")
    rng = np.random.default_rng(seed)
    mu, phi, sigma = TRUE["mu"], TRUE["phi"], TRUE["sigma"]
    h = np.empty(T)
    h[0] = mu + sigma / np.sqrt(1 - phi**2) * rng.standard_normal()
    for t in range(1, T):
        h[t] = mu + phi * (h[t - 1] - mu) + sigma * rng.standard_normal()
    return np.exp(h / 2) * rng.standard_normal(T)


def sv_design(T: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``lags [T, T]``, ``causal [T, T]``, ``first [T]`` (one-hot at t = 0), float64."""
    t = np.arange(T)
    lags = np.maximum(t[:, None] - t[None, :], 0).astype(np.float64)
    return lags, np.tril(np.ones((T, T))), (t == 0).astype(np.float64)


def stochastic_volatility_model(returns, lags, causal, first) -> None:
    """``returns [T]`` observed; ``lags, causal [T, T]``, ``first [T]`` from ``sv_design``."""
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    phi = pyro.sample("phi", dist.Beta(20.0, 1.5))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    z = pyro.sample("z", dist.Normal(ops.zeros_like(returns), 1.0).to_event(1))
    phi_ = phi[..., None]
    init = 1.0 + first * (1.0 / ops.sqrt(1.0 - phi_**2) - 1.0)  # stationary start
    innovations = sigma[..., None] * init * z
    h = mu[..., None] + ((causal * phi_[..., None] ** lags) @ innovations[..., None])[..., 0]
    pyro.sample("returns", dist.Normal(0.0, ops.exp(h / 2)).to_event(1), obs=returns)


def stochastic_volatility(T: int = 100, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(returns, lags, causal, first)``; latent dim T + 3."""
    returns = sv_data(int(T), int(seed))
    sites = (("mu", ()), ("phi", ()), ("sigma", ()), ("z", (int(T),)))
    config = {"T": int(T), "seed": int(seed)}
    digest = data_digest(returns)
    ref = load_reference("stochastic_volatility", config, digest)
    return build_spec("stochastic_volatility", stochastic_volatility_model,
                      (returns, *sv_design(int(T))), {}, sites, ref, config, digest)
