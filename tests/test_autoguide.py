"""AutoIAFNormal on both backends: accuracy against exact log-evidence, API, errors, save/load."""

from __future__ import annotations

import numpy as np
import pytest

from models.api import dist, ops, pyro
from models.targets.linear_gaussian import (
    linear_gaussian_data,
    linear_gaussian_model,
    linear_gaussian_reference,
)


def _lg_args(backend, D, scale):
    """Model arguments; the default ``scale`` is left out so that every argument is an array
    (Pyro's ``JitTrace_ELBO`` traces positional arguments)."""
    y = backend.array(linear_gaussian_data(D, scale))
    return (y,) if scale == 0.1 else (y, scale)


def _gap_pair(backend, D, scale, *, lr, steps, particles, seed=0):
    """Fit the default AutoIAFNormal and the diagonal guide alike; return their gaps to log Z."""
    log_z = linear_gaussian_reference(D, scale).log_evidence
    model = backend.model(linear_gaussian_model)
    args = _lg_args(backend, D, scale)
    gaps = {}
    for kind in ("iaf", "diagonal"):
        guide = backend.guide(kind, model)
        params = backend.fit(model, guide, args, lr=lr, steps=steps, particles=particles, seed=seed)
        elbo = backend.elbo(model, guide, params, args, num_particles=1000, seed=seed + 1)
        assert np.isfinite(elbo), kind
        gaps[kind] = log_z - elbo
    return gaps


@pytest.mark.parametrize("D", [10, 100])
def test_iaf_within_diagonal_gap_at_hot_defaults(backend, D):
    """Adam 1e-2, 1 particle, 2000 steps (where the built-in IAF guides diverge at D=100)."""
    gaps = _gap_pair(backend, D, 0.1, lr=1e-2, steps=2000, particles=1)
    assert gaps["iaf"] <= gaps["diagonal"] + 0.5, gaps
    assert gaps["iaf"] > -0.2, gaps  # an ELBO cannot exceed log Z (beyond estimator noise)


def test_iaf_captures_strong_correlation(backend):
    """A = 0.5 tril(ones), D=10: no diagonal guide gets closer than 1.84 nats."""
    gaps = _gap_pair(backend, 10, 0.5, lr=1e-2, steps=2000, particles=1)
    assert gaps["iaf"] < 0.6, gaps
    assert gaps["diagonal"] > 1.8, gaps


@pytest.mark.slow
def test_iaf_gentle_budget_d100(backend):
    """Adam 3e-3, 8 particles, 5000 steps at D=100: gap <= 0.7 nat."""
    gaps = _gap_pair(backend, 100, 0.1, lr=3e-3, steps=5000, particles=8)
    assert gaps["iaf"] <= 0.7, gaps


# ---- initialisation ---------------------------------------------------------------------------


def _vector_model(n):
    def model():
        pyro.sample("a", dist.Normal(ops.zeros(n), 1.0).to_event(1))
        pyro.sample("b", dist.LogNormal(0.0, 1.0))

    return model


@pytest.mark.parametrize("init_scale", [0.1, 0.5])
def test_first_posterior_has_init_loc_and_init_scale(backend, init_scale):
    import importlib

    init = importlib.import_module(
        "pyro.infer.autoguide.initialization" if backend.name == "pyro" else "numpyro.infer.initialization"
    )
    values = {"a": backend.array(np.array([1.0, -2.0, 3.0])), "b": backend.array(np.array(2.0))}
    model = backend.model(_vector_model(3))
    guide = backend.guide("iaf", model, init_loc_fn=init.init_to_value(values=values), init_scale=init_scale)
    params = backend.fit(model, guide, (), steps=0)
    z = backend.latent_samples(guide, params, (), 20000)
    expected_loc = np.array([1.0, -2.0, 3.0, np.log(2.0)])  # b is positive: log in latent space
    np.testing.assert_allclose(
        z.mean(0), expected_loc, atol=0.05 * init_scale + 4 * init_scale / np.sqrt(20000)
    )
    np.testing.assert_allclose(z.std(0), init_scale, rtol=0.05)


# ---- API: median, quantiles, Predictive, shapes ----------------------------------------------


def _shapes_model():
    """Scalar, vector, matrix and constrained sites, executed in non-alphabetical order."""
    pyro.sample("sigma", dist.HalfNormal(1.0))
    pyro.sample("w", dist.Normal(ops.zeros((2, 3)), 1.0).to_event(2))
    pyro.sample("p", dist.Beta(2.0, 3.0))
    with pyro.plate("k", 4):
        pyro.sample("a", dist.Normal(0.0, 1.0))


