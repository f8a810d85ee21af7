"""The regression programs of posteriordb (earnings, kidiq, mesquite, nes, blr, kilpisjarvi,
diamonds), translated from their Stan code.

Most are ``y ~ normal(X beta, sigma)`` with a design matrix built from the data exactly as the Stan
program's ``transformed data`` block builds it (``X`` here includes the intercept column).
``beta`` has Stan's flat prior unless the program states one; ``sigma > 0`` is flat or
``cauchy(0, 2.5)`` (a half-Cauchy: Stan drops the truncation constant).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from models.api import dist, ops, pyro
from models.posteriordb.prims import flat, flat_with
from models.posteriordb.program import Program


def _linreg(sigma_prior: str, beta_scale: float | None = None) -> Callable:
    """``y ~ N(X beta, sigma)``; ``sigma_prior`` "flat", "cauchy2.5" or "normal10" (half);
    ``beta ~ N(0, beta_scale)`` or flat (None)."""

    def linreg(X, y) -> None:
        """``X [N, p]`` design (intercept column included), ``y [N]``."""
        p = X.shape[-1]
        if beta_scale is None:
            beta = flat("beta", "real", (p,))
        else:
            beta = pyro.sample("beta", dist.Normal(0.0, beta_scale).expand([p]).to_event(1))
        if sigma_prior == "flat":
            sigma = flat("sigma", "positive")
        elif sigma_prior == "cauchy2.5":
            sigma = pyro.sample("sigma", dist.HalfCauchy(2.5))
        else:
            sigma = pyro.sample("sigma", dist.HalfNormal(10.0))
        with pyro.plate("data", y.shape[-1]):
            pyro.sample("y", dist.Normal(ops.matmul(X, beta), sigma), obs=y)

    linreg.__name__ = f"linreg_{sigma_prior}"
    return linreg


def _design(*cols: np.ndarray) -> np.ndarray:
    return np.stack([np.ones_like(cols[0])] + list(cols), -1)


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1))  # Stan's sd(): the sample standard deviation


def _regression(columns: Callable[[dict], list], response: Callable[[dict], np.ndarray],
                sigma_prior: str = "flat", beta_scale: float | None = None,
                intercept: bool = True) -> Program:
    def prepare(d: dict) -> tuple:
        cols = columns(d)
        X = _design(*cols) if intercept else np.asarray(cols[0])
        return (X, response(d))

    def sites(d: dict):
        p = prepare(d)[0].shape[-1]
        return (("beta", (p,), "real"), ("sigma", (), "positive"))

    return Program(_linreg(sigma_prior, beta_scale), sites, prepare)


_log = np.log


def _earnings() -> dict[str, Program]:
    h = lambda d: d["height"]  # noqa: E731
    m = lambda d: d["male"]  # noqa: E731
    zh = lambda d: (h(d) - h(d).mean()) / _sd(h(d))  # noqa: E731
    log_earn = lambda d: _log(d["earn"])  # noqa: E731
    return {
        "earn_height": _regression(lambda d: [h(d)], lambda d: d["earn"]),
        "log10earn_height": _regression(lambda d: [h(d)], lambda d: np.log10(d["earn"])),
        "logearn_height": _regression(lambda d: [h(d)], log_earn),
        "logearn_height_male": _regression(lambda d: [h(d), m(d)], log_earn),
        "logearn_interaction": _regression(lambda d: [h(d), m(d), h(d) * m(d)], log_earn),
        "logearn_interaction_z": _regression(lambda d: [zh(d), m(d), zh(d) * m(d)], log_earn),
        "logearn_logheight_male": _regression(lambda d: [_log(h(d)), m(d)], log_earn),
    }


def _kidiq() -> dict[str, Program]:
    hs = lambda d: d["mom_hs"]  # noqa: E731
    iq = lambda d: d["mom_iq"]  # noqa: E731
    ks = lambda d: d["kid_score"]  # noqa: E731
    c = lambda x: x - x.mean()  # noqa: E731
    z = lambda x: (x - x.mean()) / (2 * _sd(x))  # noqa: E731
    work = lambda d, k: (d["mom_work"] == k).astype(float)  # noqa: E731
    return {
        "kidscore_interaction": _regression(lambda d: [hs(d), iq(d), hs(d) * iq(d)], ks, "cauchy2.5"),
        "kidscore_momhs": _regression(lambda d: [hs(d)], ks, "cauchy2.5"),
        "kidscore_momhsiq": _regression(lambda d: [hs(d), iq(d)], ks, "cauchy2.5"),
        "kidscore_momiq": _regression(lambda d: [iq(d)], ks, "cauchy2.5"),
        "kidscore_interaction_c": _regression(
            lambda d: [c(hs(d)), c(iq(d)), c(hs(d)) * c(iq(d))], ks),
        "kidscore_interaction_c2": _regression(
            lambda d: [hs(d) - 0.5, iq(d) - 100, (hs(d) - 0.5) * (iq(d) - 100)], ks),
        "kidscore_interaction_z": _regression(
            lambda d: [z(hs(d)), z(iq(d)), z(hs(d)) * z(iq(d))], ks),
        "kidscore_mom_work": _regression(lambda d: [work(d, 2), work(d, 3), work(d, 4)], ks),
    }


def _mesquite() -> dict[str, Program]:
    def logs(d: dict) -> dict:
        return {
            "cv": _log(d["diam1"] * d["diam2"] * d["canopy_height"]),
            "ca": _log(d["diam1"] * d["diam2"]),
            "cs": _log(d["diam1"] / d["diam2"]),
            "th": _log(d["total_height"]),
            "dens": _log(d["density"]),
        }

    lw = lambda d: _log(d["weight"])  # noqa: E731
    raw = ("diam1", "diam2", "canopy_height", "total_height", "density")
    return {
        "mesquite": _regression(lambda d: [d[k] for k in raw] + [d["group"]], lambda d: d["weight"]),
        "logmesquite": _regression(lambda d: [_log(d[k]) for k in raw] + [d["group"]], lw),
        "logmesquite_logva": _regression(
            lambda d: [logs(d)["cv"], logs(d)["ca"], d["group"]], lw),
        "logmesquite_logvas": _regression(
            lambda d: [logs(d)[k] for k in ("cv", "ca", "cs", "th", "dens")] + [d["group"]], lw),
        "logmesquite_logvash": _regression(
            lambda d: [logs(d)[k] for k in ("cv", "ca", "cs", "th")] + [d["group"]], lw),
        "logmesquite_logvolume": _regression(lambda d: [logs(d)["cv"]], lw),
    }


def _nes_columns(d: dict) -> list:
    age = d["age_discrete"]
    return [d["real_ideo"], d["race_adj"], (age == 2).astype(float), (age == 3).astype(float),
            (age == 4).astype(float), d["educ1"], d["gender"], d["income"]]


# ---- kilpisjarvi and diamonds: their own parameter names ---------------------------------------


def kilpisjarvi_model(x, y, prior) -> None:
    """``x [N]`` years, ``y [N]``; ``prior [4]`` = (pmualpha, psalpha, pmubeta, psbeta)."""
    alpha = pyro.sample("alpha", dist.Normal(prior[0], prior[1]))
    beta = pyro.sample("beta", dist.Normal(prior[2], prior[3]))
    sigma = flat("sigma", "positive")
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Normal(alpha + beta * x, sigma), obs=y)


def diamonds_model(Xc, Y) -> None:
    """``Xc [N, K-1]`` centered predictors (no intercept column), ``Y [N]`` (brms' program)."""
    Intercept = pyro.sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    b = pyro.sample("b", dist.Normal(0.0, 1.0).expand([Xc.shape[-1]]).to_event(1))
    # student_t(3, 0, 10) truncated to sigma > 0; the -lccdf(0) = log 2 term is a constant
    sigma = flat_with("sigma", "positive", dist.StudentT(3.0, 0.0, 10.0))
    with pyro.plate("data", Y.shape[-1]):
        pyro.sample("Y", dist.Normal(Intercept + ops.matmul(Xc, b), sigma), obs=Y)


def _diamonds_prepare(d: dict) -> tuple:
    X = d["X"][:, 1:]
    return (X - X.mean(0), d["Y"])


PROGRAMS: dict[str, Program] = {
    **_earnings(),
    **_kidiq(),
    **_mesquite(),
    "nes": _regression(_nes_columns, lambda d: d["partyid7"]),
    "blr": _regression(lambda d: [d["X"]], lambda d: d["y"], "normal10", 10.0, intercept=False),
    "kilpisjarvi": Program(
        kilpisjarvi_model,
        lambda d: (("alpha", (), "real"), ("beta", (), "real"), ("sigma", (), "positive")),
        lambda d: (d["x"], d["y"], np.array([d["pmualpha"], d["psalpha"], d["pmubeta"], d["psbeta"]]))),
    "diamonds": Program(
        diamonds_model,
        lambda d: (("Intercept", (), "real"), ("b", (d["X"].shape[1] - 1,), "real"),
                   ("sigma", (), "positive")),
        _diamonds_prepare),
}
