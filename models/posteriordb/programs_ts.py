"""Time-series, HMM and mixture programs of posteriordb (arK, arma11, garch11, the three HMMs,
low_dim_gauss_mix), translated from their Stan code.

- The HMMs marginalize the hidden states with the forward algorithm as the Stan programs do. Their
  two-state ``simplex[2]`` rows ``theta_j = (p_j, 1 - p_j)`` are the scalar sites ``theta1``,
  ``theta2`` = ``p_j`` in (0, 1): the same unconstrained coordinate as Stan's and both
  frameworks' stick-breaking (``logit p_j``), and ``Dirichlet(a_j)`` on the row is ``Beta(a_j1,
  a_j2)`` on ``p_j`` (the flat simplex of ``hmm_example`` is ``Beta(1, 1)``).
- garch11's ``beta1`` has the parameter-dependent bound ``(0, 1 - alpha1)``, which Pyro's
  ``AutoContinuous`` cannot follow (it fixes each site's support at set-up); so the site is
  ``beta1_frac = beta1 / (1 - alpha1)`` in (0, 1) with the Jacobian ``log(1 - alpha1)`` added:
  the same unconstrained coordinate ``logit(beta1 / (1 - alpha1))`` and density as Stan's.
"""

from __future__ import annotations

import numpy as np

from models.api import dist, ops, pyro
from models.posteriordb.prims import flat, logsumexp, scan
from models.posteriordb.program import Program


