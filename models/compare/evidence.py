"""Scores of a fitted guide from its importance weights ``log w = log p(x, z) - log q(z)``.

    log_evidence_is(log_w)   -> (log Z_hat, SE)   log mean exp(log w); SE by the delta method
    psis_khat(log_w)         -> k_hat             Pareto k of the weights (Vehtari et al. 2024)
    moment_errors(z, mean, sd) -> (mean_err, sd_err)   standardized RMS errors of the moments

``log w`` of draws from the guide has mean ELBO and ``log Z_hat >= ELBO`` in expectation; the
same weights give both. ``k_hat < 0.5``: the guide covers the posterior well (IS error small);
``0.5-0.7`` usable; ``> 0.7`` the IS estimate (and the guide's tails) cannot be trusted.
"""

from __future__ import annotations

import warnings

import numpy as np


def _finite_1d(log_w) -> np.ndarray:
    log_w = np.asarray(log_w, dtype=np.float64).reshape(-1)
    if log_w.size < 2:
        raise ValueError(f"Expected at least 2 log weights; got {log_w.size}")
    return log_w


def log_evidence_is(log_w) -> tuple[float, float]:
    """``log (1/N) sum_i exp(log_w_i)`` and its standard error ``sd(w) / (sqrt(N) mean(w))``.

    NaN log weights give NaN; ``-inf`` weights count as zero weight.
    """
    log_w = _finite_1d(log_w)
    if np.isnan(log_w).any() or np.isposinf(log_w).any():
        return float("nan"), float("nan")
    m = log_w.max()
    if not np.isfinite(m):
        return float("-inf"), float("nan")
    w = np.exp(log_w - m)
    n = w.size
    mean = w.mean()
    se = w.std(ddof=1) / (np.sqrt(n) * mean)
    return float(m + np.log(mean)), float(se)


def psis_khat(log_w) -> float:
    """Pareto-smoothed IS shape ``k_hat`` of the weights (ArviZ 0.23 ``psislw``, ``reff=1``).

    Zero weights (``-inf``) are left out; NaN or ``+inf`` weights give NaN.
    """
    import arviz as az

    log_w = _finite_1d(log_w)
    if np.isnan(log_w).any() or np.isposinf(log_w).any():
        return float("nan")
    log_w = log_w[np.isfinite(log_w)]  # -inf: zero weight, no tail
    if log_w.size < 2:
        return float("nan")
    log_w = np.asarray(log_w, np.float64) - log_w.max()  # shift-invariant; +inf: degenerate weights
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, khat = az.psislw(log_w, reff=1.0)
    return float(np.asarray(khat))


def moment_errors(z, mean, sd) -> tuple[float, float]:
    """RMS over coordinates of ``(mean_q - mean) / sd`` and of ``sd_q / sd - 1``.

    ``z [N, D]`` draws of the guide (unconstrained latent vector), ``mean, sd [D]`` reference.
    """
    z = np.asarray(z, dtype=np.float64)
    mean, sd = np.asarray(mean, np.float64), np.asarray(sd, np.float64)
    if z.ndim != 2 or z.shape[1] != mean.shape[0] or sd.shape != mean.shape:
        raise ValueError(f"Expected z [N, {mean.shape[0]}] and mean, sd [{mean.shape[0]}]; got "
                         f"{z.shape}, {mean.shape}, {sd.shape}")
    mean_err = np.sqrt(np.mean(((z.mean(0) - mean) / sd) ** 2))
    sd_err = np.sqrt(np.mean((z.std(0, ddof=1) / sd - 1) ** 2))
    return float(mean_err), float(sd_err)