def test_shapes_of_median_quantiles_and_predictive(backend):
    model = backend.model(_shapes_model)
    guide = backend.guide("iaf", model)
    params = backend.fit(model, guide, (), steps=50)
    shapes = {"sigma": (), "w": (2, 3), "p": (), "a": (4,)}
    med = backend.median(guide, params, ())
    assert {k: v.shape for k, v in med.items()} == shapes
    q = backend.quantiles(guide, params, [0.1, 0.5, 0.9], ())
    assert {k: v.shape for k, v in q.items()} == {k: (3, *s) for k, s in shapes.items()}
    for k in shapes:  # quantiles ordered, the 0.5 quantile is the median, constrained supports hold
        assert np.all(np.diff(q[k], axis=0) >= 0)
        np.testing.assert_allclose(q[k][1], med[k], rtol=1e-5)
    assert med["sigma"] > 0 and 0 < med["p"] < 1
    again = backend.median(guide, params, ())
    for k in shapes:  # fixed default seed: repeated calls agree exactly
        np.testing.assert_array_equal(again[k], med[k])
    pred = backend.predictive(model, guide, params, (), 7, sites=list(shapes))
    for k, s in shapes.items():
        assert pred[k].reshape(7, -1).shape == (7, int(np.prod(s, dtype=int))), (k, pred[k].shape)


def test_median_and_quantiles_match_exact_posterior(backend):
    D = 10
    ref = linear_gaussian_reference(D, 0.1)
    model = backend.model(linear_gaussian_model)
    guide = backend.guide("iaf", model)
    args = _lg_args(backend, D, 0.1)
    params = backend.fit(model, guide, args, lr=1e-2, steps=2000)
    med = backend.median(guide, params, args)["x"]
    q = backend.quantiles(guide, params, [0.1587, 0.8413], args)["x"]  # mean -/+ one sd
    # Monte Carlo error of a 4000-sample quantile is ~0.03 sd; the fit itself adds a little
    np.testing.assert_allclose(med, ref.mean, atol=0.15 * ref.sd.max())
    np.testing.assert_allclose((q[1] - q[0]) / 2, ref.sd, rtol=0.1)


def test_single_latent_dimension(backend):
    """NumPyro's built-in refuses D=1; ours fits it (exact posterior of x given y, D=1)."""
    ref = linear_gaussian_reference(1, 0.1)
    model = backend.model(linear_gaussian_model)
    guide = backend.guide("iaf", model)
    args = _lg_args(backend, 1, 0.1)
    params = backend.fit(model, guide, args, lr=3e-3, steps=1500, particles=8)
    z = backend.latent_samples(guide, params, args, 20000)
    np.testing.assert_allclose(z.mean(), ref.mean[0], atol=0.05)
    np.testing.assert_allclose(z.std(), ref.sd[0], rtol=0.08)


def test_defaults_follow_the_latent_dimension(backend, monkeypatch):
    """``stl``/``num_flows``/``gated`` left None resolve at set-up: the path-derivative gradient
    with one affine step up to ``STL_MAX_DIM``, two gated steps without it; given values win."""
    model = backend.model(linear_gaussian_model)
    args = _lg_args(backend, 3, 0.1)

    def resolved(**kwargs):
        guide = backend.guide("iaf", model, **kwargs)
        backend.fit(model, guide, args, steps=1)
        return guide.stl, guide.num_flows, guide.gated

    assert resolved() == (True, 1, False)
    assert resolved(stl=False) == (False, 2, True)
    assert resolved(num_flows=3, gated=True) == (True, 3, True)
    monkeypatch.setattr(backend.pkg.masks, "STL_MAX_DIM", 2)  # D=3 is now "large"
    assert resolved() == (False, 2, True)


def test_several_particles_and_other_losses(backend):
    model = backend.model(linear_gaussian_model)
    args = _lg_args(backend, 5, 0.1)
    losses = {}
    if backend.name == "pyro":
        from pyro.infer import JitTrace_ELBO, TraceGraph_ELBO

        losses = {"jit": JitTrace_ELBO(), "tracegraph": TraceGraph_ELBO()}
    else:
        from numpyro.infer import TraceGraph_ELBO

        losses = {"tracegraph": TraceGraph_ELBO()}  # fit() always compiles the step with jit
    log_z = linear_gaussian_reference(5, 0.1).log_evidence
    for name, loss in [("particles", None), *losses.items()]:
        guide = backend.guide("iaf", model)
        params = backend.fit(model, guide, args, steps=600, particles=4 if loss is None else 1, loss=loss)
        gap = log_z - backend.elbo(model, guide, params, args, num_particles=500)
        assert 0 - 0.1 < gap < 0.5, (name, gap)


# ---- errors -------------------------------------------------------------------------------------


def _discrete_model():
    pyro.sample("mu", dist.Normal(0.0, 1.0))
    pyro.sample("k", dist.Bernoulli(0.3))


def _no_latent_model(y):
    pyro.sample("y", dist.Normal(0.0, 1.0), obs=y)


