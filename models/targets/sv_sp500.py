"""Stochastic volatility of 100 days of S&P 500 returns, centred (the Inference Gym's
``StochasticVolatilitySP500Small``; Tran, Hoffman et al., data shipped by ``inference-gym``).

    mu ~ Cauchy(0, 5)                  latent "mu": the mean log volatility
    phi ~ Beta(20, 1.5)                latent "phi": the persistence of volatility is 2 phi - 1
    sigma ~ HalfCauchy(2)              latent "sigma": the white-noise shock scale, positive
    p = 2 phi - 1, in (-1, 1)
    x ~ AR(1): x_0 ~ N(mu, sigma / sqrt(1 - p^2)), x_t ~ N(mu + p (x_{t-1} - mu), sigma)
                                       latent "x": the log volatility, shape [T], centred
    r_t ~ N(0, exp(x_t / 2))           observed: daily changes of the closing price (USD), the
                                       last T, minus their mean

(The Inference Gym's site names are mean_log_volatility, persistence_of_volatility,
white_noise_shock_scale, log_volatility; ours sort in execution order, as ``ModelSpec`` needs.)
The AR(1) prior is the Gaussian it is, ``MultivariateNormal(mu, scale_tril=L)`` with ``L[t, j] =
sigma p^(t-j) c_j`` (``c_0 = 1 / sqrt(1 - p^2)``, else 1), so the body uses only shared
torch/jax.numpy ops. (``p`` is written as ``2 phi - 1`` rather than an affine transform of the
Beta: the supports both frameworks give that transformed distribution are the whole real line.)
Unlike ``stochastic_volatility`` (simulated, non-centred) this is real data with a centred,
strongly correlated posterior. Reference: NUTS (``make_references``); the
Inference Gym's own ground truth (50,000 Stan draws) is in ``inference_gym`` for comparison.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference
from models.targets.stochastic_volatility import sv_design


@lru_cache(maxsize=4)
def sp500_returns(T: int = 100) -> np.ndarray:
    """The last ``T`` daily changes of the S&P 500 close (6/2010-6/2020), centred: ``[T]``."""
    from inference_gym.internal.datasets import sp500_closing_prices

    returns = np.diff(np.asarray(sp500_closing_prices.CLOSING_PRICES, np.float64))
    if not 2 <= T <= len(returns):
        raise ValueError(f"sv_sp500: T must be in [2, {len(returns)}]; got {T}")
    returns = returns[-T:]
    return returns - returns.mean()


def sv_sp500_model(returns, lags, causal, first) -> None:
    """``returns [T]`` observed; ``lags, causal [T, T]``, ``first [T]`` from ``sv_design``."""
    mu = pyro.sample("mu", dist.Cauchy(0.0, 5.0))
    phi = pyro.sample("phi", dist.Beta(20.0, 1.5))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.0))
    p = 2.0 * phi[..., None, None] - 1.0  # the persistence, in (-1, 1)
    # scales column 0; + 1e-12: a float32 prior draw of phi can round to 1
    stationary = 1.0 + first * (1.0 / ops.sqrt(1.0 - p**2 + 1e-12) - 1.0)
    scale_tril = sigma[..., None, None] * causal * p**lags * stationary
    loc = mu[..., None] * ops.ones_like(returns)
    x = pyro.sample("x", dist.MultivariateNormal(loc, scale_tril=scale_tril))
    pyro.sample("returns", dist.Normal(0.0, ops.exp(x / 2)).to_event(1), obs=returns)


def sv_sp500(T: int = 100) -> ModelSpec:
    """Spec for the current backend: ``model(returns, lags, causal, first)``; latent dim T + 3."""
    returns = sp500_returns(int(T))
    sites = (("mu", ()), ("phi", ()), ("sigma", ()), ("x", (int(T),)))
    config = {"T": int(T)}
    digest = data_digest(returns)
    ref = load_reference("sv_sp500", config, digest)
    return build_spec("sv_sp500", sv_sp500_model, (returns, *sv_design(int(T))), {}, sites, ref,
                      config, digest)
