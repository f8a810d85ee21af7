"""eight_schools_noncentered, the two GP programs and the two ODE programs of posteriordb,
translated from their Stan code.

- ``gp_pois_regr`` is sampled in Stan's whitened coordinates ``f_tilde`` (``f = L f_tilde``); the
  reference draws hold ``f``, mapped back with ``f_tilde = L(rho, alpha)^-1 f`` per draw. Stan's
  jitter ``1e-10`` is kept in float64; in float32 the Cholesky factor of the nearly singular
  11 x 11 kernel needs ``1e-4`` (the only change of a program; see ``gp_jitter``).
- The ODEs use one solver in both backends (:func:`models.posteriordb.ode.odeint`: JAX's adaptive
  Dormand-Prince, rtol = atol = 1e-6; Pyro calls it through a ``torch.autograd.Function``).
  ``one_comp_mm_elim_abs``'s dose term ``exp(-k_a t) D k_a / V`` is applied for ``t >= 0``
  rather than Stan's ``t > 0``: the solution is the same (the two right-hand sides differ at the
  single point ``t = 0``), and the solver's first stage then sees the limit from the right, as
  Stan's BDF step does in effect. ``lotka_volterra``'s populations are floored at ``LV_FLOOR``
  = 1e-30 (see there; this changes no density where the solution stays positive).
"""

from __future__ import annotations

import numpy as np

from models.api import as_array, dist, ops, pyro
from models.posteriordb.prims import flat_with, odeint
from models.posteriordb.program import Program


def eight_schools_nc_model(sigma, y) -> None:
    """``sigma [J]`` known standard errors, ``y [J]``; ``theta = mu + tau theta_trans``."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    theta_trans = pyro.sample("theta_trans", dist.Normal(0.0, 1.0).expand([y.shape[-1]]).to_event(1))
    with pyro.plate("schools", y.shape[-1]):
        pyro.sample("y", dist.Normal(theta_trans * tau + mu, sigma), obs=y)


def _eight_to_sites(draws: dict, data: dict) -> dict:
    tau = draws["tau"][..., None]
    return {"mu": draws["mu"], "tau": draws["tau"],
            "theta_trans": (draws["theta"] - draws["mu"][..., None]) / tau}


def gp_jitter(x) -> float:
    """The kernel's diagonal jitter: Stan's 1e-10 in float64, 1e-4 in float32."""
    return 1e-10 if str(x.dtype).endswith("float64") else 1e-4


def _sq_exp(x, alpha, rho):
    d = x[:, None] - x[None, :]
    return alpha**2 * ops.exp(-0.5 * d**2 / rho**2)


def gp_pois_model(x, k) -> None:
    """``x [N]`` inputs, ``k [N]`` counts; ``f = L f_tilde``, ``k ~ Poisson(exp f)``."""
    alpha = pyro.sample("alpha", dist.HalfNormal(2.0))
    f_tilde = pyro.sample("f_tilde", dist.Normal(0.0, 1.0).expand([x.shape[-1]]).to_event(1))
    rho = pyro.sample("rho", dist.Gamma(25.0, 4.0))
    cov = _sq_exp(x, alpha, rho) + gp_jitter(x) * ops.eye(x.shape[-1])
    f = ops.matmul(ops.linalg.cholesky(cov), f_tilde)
    with pyro.plate("data", x.shape[-1]):
        pyro.sample("k", dist.Poisson(ops.exp(f)), obs=k)


def _gp_pois_to_sites(draws: dict, data: dict) -> dict:
    x = np.asarray(data["x"], float)
    alpha, rho, f = draws["alpha"], draws["rho"], draws["f"]
    d2 = (x[:, None] - x[None, :]) ** 2
    cov = alpha[..., None, None] ** 2 * np.exp(-0.5 * d2 / rho[..., None, None] ** 2)
    L = np.linalg.cholesky(cov + 1e-10 * np.eye(len(x)))
    f_tilde = np.linalg.solve(L, f[..., None])[..., 0]
    return {"alpha": alpha, "f_tilde": f_tilde, "rho": rho}


def gp_regr_model(x, y) -> None:
    """``x, y [N]``; ``y ~ MVN(0, K(alpha, rho) + sigma I)`` (Stan adds ``sigma``, not its square)."""
    alpha = pyro.sample("alpha", dist.HalfNormal(2.0))
    rho = pyro.sample("rho", dist.Gamma(25.0, 4.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    cov = _sq_exp(x, alpha, rho) + sigma * ops.eye(x.shape[-1])
    loc = 0.0 * x
    pyro.sample("y", dist.MultivariateNormal(loc, scale_tril=ops.linalg.cholesky(cov)), obs=y)


#: floor of the Lotka-Volterra populations: the exact solution is positive, but where one decays
#: to ~1e-10 (extreme parameters: prior draws, Stan's U(-2, 2) initializations) the adaptive
#: solver's absolute error (atol 1e-6) can leave it slightly negative and its log NaN
LV_FLOOR = 1e-30


def _lv_rhs(z, t, theta):
    u, v = z[0], z[1]
    return ops.stack([(theta[0] - theta[1] * v) * u, (-theta[2] + theta[3] * u) * v])


def lotka_volterra_model(ts, y_init, y) -> None:
    """Hudson's Bay lynx-hare: ``ts [N]`` times (> 0), ``y_init [2]``, ``y [N, 2]`` populations."""
    sigma = pyro.sample("sigma", dist.LogNormal(-1.0, 1.0).expand([2]).to_event(1))
    prior_theta = dist.Normal(as_array([1.0, 0.05, 1.0, 0.05]), as_array([0.5, 0.05, 0.5, 0.05]))
    theta = flat_with("theta", "positive", prior_theta, (4,))
    z_init = pyro.sample("z_init", dist.LogNormal(float(np.log(10.0)), 1.0).expand([2]).to_event(1))
    t = ops.concatenate([0.0 * ts[:1], ts])
    z = ops.clip(odeint(_lv_rhs, z_init, t, theta)[1:], LV_FLOOR, None)
    pyro.sample("y_init", dist.LogNormal(ops.log(z_init), sigma).to_event(1), obs=y_init)
    with pyro.plate("time", ts.shape[-1]):
        pyro.sample("y", dist.LogNormal(ops.log(z), sigma).to_event(1), obs=y)