def ark_model(lags, y) -> None:
    """``lags [T-K, K]`` (``lags[t, k] = y[t+K-k-1]``), ``y [T-K]`` the modelled outputs."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, 10.0))
    beta = pyro.sample("beta", dist.Normal(0.0, 10.0).expand([lags.shape[-1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
    with pyro.plate("time", y.shape[-1]):
        pyro.sample("y", dist.Normal(alpha + ops.matmul(lags, beta), sigma), obs=y)


def _ark_prepare(d: dict) -> tuple:
    K, y = int(d["K"]), d["y"]
    T = len(y)
    lags = np.stack([y[K - k - 1 : T - k - 1] for k in range(K)], -1)
    return (lags, y[K:])


def arma_model(y) -> None:
    """``y [T]``; errors ``err_t = y_t - mu - phi y_{t-1} - theta err_{t-1}``, ``err_0 = 0``."""
    mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
    phi = pyro.sample("phi", dist.Normal(0.0, 2.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
    theta = pyro.sample("theta", dist.Normal(0.0, 2.0))
    err1 = y[0] - (mu + phi * mu)

    def step(err_prev, yy):
        y_t, y_prev = yy
        err = y_t - (mu + phi * y_prev + theta * err_prev)
        return err, err

    _, errs = scan(step, err1, (y[1:], y[:-1]))
    lp = dist.Normal(0.0, sigma).log_prob(err1) + ops.sum(dist.Normal(0.0, sigma).log_prob(errs))
    pyro.factor("err", lp)  # err ~ normal(0, sigma): the map y -> err has unit Jacobian


def garch_model(y, sigma1) -> None:
    """``y [T]``, ``sigma1`` the known first volatility (a 0-d array)."""
    alpha0 = flat("alpha0", "positive")
    alpha1 = flat("alpha1", "unit")
    beta1_frac = flat("beta1_frac", "unit")
    mu = flat("mu", "real")
    beta1 = (1.0 - alpha1) * beta1_frac
    pyro.factor("beta1_jacobian", ops.log(1.0 - alpha1))

    def step(sigma_prev, y_prev):
        sigma = ops.sqrt(alpha0 + alpha1 * (y_prev - mu) ** 2 + beta1 * sigma_prev**2)
        return sigma, sigma

    _, sigmas = scan(step, sigma1 + 0.0 * mu, y[:-1])
    lp = dist.Normal(mu, sigma1).log_prob(y[0]) + ops.sum(dist.Normal(mu, sigmas).log_prob(y[1:]))
    pyro.factor("y", lp)


def _garch_to_sites(draws: dict, data: dict) -> dict:
    out = {k: draws[k] for k in ("alpha0", "alpha1", "mu")}
    out["beta1_frac"] = draws["beta1"] / (1.0 - draws["alpha1"])
    return out


def _forward(log_emit, p1, p2):
    """``log p(obs)`` of a 2-state HMM: ``log_emit [N, 2]``, ``P(j -> 1) = p_j``; Stan's
    initial step ``gamma_1 = log_emit_1`` (no initial distribution)."""
    log_trans = ops.stack([ops.stack([ops.log(p1), ops.log1p(-p1)]),
                           ops.stack([ops.log(p2), ops.log1p(-p2)])])  # [from j, to k]

    def step(gamma, emit):
        gamma = logsumexp(gamma[:, None] + log_trans, 0) + emit
        return gamma, 0.0 * emit[0]

    gamma, _ = scan(step, log_emit[0], log_emit[1:])
    return logsumexp(gamma, -1)


def _ordered_prior(x, loc0: float, loc1: float):
    return dist.Normal(loc0, 1.0).log_prob(x[0]) + dist.Normal(loc1, 1.0).log_prob(x[1])


def hmm_drive_model(u, v, alpha, tau=None, rho=None) -> None:
    """Basketball drives: ``u, v [N]`` (1/speed, hoop distance), ``alpha [2, 2]`` transition prior.

    Without ``tau`` / ``rho``: exponential emissions with rates ``phi``, ``lambda`` (hmm_drive_0,
    positive ordered); with them: normal emissions with means ``phi``, ``lambda`` and sds ``tau``,
    ``rho`` (hmm_drive_1, ordered).
    """
    kind = "positive_ordered" if tau is None else "ordered"
    lam = flat("lambda", kind, (2,))
    phi = flat("phi", kind, (2,))
    p1 = pyro.sample("theta1", dist.Beta(alpha[0, 0], alpha[0, 1]))
    p2 = pyro.sample("theta2", dist.Beta(alpha[1, 0], alpha[1, 1]))
    pyro.factor("phi_lambda_prior", _ordered_prior(phi, 0.0, 3.0) + _ordered_prior(lam, 0.0, 3.0))
    if tau is None:
        emit = dist.Exponential(phi).log_prob(u[:, None]) + dist.Exponential(lam).log_prob(v[:, None])
    else:
        emit = dist.Normal(phi, tau).log_prob(u[:, None]) + dist.Normal(lam, rho).log_prob(v[:, None])
    pyro.factor("y", _forward(emit, p1, p2))


def hmm_example_model(y) -> None:
    """``y [N]``, unit-variance normal emissions with positive ordered means ``mu``."""
    mu = flat("mu", "positive_ordered", (2,))
    p1 = flat("theta1", "unit")
    p2 = flat("theta2", "unit")
    pyro.factor("mu_prior", _ordered_prior(mu, 3.0, 10.0))
    pyro.factor("y", _forward(dist.Normal(mu, 1.0).log_prob(y[:, None]), p1, p2))


def _hmm_to_sites(draws: dict, data: dict) -> dict:
    out = {k: v for k, v in draws.items() if k not in ("theta1", "theta2")}
    out.update(theta1=draws["theta1"][..., 0], theta2=draws["theta2"][..., 0])
    return out


def gauss_mix_model(y) -> None:
    """``y [N]`` from ``theta N(mu_1, sigma_1) + (1 - theta) N(mu_2, sigma_2)``, ``mu`` ordered."""
    mu = flat("mu", "ordered", (2,))
    sigma = pyro.sample("sigma", dist.HalfNormal(2.0).expand([2]).to_event(1))
    theta = pyro.sample("theta", dist.Beta(5.0, 5.0))
    pyro.factor("mu_prior", ops.sum(dist.Normal(0.0, 2.0).log_prob(mu)))
    lp1 = ops.log(theta) + dist.Normal(mu[0], sigma[0]).log_prob(y)
    lp2 = ops.log1p(-theta) + dist.Normal(mu[1], sigma[1]).log_prob(y)
    pyro.factor("y", ops.sum(ops.logaddexp(lp1, lp2)))


_HMM_SITES = (("lambda", (2,), None), ("phi", (2,), None), ("theta1", (), "unit"),
              ("theta2", (), "unit"))


def _drive_sites(kind: str):
    return lambda d: tuple((n, s, k or kind) for n, s, k in _HMM_SITES)


PROGRAMS: dict[str, Program] = {
    "arK": Program(ark_model, lambda d: (("alpha", (), "real"), ("beta", (int(d["K"]),), "real"),
                                         ("sigma", (), "positive")), _ark_prepare),
    "arma11": Program(arma_model, lambda d: (("mu", (), "real"), ("phi", (), "real"),
                                             ("sigma", (), "positive"), ("theta", (), "real")),
                      lambda d: (d["y"],)),
    "garch11": Program(garch_model, lambda d: (("alpha0", (), "positive"), ("alpha1", (), "unit"),
                                               ("beta1_frac", (), "unit"), ("mu", (), "real")),
                       lambda d: (d["y"], np.asarray(d["sigma1"], float)), _garch_to_sites),
    "hmm_drive_0": Program(hmm_drive_model, _drive_sites("positive_ordered"),
                           lambda d: (d["u"], d["v"], d["alpha"]), _hmm_to_sites),
    "hmm_drive_1": Program(hmm_drive_model, _drive_sites("ordered"),
                           lambda d: (d["u"], d["v"], d["alpha"], np.asarray(d["tau"], float),
                                      np.asarray(d["rho"], float)), _hmm_to_sites),
    "hmm_example": Program(hmm_example_model, lambda d: (("mu", (2,), "positive_ordered"),
                                                         ("theta1", (), "unit"),
                                                         ("theta2", (), "unit")),
                           lambda d: (d["y"],), _hmm_to_sites),
    "low_dim_gauss_mix": Program(gauss_mix_model, lambda d: (("mu", (2,), "ordered"),
                                                             ("sigma", (2,), "positive"),
                                                             ("theta", (), "unit")),
                                 lambda d: (d["y"],)),
}
