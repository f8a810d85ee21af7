"""Benchmark models: written once (same log joint under Pyro and NumPyro), exact references right,
stored NUTS references consistent with the models. The NumPyro side runs in float32 (x64 off)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from models import api
from models.api import as_array, constrain, current_backend, latent_sites, log_joint, ops, to_numpy
from models.spec import load_reference
from models.targets.linear_gaussian import (
    linear_gaussian_data,
    linear_gaussian_matrix,
    linear_gaussian_reference,
)
from models.targets.registry import MODELS, NUTS_MODELS, ONE_MODE_MODELS, get_model

CASES = [(name, {}) for name in MODELS] + [("linear_gaussian", {"D": 1000})]
IDS = [name + "".join(f"-{k}{v}" for k, v in kw.items()) for name, kw in CASES]


def _point(dim: int, seed: int = 0) -> np.ndarray:
    return 0.5 * np.random.default_rng(seed).standard_normal(dim)


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_log_joint_same_in_both_backends(name, kw):
    specs = {b: get_model(name, backend=b, **kw) for b in ("pyro", "numpyro")}
    lps = []
    for seed in (0, 1):
        z = _point(specs["pyro"].latent_dim, seed)
        lp = {b: log_joint(s, constrain(s, z)) for b, s in specs.items()}
        assert np.isfinite(lp["pyro"])
        assert abs(lp["pyro"] - lp["numpyro"]) <= 1e-4 * max(1.0, abs(lp["pyro"])), lp
        lps.append(lp["pyro"])
    assert lps[0] != lps[1]  # the latents matter


def _lg_log_joint(x: np.ndarray, D: int, scale: float) -> float:
    """``log N(x; 0, I) + log N(y; A x, I)`` in float64 with the explicit matrix A."""
    A, y = linear_gaussian_matrix(D, scale), linear_gaussian_data(D, scale)
    return float(scipy.stats.norm.logpdf(x).sum() + scipy.stats.norm.logpdf(y, A @ x).sum())


@pytest.mark.parametrize("D,scale", [(1, 0.1), (5, 0.1), (50, 0.1), (20, 1.0)])
def test_linear_gaussian_evidence_identity(D, scale):
    """log p(y) = log p(x, y) - log p(x | y) at any x."""
    ref = linear_gaussian_reference(D, scale)
    post = scipy.stats.multivariate_normal(ref.mean, ref.cov)
    for seed in (0, 1):
        x = np.random.default_rng(seed).standard_normal(D)
        assert abs(_lg_log_joint(x, D, scale) - post.logpdf(x) - ref.log_evidence) < 1e-6


def test_linear_gaussian_quadrature_1d():
    ref = linear_gaussian_reference(1, 0.1)
    p = lambda x: np.exp(_lg_log_joint(np.array([x]), 1, 0.1))  # noqa: E731
    Z = scipy.integrate.quad(p, -30, 30, epsabs=0, epsrel=1e-12)[0]
    m1 = scipy.integrate.quad(lambda x: x * p(x), -30, 30, epsabs=0, epsrel=1e-12)[0] / Z
    m2 = scipy.integrate.quad(lambda x: x * x * p(x), -30, 30, epsabs=0, epsrel=1e-12)[0] / Z
    assert abs(np.log(Z) - ref.log_evidence) < 1e-6
    assert abs(m1 - ref.mean[0]) < 1e-6
    assert abs(m2 - m1**2 - ref.cov[0, 0]) < 1e-6


def test_linear_gaussian_reference_large_D():
    D = 1000
    ref = linear_gaussian_reference(D)
    A, y = linear_gaussian_matrix(D), linear_gaussian_data(D)
    precision = np.eye(D) + A.T @ A
    np.testing.assert_allclose(precision @ ref.mean, A.T @ y, atol=1e-8)
    np.testing.assert_allclose(ref.cov @ precision, np.eye(D), atol=1e-8)
    np.testing.assert_allclose(ref.sd, np.sqrt(np.diag(ref.cov)))
    expected = scipy.stats.multivariate_normal(np.zeros(D), np.eye(D) + A @ A.T).logpdf(y)
    assert abs(ref.log_evidence - expected) < 1e-6 * abs(expected)


def test_linear_gaussian_model_body_is_A_x(backend):
    """The body's ``scale * cumsum(x)`` is ``A x`` (float64 here, so the tolerance is tight)."""
    D, scale = 7, 0.3
    with backend.float64():
        spec = get_model("linear_gaussian", backend=backend.name, D=D, scale=scale)
        x = np.random.default_rng(2).standard_normal(D)
        lp = log_joint(spec, constrain(spec, x))
    assert abs(lp - _lg_log_joint(x, D, scale)) < 1e-9 * abs(lp)


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_sites_and_reference_shapes(backend, name):
    spec = get_model(name, backend=backend.name)
    assert spec.backend == backend.name
    # traced execution order == declared order == sorted names (how Pyro and NumPyro ravel)
    assert latent_sites(spec) == list(spec.sites)
    assert [k for k, _ in spec.sites] == sorted(k for k, _ in spec.sites)
    assert spec.latent_dim == sum(int(np.prod(s)) for _, s in spec.sites)
    for a in spec.model_args:
        assert to_numpy(a).dtype in (np.float32, np.int32, np.int64)
    ref = spec.reference
    assert ref is not None and ref.sites == spec.sites
    D = spec.latent_dim
    assert ref.mean.shape == ref.sd.shape == (D,)
    assert np.all(np.isfinite(ref.mean)) and np.all(ref.sd > 0)
    if ref.cov is not None:
        assert ref.cov.shape == (D, D)
        np.testing.assert_allclose(np.sqrt(np.diag(ref.cov)), ref.sd, rtol=1e-3)
        assert np.linalg.eigvalsh(ref.cov).min() > 0
    if ref.quantiles:
        qs = sorted(ref.quantiles)
        assert all(ref.quantiles[q].shape == (D,) for q in qs)
        assert all(np.all(ref.quantiles[a] < ref.quantiles[b]) for a, b in zip(qs, qs[1:]))
    assert dict(spec).keys() >= {"model", "model_args", "model_kwargs", "latent_dim"}


