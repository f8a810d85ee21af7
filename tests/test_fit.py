"""``fit`` never loses work: a NaN or overflow raises with the last finite point, and
``fit(..., init_params=error.params)`` resumes from it (both backends)."""

from __future__ import annotations

import numpy as np
import pytest
from test_conformance import Ns

WALL = 0.9  # the model's log density is NaN for w > WALL; its optimum is w = 0.8


def _walled_model(P: Ns):
    """``x ~ N(0, 1)``, ``y = 1 ~ N(x, 1)`` (posterior N(0.5, 0.5)), and a parameter ``w`` with
    log density ``-50 (w - 0.8)^2`` that becomes NaN past :data:`WALL`."""
    nan = P.array(np.nan)

    def model(y):
        x = P.ppl.sample("x", P.dist.Normal(0.0, 1.0))
        P.ppl.sample("y", P.dist.Normal(x, 1.0), obs=y)
        w = P.ppl.param("w", P.array(0.0))
        P.ppl.factor("wall", -50.0 * (w - 0.8) ** 2 + P.ops.where(w > WALL, nan, 0.0 * w))

    return model, (P.array(1.0),)


def _arrays(backend, params: dict) -> list[np.ndarray]:
    """Every parameter array (NumPyro's flow parameters are a pytree)."""
    if backend.name == "pyro":
        return [backend.numpy(v) for v in params.values()]
    import jax

    return [np.asarray(v) for v in jax.tree.leaves(params)]


def _fit(backend, model, guide, args, lr, steps, **kwargs):
    import importlib

    optim = importlib.import_module(f"{backend.name}.optim")
    adam = optim.Adam({"lr": lr}) if backend.name == "pyro" else optim.Adam(lr)
    return backend.pkg.fit(model, guide, *args, optim=adam, num_steps=steps, progress_bar=False, **kwargs)


def test_nan_keeps_the_last_finite_point_and_resume_finishes(backend):
    P = Ns(backend.name)
    model, args = _walled_model(P)
    guide = backend.pkg.AutoIAFNormal(model)
    # Adam moves w by ~lr per step: 0 -> 0.5 -> ~1.0 > WALL, whose loss is NaN (step 2)
    with pytest.raises(
        backend.pkg.NonFiniteLossError, match=r"loss became nan at step 2\b.*error\.params"
    ) as info:
        _fit(backend, model, guide, args, lr=0.5, steps=300)
    error = info.value
    assert error.step == 2 and len(error.losses) == 2 and np.isfinite(error.losses).all()
    w = float(backend.numpy(error.params["w"]) if backend.name == "pyro" else error.params["w"])
    assert 0.4 < w < 0.6, w  # the point of step 1 (its loss was finite), not the NaN one
    assert all(np.isfinite(v).all() for v in _arrays(backend, error.params))
    # resume with a smaller step size: w settles at its optimum, x at its posterior median
    result = _fit(backend, model, guide, args, lr=1e-2, steps=600, init_params=error.params)
    assert np.isfinite(result.losses).all()
    w = float(backend.numpy(result.params["w"]) if backend.name == "pyro" else result.params["w"])
    assert abs(w - 0.8) < 0.03, w
    median = backend.median(guide, result.params, args)["x"]
    assert abs(float(median) - 0.5) < 0.2, median


def test_a_failing_run_across_chunks_reports_its_first_step(monkeypatch):
    """NumPyro compiles CHUNK steps at a time: a run of skipped steps that begins in one chunk
    and reaches max_skipped_steps in a later one still names its first step and keeps the
    losses before it."""
    import importlib

    from backends import NumPyroAdapter

    monkeypatch.setattr(importlib.import_module("numpyro_iaf.fit"), "CHUNK", 3)
    backend = NumPyroAdapter()
    model, args = _walled_model(Ns("numpyro"))
    with pytest.raises(backend.pkg.NonFiniteLossError, match=r"at step 2\b") as info:
        _fit(backend, model, backend.pkg.AutoIAFNormal(model), args, lr=0.5, steps=300)
    assert info.value.step == 2 and len(info.value.losses) == 2 and np.isfinite(info.value.losses).all()
    assert 0.4 < float(info.value.params["w"]) < 0.6


