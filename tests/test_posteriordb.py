"""posteriordb targets: both backends' translations agree, the reference maps onto the latent
vector, small fits land near the reference, and (slow) NumPyro NUTS reproduces the reference draws.

Needs the database (``../shared/posteriordb`` or ``$POSTERIORDB_PATH``); without it every test
skips and says so.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from models.api import constrain, log_joint, to_numpy
from models.posteriordb import (
    POSTERIOR_NAMES,
    PosteriorDBNotFound,
    available,
    get_posterior,
    load_data,
    posteriordb_path,
    program_of,
)
from models.posteriordb.prims import unconstrain


def _why_missing() -> str:
    try:
        posteriordb_path()
    except PosteriorDBNotFound as exc:
        return str(exc)
    return ""


pytestmark = pytest.mark.skipif(not available(), reason=_why_missing() or "posteriordb found")

#: parity cases in the default suite (about 2 s each): the forward algorithm, a scan with a
#: parameter-dependent bound, a hierarchical model; the other 42 run under ``-m slow``
FAST = ("eight_schools-eight_schools_noncentered", "hmm_example-hmm_example", "garch-garch11")
CASES = [pytest.param(n, marks=() if n in FAST else pytest.mark.slow) for n in POSTERIOR_NAMES]


@contextlib.contextmanager
def _float64():
    import jax
    import torch

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True):
            yield
    finally:
        torch.set_default_dtype(old)


def _unconstrained_log_density(spec, z: np.ndarray) -> float:
    """``log p(T(z), data) + log |det dT/dz|`` with the Jacobian from the backend's ``biject_to``."""
    values = constrain(spec, z)
    if spec.backend == "pyro":
        from torch.distributions import biject_to
    else:
        from numpyro.distributions.transforms import biject_to
    from models.api import _prior_trace

    sites = _prior_trace(spec)
    lp = log_joint(spec, values)
    for name, _ in spec.sites:
        t = biject_to(sites[name]["fn"].support)
        lp += float(np.sum(to_numpy(t.log_abs_det_jacobian(t.inv(values[name]), values[name]))))
    return lp


@pytest.mark.parametrize("name", CASES)
def test_both_backends_same_log_density_and_reference_mapping(name):
    """At 3 points near the reference mean (float64): Pyro's and NumPyro's unconstrained log
    densities agree (1e-8 relative; the ODEs too: one solver in both), and our NumPy
    ``unconstrain`` inverts each backend's ``biject_to``."""
    program = program_of(name)
    kinds = {n: k for n, _, k in program.sites(load_data(name.rsplit("-", 1)[0]))}
    with _float64():
        specs = {b: get_posterior(name, backend=b) for b in ("pyro", "numpyro")}
        ref = specs["pyro"].reference
        assert [n for n, _ in specs["pyro"].sites] == sorted(kinds)  # execution order = sorted
        rng = np.random.default_rng(0)
        lps = []
        for _ in range(3):
            z = ref.mean + 0.5 * ref.sd * rng.standard_normal(ref.latent_dim)
            lp = {b: _unconstrained_log_density(s, z) for b, s in specs.items()}
            assert np.isfinite(lp["pyro"]), lp
            tol = 1e-8 * max(1.0, abs(lp["pyro"]))
            assert abs(lp["pyro"] - lp["numpyro"]) <= tol, lp
            lps.append(lp["pyro"])
            for b, s in specs.items():
                values = constrain(s, z)
                back = np.concatenate([unconstrain(kinds[n], to_numpy(values[n])).reshape(-1)
                                       for n, _ in s.sites])
                np.testing.assert_allclose(back, z, rtol=1e-7, atol=1e-9, err_msg=b)
        assert len(set(lps)) == 3  # the latents matter


def test_registry_and_reference_shapes():
    """45 names, each program's sites match the reference draws; reachable through get_model."""
    from models.targets.registry import get_model

    on_disk = sorted(p.stem for p in (posteriordb_path() / "posteriors").glob("*.json"))
    assert list(POSTERIOR_NAMES) == on_disk and len(on_disk) == 45
    spec = get_model("eight_schools-eight_schools_noncentered", backend="numpyro")
    assert spec.sites == (("mu", ()), ("tau", ()), ("theta_trans", (8,)))
    ref = spec.reference
    assert ref.source == "posteriordb" and ref.info["draws"] == 10_000
    # the well-known eight-schools posterior: mu about 4.4 (sd 3.3), log tau below log 5
    assert 3.9 < ref.mean[0] < 4.9 and 3.0 < ref.sd[0] < 3.6 and ref.mean[1] < np.log(5.0)
    with pytest.raises(ValueError, match="takes no arguments"):
        get_model("eight_schools-eight_schools_noncentered", D=3)


def test_missing_database_raises_clear_error(monkeypatch, tmp_path):
    from models.posteriordb import loader

    monkeypatch.setenv("POSTERIORDB_PATH", str(tmp_path))
    with pytest.raises(PosteriorDBNotFound, match="POSTERIORDB_PATH"):
        loader.posteriordb_path()
    assert not available()


#: (posterior, backend, steps, max |mean error| in reference sd): small fits of our AutoIAFNormal
#: (Adam 1e-2, 1 particle); the first in the default suite, the others (slower set-up) under slow.
#: hmm_example needs the default 2000 steps: at 1000 its two mu coordinates are still 2.3 sd off
FITS = [pytest.param("gp_pois_regr-gp_regr", "numpyro", 300, 0.5, id="gp_regr-numpyro"),
        pytest.param("gp_pois_regr-gp_regr", "pyro", 300, 0.5, id="gp_regr-pyro", marks=pytest.mark.slow),
        pytest.param("hmm_example-hmm_example", "numpyro", 2000, 0.3, id="hmm_example-numpyro",
                     marks=pytest.mark.slow),
        pytest.param("eight_schools-eight_schools_noncentered", "numpyro", 1500, 0.3,
                     id="eight_schools_nc-numpyro", marks=pytest.mark.slow)]


