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
Reference (exact up to quadrature, no file): given the two scales the model is linear-Gaussian,
so ``p(log scales | y)`` is evaluated on a ``GRID`` x ``GRID`` lattice of log scales (the
marginal likelihood in the eigenbasis of the observed block of ``B``), and ``locs`` given the
scales is Gaussian; mean, covariance and ``log_evidence`` are exact mixtures over the lattice,
quantiles come from ``NUM_EXACT_SAMPLES`` draws. (NUTS struggles here: funnels in both scales
gave R-hat 1.02 and hundreds of divergences even with a dense mass matrix.)
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, Reference, build_spec
from models.targets.funnel import QUANTILES

TRUE = {"innovation_scale": 0.1, "observation_scale": 0.15}
MISSING = range(10, 20)
PRIOR_SD = 2.0  # both scales ~ LogNormal(0, PRIOR_SD)
#: lattice of log scales for the reference (posterior sds of the log scales are ~0.5-0.7)
GRID = np.linspace(-10.0, 2.0, 241)
NUM_EXACT_SAMPLES = 50_000
MASS = 1 - 1e-7  # the lattice cells kept (largest first) hold this much posterior mass


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


def _walk_cov(T: int) -> np.ndarray:
    """``B [T, T]``, ``B[s, t] = min(s, t) + 1``: covariance of the walk with unit innovations."""
    t = np.arange(T)
    return np.minimum.outer(t, t) + 1.0


def log_marginal(log_innov: np.ndarray, log_obs: np.ndarray, T: int = 30, seed: int = 0):
    """``log p(y | scales)`` (locs integrated out) for arrays of log scales (broadcast)."""
    y, observed = brownian_data(T, seed)
    lam, U = np.linalg.eigh(_walk_cov(T)[np.ix_(observed, observed)])
    r2 = (U.T @ y) ** 2
    var = np.exp(2 * log_innov)[..., None] * lam + np.exp(2 * log_obs)[..., None]
    return -0.5 * (np.log(2 * np.pi * var) + r2 / var).sum(-1)


@lru_cache(maxsize=4)
def brownian_reference(T: int = 30, seed: int = 0) -> Reference:
    """Posterior over ``(log innovation_scale, locs [T], log observation_scale)``, by quadrature."""
    from scipy.special import logsumexp

    y, observed = brownian_data(T, seed)
    h = GRID[1] - GRID[0]
    li, lo = (a.ravel() for a in np.meshgrid(GRID, GRID, indexing="ij"))
    log_prior = -0.5 * (li**2 + lo**2) / PRIOR_SD**2 - np.log(2 * np.pi * PRIOR_SD**2)
    log_post = log_marginal(li, lo, T, seed) + log_prior
    log_evidence = float(logsumexp(log_post) + 2 * np.log(h))
    w = np.exp(log_post - log_post.max())
    order = np.argsort(w)[::-1]
    keep = order[: np.searchsorted(np.cumsum(w[order]) / w.sum(), MASS) + 1]
    w, li, lo = w[keep] / w[keep].sum(), li[keep], lo[keep]
    # locs | scales, y: precision B^-1 / innov^2 + H^T H / obs^2, H picks the observed times
    H = np.eye(T)[observed]
    a, b = np.exp(2 * li)[:, None, None], np.exp(2 * lo)[:, None, None]
    cov_c = np.linalg.inv(np.linalg.inv(_walk_cov(T)) / a + (H.T @ H) / b)
    cov_c = 0.5 * (cov_c + np.swapaxes(cov_c, -1, -2))
    mean_c = cov_c @ (H.T @ y) / b[:, :, 0]
    m = np.concatenate([li[:, None], mean_c, lo[:, None]], axis=1)  # [cells, T + 2]
    mean = w @ m
    second = np.einsum("c,ci,cj->ij", w, m, m)
    second[1:-1, 1:-1] += np.einsum("c,cij->ij", w, cov_c)
    cov = second - np.outer(mean, mean)
    cov[0, 0] += h**2 / 12  # within-cell spread of the lattice
    cov[-1, -1] += h**2 / 12
    rng = np.random.default_rng(seed)
    cell = rng.choice(len(w), NUM_EXACT_SAMPLES, p=w)
    eps = rng.standard_normal((NUM_EXACT_SAMPLES, T))
    chol = np.linalg.cholesky(cov_c)
    locs = mean_c[cell] + np.concatenate([np.einsum("nij,nj->ni", chol[c], e) for c, e in
                                          zip(np.array_split(cell, 10), np.array_split(eps, 10))])
    jitter = rng.uniform(-h / 2, h / 2, (NUM_EXACT_SAMPLES, 2))
    draws = np.concatenate([li[cell, None] + jitter[:, :1], locs, lo[cell, None] + jitter[:, 1:]], 1)
    return Reference(
        sites=(("innovation_scale", ()), ("locs", (T,)), ("observation_scale", ())),
        mean=mean,
        sd=np.sqrt(np.diag(cov)),
        cov=cov,
        quantiles={q: np.quantile(draws, q, axis=0) for q in QUANTILES},
        log_evidence=log_evidence,
        source="exact+sampling",
        info={"method": f"quadrature over a {len(GRID)}^2 lattice of log scales on "
                        f"[{GRID[0]}, {GRID[-1]}] ({len(w)} cells kept, mass {MASS}); "
                        f"quantiles from {NUM_EXACT_SAMPLES} draws, default_rng({seed})"},
    )


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
    ref = brownian_reference(T, int(seed))
    return build_spec("brownian_motion", brownian_motion_model,
                      (y, observed, np.tril(np.ones((T, T)))), {}, ref.sites, ref,
                      {"T": T, "seed": int(seed)})