def test_average_last_is_the_mean_of_the_last_iterates(backend):
    """``fit(..., average_last=k)``: the parameters are the mean of the last ``k`` iterates in
    unconstrained space, the same iterates that shorter runs of the same seed end at: the mean of
    ``loc`` (real) and the geometric mean of ``scale`` (positive, ``exp`` transform). Pyro's param
    store holds the average too; ``average_last`` outside ``[0, num_steps]`` is refused."""
    P = Ns(backend.name)

    def model(y):
        x = P.ppl.sample("x", P.dist.Normal(0.0, 1.0))
        P.ppl.sample("y", P.dist.Normal(x, 1.0), obs=y)

    def guide(y):
        loc = P.ppl.param("loc", P.array(0.3))
        scale = P.ppl.param("scale", P.array(0.5), constraint=P.constraints.positive)
        P.ppl.sample("x", P.dist.Normal(loc, scale))

    def run(steps, average_last=0):
        if backend.name == "pyro":
            import pyro

            pyro.clear_param_store()
        result = _fit(backend, model, guide, (P.array(1.0),), 0.1, steps, average_last=average_last)
        return {k: float(backend.numpy(v) if backend.name == "pyro" else v) for k, v in result.params.items()}

    ends = [run(n) for n in (4, 5, 6)]
    averaged = run(6, average_last=3)
    assert ends[0]["loc"] != ends[2]["loc"]  # the iterates differ
    np.testing.assert_allclose(averaged["loc"], np.mean([e["loc"] for e in ends]), rtol=1e-5)
    geometric = np.exp(np.mean([np.log(e["scale"]) for e in ends]))
    np.testing.assert_allclose(averaged["scale"], geometric, rtol=1e-5)
    if backend.name == "pyro":
        import pyro

        assert pyro.param("loc").item() == pytest.approx(averaged["loc"], rel=1e-6)
    with pytest.raises(ValueError, match="average_last must be in"):
        run(6, average_last=7)


