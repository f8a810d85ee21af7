"""The accuracy command (``models.compare.accuracy``): a short fit scored against an exact reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.compare.accuracy import TOLERANCE, Recipe, fit_and_score, make_optim, psis_moment_errors, table
from models.compare.evidence import moment_errors
from models.targets import get_model


def test_short_fit_of_a_conjugate_model_is_scored_against_the_exact_posterior(backend):
    """linear_gaussian (D=3, exact posterior): 200 steps of 4 particles with a decaying step size
    bring the moments within a loose bound; the errors are the harness's ``moment_errors``."""
    spec = get_model("linear_gaussian", backend=backend.name, D=3)
    row = fit_and_score(spec, Recipe(steps=200, particles=4, lr=5e-2, final_lr=5e-3), draws=500)
    assert row["note"] == ""
    assert math.isfinite(row["fit_s"]) and row["fit_s"] > 0
    assert row["mean_err"] < 0.2 and row["sd_err"] < 0.2, row
    assert row["pass"] == (row["mean_err"] <= TOLERANCE and row["sd_err"] <= TOLERANCE)
    assert row["khat"] < 0.7 and row["psis_mean_err"] < 0.2 and row["psis_sd_err"] < 0.2, row


def test_step_size_decays_from_lr_to_final_lr(backend):
    """Adam under a constant gradient moves by its step size each step: ``lr`` first, then
    ``lr * (final_lr / lr) ** (t / steps)`` (NumPyro); Pyro's ``ClippedAdam`` gets ``lrd``."""
    recipe = Recipe(steps=50, lr=1e-2, final_lr=1e-4)
    optim = make_optim(backend.name, recipe)
    if backend.name == "numpyro":
        import jax
        import jax.numpy as jnp

        state, path, update = optim.init(jnp.zeros(())), [0.0], jax.jit(optim.update)
        for _ in range(recipe.steps):
            state = update(jnp.ones(()), state)
            path.append(float(optim.get_params(state)))
        moves = -np.diff(path)
        assert moves[0] == pytest.approx(1e-2, rel=1e-3)
        assert moves[-1] == pytest.approx(1e-2 * 1e-2 ** (49 / 50), rel=1e-3)
    else:
        args = optim.pt_optim_args
        assert args["lr"] * args["lrd"] ** recipe.steps == pytest.approx(1e-4, rel=1e-6)
        assert math.isinf(args["clip_norm"])


def test_psis_moments_with_equal_weights_are_the_plain_moments():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2000, 3)) * [1.0, 2.0, 3.0]
    mean, sd = np.zeros(3), np.array([1.0, 2.0, 3.0])
    assert psis_moment_errors(z, np.zeros(2000), mean, sd) == pytest.approx(moment_errors(z, mean, sd))


def test_table_counts_the_passing_models():
    rows = [{"model": "a", "D": 2, "mean_err": 0.05, "sd_err": 0.09, "pass": True, "fit_s": 1.0,
             "nuts_s": 2.0, "ratio": 0.5},
            {"model": "b", "D": 3, "mean_err": 0.05, "sd_err": 0.2, "pass": False, "fit_s": 1.0}]
    text = table(rows)
    assert "| a | 2 | 0.050 | 0.090 | yes | 1.0 | 2.0 | 0.50 |" in text
    assert "1 of 2 pass" in text