def _subsampled_model(y):
    with pyro.plate("data", 100, subsample_size=10):
        pyro.sample("theta", dist.Normal(0.0, 1.0))


def _dynamic_model(y):
    x = pyro.sample("x", dist.Normal(ops.zeros_like(y), 1.0).to_event(1))
    pyro.sample("y", dist.Normal(x, 1.0).to_event(1), obs=y)


def test_errors_name_the_site_and_the_fix(backend):
    with pytest.raises(ValueError, match=r"discrete latent site 'k'.*block"):
        backend.fit(
            backend.model(_discrete_model), backend.guide("iaf", backend.model(_discrete_model)), (), steps=1
        )
    model = backend.model(_no_latent_model)
    with pytest.raises(ValueError, match="no latent sample sites"):
        backend.fit(model, backend.guide("iaf", model), (backend.array(1.0),), steps=1)
    model = backend.model(_subsampled_model)
    with pytest.raises(ValueError, match=r"'theta'.*subsampled plate 'data'.*AutoAmortizedIAF"):
        backend.fit(model, backend.guide("iaf", model), (None,), steps=1)
    model = backend.model(_dynamic_model)
    guide = backend.guide("iaf", model)
    params = backend.fit(model, guide, (backend.array(np.zeros(3)),), steps=2)
    with pytest.raises(ValueError, match=r"latent site 'x' had shape \(3,\).*now has \(5,\)"):
        backend.elbo(model, guide, params, (backend.array(np.zeros(5)),), num_particles=2)
    model = backend.model(linear_gaussian_model)
    with pytest.raises(backend.pkg.NonFiniteLossError, match=r"at step [1-9]\b.*learning rate"):
        # Adam moves every parameter by ~lr per step: lr=1e25 overflows float32 at once
        backend.fit(model, backend.guide("iaf", model), _lg_args(backend, 2, 0.1), lr=1e25, steps=20)
    with pytest.raises(ValueError, match="init_scale"):
        backend.guide("iaf", model, init_scale=0.0)


# ---- save / load and cross-backend ----------------------------------------------------------------


def _two_site_model():
    """Sites run in non-alphabetical order (zeta before alpha)."""
    z = pyro.sample("zeta", dist.Normal(ops.zeros(3), 1.0).to_event(1))
    a = pyro.sample("alpha", dist.LogNormal(0.0, 0.5))
    pyro.sample("obs", dist.Normal(z.sum(-1) * a, 1.0), obs=2.0 * ops.ones(()))


def test_guide_params_convert_across_backends_by_site_name():
    import jax
    import pyro as real_pyro
    import torch
    from backends import NumPyroAdapter, PyroAdapter

    pb, nb = PyroAdapter(), NumPyroAdapter()
    real_pyro.clear_param_store()
    pmodel = pb.model(_two_site_model)
    pguide = pb.guide("iaf", pmodel)
    pb.fit(pmodel, pguide, (), steps=300)
    state = pb.pkg.export_guide_params(pguide)
    assert [name for name, _ in state["sites"]] == ["zeta", "alpha"]
    nmodel = nb.model(_two_site_model)
    nguide = nb.guide("iaf", nmodel)
    nparams = nb.pkg.import_guide_params(nguide, state)
    eps = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    with torch.no_grad():
        z_p = pguide.get_transform()(torch.tensor(eps)).numpy()
    z_n = np.asarray(nguide.get_transform(nparams)(jax.numpy.asarray(eps)))
    np.testing.assert_allclose(z_n, z_p, atol=1e-5)
    # and back: NumPyro -> Pyro gives the same samples again
    real_pyro.clear_param_store()
    pguide2 = pb.guide("iaf", pmodel)
    pb.pkg.import_guide_params(pguide2, nb.pkg.export_guide_params(nguide, nparams))
    with torch.no_grad():
        np.testing.assert_allclose(pguide2.get_transform()(torch.tensor(eps)).numpy(), z_p, atol=1e-6)


def test_params_save_and_load_exactly(backend, tmp_path):
    model = backend.model(_two_site_model)
    guide = backend.guide("iaf", model)
    params = backend.fit(model, guide, (), steps=100)
    before = backend.latent_samples(guide, params, (), 50, seed=3)
    path = tmp_path / "params"
    if backend.name == "pyro":
        import pyro as real_pyro

        real_pyro.get_param_store().save(path)
        real_pyro.clear_param_store()
        real_pyro.get_param_store().load(path)
        guide2 = guide
    else:
        import pickle

        path.write_bytes(pickle.dumps(params))
        params = pickle.loads(path.read_bytes())
        guide2 = backend.guide("iaf", model)
        backend.fit(model, guide2, (), steps=0)  # set up the new guide's structure
    after = backend.latent_samples(guide2, params, (), 50, seed=3)
    np.testing.assert_array_equal(after, before)