def _pyro_vectorized_and_one_by_one(name: str, num_particles: int = 3) -> tuple[float, float]:
    """The model's log density in one run of Pyro's vectorized ELBO (``num_particles`` draws of
    ``AutoDiagonalNormal`` in a plate left of the model's own), and the sum of the same draws
    scored one at a time."""
    from backends import pyro_diagonal_guide
    from pyro import poutine
    from pyro.infer import Trace_ELBO

    spec = get_model(name, backend="pyro")
    args, kwargs = spec.model_args, spec.model_kwargs
    guide = pyro_diagonal_guide(spec)
    elbo = Trace_ELBO(num_particles=num_particles, vectorize_particles=True)
    elbo._guess_max_plate_nesting(spec.model, guide, args, kwargs)
    model_trace, guide_trace = elbo._get_vectorized_trace(spec.model, guide, args, kwargs)
    one_by_one = 0.0
    for i in range(num_particles):
        values = {site: guide_trace.nodes[site]["value"][i].reshape(shape) for site, shape in spec.sites}
        trace = poutine.trace(poutine.condition(spec.model, values)).get_trace(*args, **kwargs)
        one_by_one += float(trace.log_prob_sum())
    return float(model_trace.log_prob_sum()), one_by_one


@pytest.mark.parametrize("name", list(MODELS))
def test_pyro_models_broadcast_over_vectorized_particles(name):
    """``pyro_iaf.fit(num_particles > 1)`` vectorizes the particles: a model that mixes them (a
    sum over every dimension, a latent indexed with an extra axis) gives a wrong loss silently.
    Before the fix, bnn and hierarchical_logistic scored 3 particles at about 20 times the sum."""
    assert get_model(name, backend="pyro").batched
    vectorized, one_by_one = _pyro_vectorized_and_one_by_one(name)
    assert vectorized == pytest.approx(one_by_one, rel=1e-4, abs=1e-3)


@pytest.mark.parametrize("name", ["funnel", "banana"])
def test_exact_reference_matches_model_samples(name):
    """Prior draws of the model itself (NumPyro, vectorized) against the reference quantiles."""
    import jax
    from numpyro.infer import Predictive

    n = 20_000
    spec = get_model(name, backend="numpyro")
    draws = Predictive(spec.model, num_samples=n)(jax.random.PRNGKey(0), *spec.model_args,
                                                  **spec.model_kwargs)
    flat = np.concatenate([np.asarray(draws[k]).reshape(n, -1) for k, _ in spec.sites], axis=1)
    ref = spec.reference
    for q, value in ref.quantiles.items():
        below = (flat < value).mean(0)
        assert np.all(np.abs(below - q) < 5 * np.sqrt(q * (1 - q) / n)), (q, below)
    assert np.all(np.abs(flat.mean(0) - ref.mean) < 5 * ref.sd / np.sqrt(n))
    assert abs(flat[:, 0].std() / ref.sd[0] - 1) < 0.03


def test_brownian_reference_evidence_and_truth():
    """The lattice evidence against plain Monte Carlo over the prior of the two log scales (the
    locs integrated out exactly), and the posterior near the scales the data came from."""
    from models.targets.brownian_motion import PRIOR_SD, TRUE, brownian_reference, log_marginal

    ref = brownian_reference()
    draws = PRIOR_SD * np.random.default_rng(1).standard_normal((2, 200_000))
    log_lik = log_marginal(draws[0], draws[1])
    mc = np.log(np.mean(np.exp(log_lik - log_lik.max()))) + log_lik.max()
    assert abs(ref.log_evidence - mc) < 0.05, (ref.log_evidence, mc)
    assert abs(ref.mean[0] - np.log(TRUE["innovation_scale"])) < 2 * ref.sd[0]
    assert abs(ref.mean[-1] - np.log(TRUE["observation_scale"])) < 2 * ref.sd[-1]
    assert 0.2 < ref.sd[-1] < 2.0 and ref.cov.shape == (32, 32)