def test_large_arrays_enter_the_compiled_chunk_as_arguments(monkeypatch):
    """NumPyro: ``jax.Array`` arguments of at least ``LARGE_ARRAY`` elements are passed to the
    compiled chunk rather than closed over (a constant of 1,000,000 x 50 compiled ~2 s slower);
    the fit is the same step for step, and a model that indexes its data by a subsampled plate
    and reads a keyword argument (a plain int, kept static) runs either way."""
    import importlib

    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from backends import NumPyroAdapter

    from numpyro_iaf import AutoIAFNormal, fit

    fit_module = importlib.import_module("numpyro_iaf.fit")
    x = jnp.linspace(-1.0, 1.0, 64)
    y = 0.5 * x + 0.1 * jnp.cos(7.0 * x)

    traced = []  # is x a tracer in the step (an argument of the compiled chunk) or a constant?

    def model(x, y, subsample_size=None):
        traced.append(isinstance(x, jax.core.Tracer))
        w = numpyro.sample("w", dist.Normal(0.0, 1.0))
        with numpyro.plate("data", x.shape[0], subsample_size=subsample_size) as idx:
            numpyro.sample("y", dist.Normal(w * x[idx], 0.1), obs=y[idx])

    def run():
        return fit(model, AutoIAFNormal(model), x, y, subsample_size=16, num_steps=100, seed=3,
                   optim=numpyro.optim.Adam(1e-2), progress_bar=False)

    large, rebuild = fit_module.split_large_arrays(((x, y), {"subsample_size": 16}))
    assert large == []  # 64 elements: closed over, as before
    closed = run()
    assert not any(traced)
    monkeypatch.setattr(fit_module, "LARGE_ARRAY", 10)
    large, rebuild = fit_module.split_large_arrays(((x, y), {"subsample_size": 16}))
    assert [a is b for a, b in zip(large, (x, y))] == [True, True]
    assert rebuild(["X", "Y"]) == (("X", "Y"), {"subsample_size": 16})
    traced.clear()
    passed = run()
    assert traced[0] is False and traced[-1] is True  # set-up outside jit; the steps inside
    np.testing.assert_allclose(passed.losses, closed.losses, rtol=1e-5)
    for a, b in zip(_arrays(NumPyroAdapter(), passed.params), _arrays(NumPyroAdapter(), closed.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_pyro_nan_loss_without_validation_keeps_the_step_before():
    """With validation off Pyro reports the NaN as the loss, not as a ValueError: same point kept."""
    import pyro
    from backends import PyroAdapter

    backend = PyroAdapter()
    pyro.clear_param_store()
    model, args = _walled_model(Ns("pyro"))
    with (
        pyro.validation_enabled(False),
        pytest.raises(backend.pkg.NonFiniteLossError, match="at step 2") as info,
    ):
        _fit(backend, model, backend.pkg.AutoIAFNormal(model), args, lr=0.5, steps=300)
    assert 0.4 < float(info.value.params["w"]) < 0.6
    assert (
        abs(float(pyro.param("w").detach()) - float(info.value.params["w"])) < 1e-7
    )  # the store is set back


def test_overflow_keeps_the_initial_point(backend):
    """lr=1e25: the first update sends every parameter to ~1e25 (finite), whose loss overflows;
    the steps after it are skipped until ``max_skipped_steps`` in a row, then the point kept is
    the last one with a finite loss, the initial one."""
    P = Ns(backend.name)
    model, args = _walled_model(P)
    guide = backend.pkg.AutoIAFNormal(model)
    with pytest.raises(backend.pkg.NonFiniteLossError, match=r"at step 1\b.*10 steps in a row") as info:
        _fit(backend, model, guide, args, lr=1e25, steps=30)
    w = info.value.params["w"]
    assert float(np.asarray(backend.numpy(w) if backend.name == "pyro" else w)) == 0.0
    assert all(np.isfinite(v).all() and np.abs(v).max() < 10 for v in _arrays(backend, info.value.params))
    assert len(info.value.losses) == 1 and np.isfinite(info.value.losses[0])


def _cliff_model(P: Ns, cliff: float):
    """``x ~ N(0, 1)``, ``y = 1 ~ N(x, 1)`` (posterior N(0.5, 0.5)), with a log density that is
    NaN for ``x > cliff`` (a square root of a negative number): a draw past it has a NaN loss and
    a NaN gradient."""

    def model(y):
        x = P.ppl.sample("x", P.dist.Normal(0.0, 1.0))
        P.ppl.sample("y", P.dist.Normal(x, 1.0), obs=y)
        P.ppl.factor("cliff", P.ops.where(x > cliff, P.ops.sqrt(cliff - x), 0.0 * x))

    return model, (P.array(1.0),)


@pytest.mark.filterwarnings("ignore:Encountered NaN")  # Pyro's word on each skipped step
def test_a_rare_nonfinite_draw_is_skipped(backend):
    """Draws past the cliff (about 2% of the posterior's) are skipped steps, not an error: the fit
    finishes at the posterior, says how many it skipped and warns."""
    P = Ns(backend.name)
    model, args = _cliff_model(P, 1.6)
    guide = backend.pkg.AutoIAFNormal(model)
    with pytest.warns(RuntimeWarning, match=r"fit skipped \d+ of 600 steps"):
        result = _fit(backend, model, guide, args, lr=2e-2, steps=600, seed=1)
    assert 1 <= len(result.skipped_steps) < 60, result.skipped_steps
    assert len(result.losses) == 600
    assert all(np.isfinite(v).all() for v in _arrays(backend, result.params))
    median = float(backend.median(guide, result.params, args)["x"])
    assert abs(median - 0.5) < 0.15, median


def _guarded_steps(backend, grads: list[np.ndarray], clip_factor: float, lr: float = 0.01) -> np.ndarray:
    """The parameter after each of Adam(lr) steps on ``grads`` through fit's gradient guard."""
    if backend.name == "numpyro":
        import jax
        import jax.numpy as jnp
        import numpyro

        from numpyro_iaf.guard import GuardedOptim

        optim = GuardedOptim(numpyro.optim.Adam(lr), clip_factor=clip_factor)
        state = optim.init(jnp.zeros(2))
        update = jax.jit(lambda g, state: optim.update(g, state, value=jnp.float32(0.0)))
        path = []
        for g in grads:
            state = update(jnp.asarray(g, jnp.float32), state)
            path.append(np.asarray(optim.get_params(state)))
        return np.array(path)
    import pyro
    import torch

    from pyro_iaf.guard import GuardedOptim

    w = torch.zeros(2, requires_grad=True)
    optim = GuardedOptim(pyro.optim.Adam({"lr": lr}), clip_factor=clip_factor)
    path = []
    for g in grads:
        w.grad = torch.as_tensor(g, dtype=torch.float32)
        optim([w])
        path.append(w.detach().numpy().copy())
    return np.array(path)


def test_the_guard_clips_an_outlier_gradient_that_would_freeze_adam(backend):
    """One gradient 1e15 times the others: unclipped, Adam's second moment takes it in and the
    parameter hardly moves for the next 100 steps; clipped at 10x the recent median, it moves as
    before. Without an outlier the guard changes nothing (bit for bit)."""
    rng = np.random.default_rng(0)
    normal = [np.array([1.0, -1.0]) * (1 + 0.1 * rng.standard_normal()) for _ in range(130)]
    outlier = normal[:30] + [np.array([1e15, 0.0])] + normal[30:]
    frozen = _guarded_steps(backend, outlier, np.inf)
    guarded = _guarded_steps(backend, outlier, 10.0)
    moved_frozen = frozen[40, 0] - frozen[-1, 0]  # the 90 steps after the outlier's momentum
    moved_guarded = guarded[40, 0] - guarded[-1, 0]
    assert moved_frozen < 0.05, moved_frozen  # 90 steps of lr=0.01 would move it by ~0.9
    assert moved_guarded > 0.4, moved_guarded  # Adam still feels the clipped step (10x the median)
    # the second coordinate never saw the outlier: it moved by ~lr a step in both
    assert guarded[-1, 1] > 1.2 and frozen[-1, 1] > 1.2
    unclipped = _guarded_steps(backend, normal, np.inf)
    np.testing.assert_array_equal(_guarded_steps(backend, normal, 10.0), unclipped)


@pytest.mark.filterwarnings("ignore:Encountered NaN")  # Pyro's word on each skipped step
def test_guarded_optim_serves_a_plain_svi(backend):
    """``<pkg>.guard.GuardedOptim`` wraps the framework's optimiser for a plain ``SVI``: the draws
    past the cliff are skipped there too, and the parameters stay finite (with plain Adam in its
    place they become NaN)."""
    P = Ns(backend.name)
    model, args = _cliff_model(P, 1.6)
    guide = backend.pkg.AutoIAFNormal(model)
    if backend.name == "numpyro":
        import jax
        import numpyro
        from numpyro.infer import SVI, Trace_ELBO

        from numpyro_iaf.guard import GuardedOptim

        svi = SVI(model, guide, GuardedOptim(numpyro.optim.Adam(2e-2)), Trace_ELBO())
        result = svi.run(jax.random.PRNGKey(1), 600, *args, progress_bar=False)
        losses, params = np.asarray(result.losses), [np.asarray(v) for v in jax.tree.leaves(result.params)]
    else:
        import pyro
        from pyro.infer import SVI, Trace_ELBO

        from pyro_iaf.guard import GuardedOptim

        pyro.set_rng_seed(1)
        svi = SVI(model, guide, GuardedOptim(pyro.optim.Adam({"lr": 2e-2})), Trace_ELBO())
        with pyro.validation_enabled(False):  # the NaN factor is the point, not a validation error
            losses = np.array([svi.step(*args) for _ in range(600)])
        params = [backend.numpy(v) for v in pyro.get_param_store().values()]
        result = None
    assert (~np.isfinite(losses)).sum() >= 1  # some draws were past the cliff
    assert all(np.isfinite(v).all() for v in params)
    median = float(backend.median(guide, result.params if result else None, args)["x"])
    assert abs(median - 0.5) < 0.15, median