def _pk_rhs(c, t, k_a, K_m, V_m, D, V):
    dose = ops.exp(-k_a * t) * D * k_a / V
    return dose - (V_m / V) * c / (K_m + c)


def one_comp_model(times, C_hat, dose_volume) -> None:
    """Michaelis-Menten elimination, first-order absorption: ``times [N]`` (> t0 = 0), ``C_hat
    [N]`` measured concentrations, ``dose_volume [2]`` = (D, V); ``C(0) = 0``."""
    K_m = pyro.sample("K_m", dist.HalfCauchy(1.0))
    V_m = pyro.sample("V_m", dist.HalfCauchy(1.0))
    k_a = pyro.sample("k_a", dist.HalfCauchy(1.0))
    sigma = pyro.sample("sigma", dist.HalfCauchy(1.0))
    t = ops.concatenate([0.0 * times[:1], times])
    c0 = 0.0 * times[:1]
    C = odeint(_pk_rhs, c0, t, k_a, K_m, V_m, dose_volume[0], dose_volume[1])[1:, 0]
    with pyro.plate("time", times.shape[-1]):
        pyro.sample("C_hat", dist.LogNormal(ops.log(C), sigma), obs=C_hat)


PROGRAMS: dict[str, Program] = {
    "eight_schools_noncentered": Program(
        eight_schools_nc_model,
        lambda d: (("mu", (), "real"), ("tau", (), "positive"), ("theta_trans", (int(d["J"]),), "real")),
        lambda d: (d["sigma"], d["y"]), _eight_to_sites),
    "gp_pois_regr": Program(
        gp_pois_model,
        lambda d: (("alpha", (), "positive"), ("f_tilde", (int(d["N"]),), "real"), ("rho", (), "positive")),
        lambda d: (d["x"].astype(float), d["k"]), _gp_pois_to_sites),
    "gp_regr": Program(
        gp_regr_model,
        lambda d: (("alpha", (), "positive"), ("rho", (), "positive"), ("sigma", (), "positive")),
        lambda d: (d["x"].astype(float), d["y"])),
    "lotka_volterra": Program(
        lotka_volterra_model,
        lambda d: (("sigma", (2,), "positive"), ("theta", (4,), "positive"), ("z_init", (2,), "positive")),
        lambda d: (d["ts"].astype(float), d["y_init"].astype(float), d["y"])),
    "one_comp_mm_elim_abs": Program(
        one_comp_model,
        lambda d: (("K_m", (), "positive"), ("V_m", (), "positive"), ("k_a", (), "positive"),
                   ("sigma", (), "positive")),
        lambda d: (d["times"].astype(float), d["C_hat"], np.array([d["D"], d["V"]], float))),
}
