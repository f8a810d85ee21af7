"""Linear-Gaussian model with exact evidence and posterior.

    x ~ N(0, I_D)              latent site "x", shape [D] (one event)
    y ~ N(A x, I_D)            observed, A = scale * tril(ones(D, D)), so A x = scale * cumsum(x)

    p(y)     = N(y; 0, I + A A^T)
    p(x | y) = N(x; S A^T y, S),   S = (I + A^T A)^{-1}

``y`` is one prior-predictive draw with ``np.random.default_rng(0)`` (x first, then the noise).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.linalg as sla

from models.api import dist, ops, pyro
from models.spec import ModelSpec, Reference, build_spec


def linear_gaussian_model(y, scale: float = 0.1) -> None:
    """``y [D]`` observed; latent ``x [D]``. ``A x`` is computed as ``scale * cumsum(x)``."""
    x = pyro.sample("x", dist.Normal(ops.zeros_like(y), 1.0).to_event(1))
    pyro.sample("y", dist.Normal(scale * ops.cumsum(x, -1), 1.0).to_event(1), obs=y)


def linear_gaussian_matrix(D: int, scale: float = 0.1) -> np.ndarray:
    """``A [D, D] = scale * tril(ones)`` (float64)."""
    return scale * np.tril(np.ones((D, D)))


def linear_gaussian_data(D: int, scale: float = 0.1) -> np.ndarray:
    """``y [D]`` (float64): one draw from the prior predictive with ``default_rng(0)``."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(D)
    return scale * np.cumsum(x) + rng.standard_normal(D)


def _check_args(D: int, scale: float) -> None:
    if not isinstance(D, int | np.integer) or D < 1:
        raise ValueError(f"linear_gaussian: D must be a positive int; got {D!r}")
    if not np.isfinite(scale):
        raise ValueError(f"linear_gaussian: scale must be finite; got {scale!r}")


@lru_cache(maxsize=8)
def linear_gaussian_reference(D: int, scale: float = 0.1) -> Reference:
    """Exact ``log_evidence``, posterior ``mean [D]``, ``cov [D, D]``, ``sd [D]`` (float64).

    Arrays are read-only (the result is cached); O(D^3), about 0.1 s at D = 1000.
    """
    _check_args(D, scale)
    A = linear_gaussian_matrix(D, scale)
    y = linear_gaussian_data(D, scale)
    eye = np.eye(D)
    # evidence: y ~ N(0, I + A A^T)
    L = np.linalg.cholesky(eye + A @ A.T)
    w = sla.solve_triangular(L, y, lower=True)
    log_evidence = -0.5 * (w @ w) - np.log(np.diag(L)).sum() - 0.5 * D * np.log(2 * np.pi)
    # posterior: precision I + A^T A
    cho = sla.cho_factor(eye + A.T @ A, lower=True)
    cov = sla.cho_solve(cho, eye)
    cov = 0.5 * (cov + cov.T)
    mean = cov @ (A.T @ y)
    sd = np.sqrt(np.diag(cov))
    for a in (mean, cov, sd):
        a.setflags(write=False)
    return Reference(
        sites=(("x", (D,)),),
        mean=mean,
        sd=sd,
        cov=cov,
        log_evidence=float(log_evidence),
        source="exact",
        info={"y": "default_rng(0): x ~ N(0, I), y = A x + N(0, I)"},
    )


def linear_gaussian(D: int = 10, scale: float = 0.1) -> ModelSpec:
    """Spec for the current backend: ``model(y, scale=scale)``, latent ``x [D]``, exact ref."""
    _check_args(D, scale)
    ref = linear_gaussian_reference(int(D), float(scale))
    return build_spec(
        "linear_gaussian",
        linear_gaussian_model,
        (linear_gaussian_data(int(D), float(scale)),),
        {"scale": float(scale)},
        ref.sites,
        ref,
        {"D": int(D), "scale": float(scale)},
    )