@pytest.mark.parametrize("name,backend_name,steps,tol", FITS)
def test_iaf_fits_small_posteriors_near_the_reference(name, backend_name, steps, tol):
    """A finite ELBO, every mean within ``tol`` reference sd, every sd within a factor of 2."""
    from models.compare.cells import run_cell

    spec = get_posterior(name, backend=backend_name)
    result = run_cell(spec, "iaf", seed=0, steps=steps, lr=1e-2, particles=1, eval_samples=300)
    assert result.diverged_step is None and np.isfinite(result.log_w).all()
    ref = spec.reference
    mean_err = np.abs(result.z.mean(0) - ref.mean) / ref.sd
    sd_ratio = result.z.std(0) / ref.sd
    assert mean_err.max() < tol, mean_err
    assert 0.5 < sd_ratio.min() and sd_ratio.max() < 2.0, sd_ratio


@pytest.mark.parametrize("name", ["arma-arma11", "garch-garch11"])
def test_pyro_evaluation_scores_each_draw_alone(name):
    """The comparison's Pyro log weights of each draw equal that draw scored in a trace of its own.
    These two models sum their likelihood over every axis, so a vectorized batch of draws mixed
    them without an error (the 1000-draw ELBO came out at ~1e4-1e7 times the truth)."""
    import torch
    from backends import pyro_diagonal_guide
    from pyro import poutine

    from models.compare.cells import _pyro_weights

    spec = get_posterior(name, backend="pyro")
    args, kwargs = spec.model_args, spec.model_kwargs
    guide = pyro_diagonal_guide(spec)
    log_w, z, _ = _pyro_weights(spec, guide, 4)
    alone = []
    with torch.no_grad():
        for zi in z:
            g = poutine.trace(poutine.condition(guide, {"_AutoDiagonalNormal_latent": torch.as_tensor(
                zi, dtype=torch.get_default_dtype())})).get_trace(*args, **kwargs)
            m = poutine.trace(poutine.replay(spec.model, trace=g)).get_trace(*args, **kwargs)
            alone.append(float(m.log_prob_sum() - g.log_prob_sum()))
    np.testing.assert_allclose(log_w, alone, rtol=1e-4, atol=1e-2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_with_16_particles_keeps_arma11_on_course(seed):
    """The accuracy recipe's settings (16 particles, Adam 1e-2 decaying to 1e-4) on arma11: early
    draws with |theta| > 1 make the residuals grow geometrically, the float32 loss reaches 1e35
    or overflows. Before fit's gradient guard, seed 0 raised NonFiniteLossError at step 698 and
    seeds 1 and 2 ended at losses 307.6 and -35.3 (Adam's second moment frozen by one outlier);
    the optimum is about -57."""
    import warnings

    from models.compare.accuracy import Recipe, make_optim
    from numpyro_iaf import AutoIAFNormal, fit

    spec = get_posterior("arma-arma11", backend="numpyro")
    guide = AutoIAFNormal(spec.model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a skipped step warns
        optim = make_optim("numpyro", Recipe(1000, 16, 1e-2, 1e-4))
        result = fit(spec.model, guide, *spec.model_args, optim=optim,
                     num_steps=1000, num_particles=16, seed=seed, progress_bar=False)
    final = float(np.mean(result.losses[-100:]))
    assert final < -50.0, (final, result.clipped_steps, result.skipped_steps)


def _nuts_case(name: str):
    from models.posteriordb.check import NOTES

    marks = [pytest.mark.slow]
    if name in NOTES:  # fails for the stated reason, not the translation
        marks.append(pytest.mark.xfail(reason=NOTES[name], strict=False))
    return pytest.param(name, marks=marks)


#: NUTS settings beyond the default single chain of 1000 + 2000, each with why
NUTS_SETTINGS: dict[str, dict] = {
    # one chain reaches an effective sample size of only ~360 here; the suite's XLA flags
    # (conftest.py) change the chain at the last bits and its sd error from 3.9% to 11.1%;
    # 4 chains: ESS ~1800, sd error 2.6%, mean error 0.025 sd (2026-12-07)
    "kilpisjarvi_mod-kilpisjarvi": {"chains": 4},
    # the reference's own sampler settings (adapt_delta 0.99; Stan ran 10 chains): at the default
    # 0.9 NUTS diverged (6 divergences in 4 chains, sd 16.1% off); at 0.99, 4 chains: no
    # divergence, mean error 0.027 sd, sd error 2.7%; one chain: 0.072 sd, 7.3% (2026-12-07)
    "one_comp_mm_elim_abs-one_comp_mm_elim_abs": {"chains": 4, "target_accept_prob": 0.99},
}


@pytest.mark.parametrize("name", [_nuts_case(n) for n in POSTERIOR_NAMES])
def test_nuts_reproduces_the_reference_draws(name):
    """The translation check: every coordinate's mean within 0.1 reference sd, sd within 10%."""
    import jax

    from models.posteriordb.check import check_one

    with jax.enable_x64(True):
        row = check_one(name, **NUTS_SETTINGS.get(name, {}))
    assert row["passed"], row