#: (site index, value) the NUTS posterior must be near, in posterior sds: published eight-schools
#: mu mean 4.4, and the true parameters the regression / SV data were simulated from
TRUTH = {
    "eight_schools": [(0, 4.4)],
    "hierarchical_regression": [(0, 1.5), (1, np.log(0.6)), (14, np.log(0.8)), (15, -0.7)],
    "stochastic_volatility": [(0, -1.0), (1, np.log(0.95 / 0.05)), (2, np.log(0.25))],
    "cox_process": [(0, np.log(1.0)), (1, 1.0)],
    "horseshoe_regression": [(25, np.log(0.5))],
    "hierarchical_logistic": [(0, -0.5), (1, 1.0), (2, -0.8)],
    "ordinal_regression": [(0, 1.0), (1, -0.5), (2, 0.8), (3, 0.0), (4, 0.3)],
}


#: (max R-hat, min ESS) where a reference is held to less, with the reason at the assertion
RELAXED = {"sv_sp500": (1.02, 300)}


@pytest.mark.parametrize("name", NUTS_MODELS)
def test_nuts_reference_is_converged_and_plausible(name):
    ref = get_model(name).reference
    assert ref.source == "nuts"
    info = ref.info
    # one chain in one mode of a multimodal posterior (hidden units permute): fewer draws suffice
    # for the ELBO comparison they serve; the centred SV of real returns mixes slowly (4 x 2000
    # draws: R-hat 1.015, ESS 360), its reference is checked against the Inference Gym's instead
    max_r_hat, min_ess = RELAXED.get(name, (1.01, 400 if name in ONE_MODE_MODELS else 1000))
    assert info["max_r_hat"] < max_r_hat and info["min_ess"] > min_ess
    assert info["divergences"] <= 0.001 * info["num_chains"] * info["num_samples"]
    for i, value in TRUTH.get(name, []):
        assert abs(ref.mean[i] - value) < 3 * ref.sd[i], (i, ref.mean[i], ref.sd[i])
    if name == "eight_schools":
        assert 3.0 < ref.sd[0] < 3.7  # posterior sd of mu, published 3.3


def test_nuts_reference_is_rejected_for_other_args_or_data():
    assert get_model("logistic_regression", num_features=5).reference is None
    assert get_model("logistic_regression", num_features=5).latent_dim == 6
    with pytest.warns(UserWarning, match="other data"):
        assert load_reference("eight_schools", {}, "0" * 16) is None


def test_backend_adapter():
    assert current_backend() == "pyro"
    with api.backend("numpyro"):
        assert current_backend() == "numpyro"
        assert float(ops.zeros(3).sum()) == 0.0  # pyro-api's "numpy" alias returns ones here
        assert as_array([1, 2]).dtype == np.float32
        assert as_array(np.arange(3), "int64").dtype == np.int32  # x64 off: canonicalized
        with api.backend("pyro"):
            import torch

            assert isinstance(as_array([1.0]), torch.Tensor)
            assert as_array([1.0], "float64").dtype == torch.float64
        assert current_backend() == "numpyro"
    assert current_backend() == "pyro"
    np.testing.assert_array_equal(to_numpy(as_array([1.5, 2.5])), [1.5, 2.5])
    with pytest.raises(ValueError, match="Unknown backend"):
        with api.backend("numpy"):
            pass
    with pytest.raises(ValueError, match="Unknown model"):
        get_model("no_such_model")


def test_sv_sp500_reference_matches_the_inference_gym_ground_truth():
    """Our NUTS reference of the S&P 500 model against the Inference Gym's (50,000 Stan draws):
    the translation, not only the sampler, is checked (log volatility and the persistence)."""
    from inference_gym.targets.ground_truth import stochastic_volatility_sp500_small as truth

    ref = get_model("sv_sp500").reference
    x_mean, x_sd = ref.mean[3:], ref.sd[3:]  # "x" is the identity-constrained log volatility
    gym_mean = truth.IDENTITY_LOG_VOLATILITY_MEAN
    gym_sd = truth.IDENTITY_LOG_VOLATILITY_STANDARD_DEVIATION
    mean_err = np.abs(x_mean - gym_mean) / gym_sd
    assert mean_err.max() < 0.1, mean_err.max()
    assert np.abs(x_sd / gym_sd - 1).max() < 0.1, np.abs(x_sd / gym_sd - 1).max()
    # phi is logit((persistence + 1) / 2): its mean, mapped back, near the gym's persistence mean
    persistence = 2 / (1 + np.exp(-ref.mean[1])) - 1
    assert abs(persistence - truth.IDENTITY_PERSISTENCE_OF_VOLATILITY_MEAN) < 0.05
