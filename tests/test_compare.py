"""The comparison command: estimators, report writer, one end-to-end run, every model one cell."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.compare.cells import CellResult, run_cell
from models.compare.evidence import log_evidence_is, moment_errors, psis_khat
from models.compare.guides import make_guide
from models.compare.report import ROW_KEYS, nan_row, read_rows, summarize, write_report
from models.targets.linear_gaussian import (
    linear_gaussian_data,
    linear_gaussian_matrix,
    linear_gaussian_model,
    linear_gaussian_reference,
)
from models.targets.registry import MODELS, get_model

# ---- estimators on linear_gaussian: exact log p(y) and posterior ------------------------------


def _log_joint(x: np.ndarray, D: int) -> np.ndarray:
    """``log N(x; 0, I) + log N(y; A x, I)`` for ``x [N, D]`` (float64)."""
    A, y = linear_gaussian_matrix(D), linear_gaussian_data(D)
    r = y - x @ A.T
    return -0.5 * (x**2).sum(1) - 0.5 * (r**2).sum(1) - D * np.log(2 * np.pi)


def _gaussian_draws(mean, cov, n, seed):
    """``z [n, D] ~ N(mean, cov)`` and ``log q(z)``."""
    L = np.linalg.cholesky(cov)
    eps = np.random.default_rng(seed).standard_normal((n, mean.size))
    z = mean + eps @ L.T
    log_q = -0.5 * (eps**2).sum(1) - np.log(np.diag(L)).sum() - 0.5 * mean.size * np.log(2 * np.pi)
    return z, log_q


@pytest.mark.parametrize("D", [1, 5, 20])
def test_is_log_evidence_exact_posterior_proposal(D):
    ref = linear_gaussian_reference(D)
    z, log_q = _gaussian_draws(ref.mean, ref.cov, 500, seed=D)
    log_z, se = log_evidence_is(_log_joint(z, D) - log_q)
    assert abs(log_z - ref.log_evidence) < 1e-8
    assert se < 1e-8


@pytest.mark.parametrize("inflate,seed", [(1.3, 0), (2.0, 1)])
def test_is_log_evidence_broad_proposal_within_se(inflate, seed):
    D = 5
    ref = linear_gaussian_reference(D)
    z, log_q = _gaussian_draws(ref.mean, inflate**2 * ref.cov, 4000, seed)
    log_w = _log_joint(z, D) - log_q
    log_z, se = log_evidence_is(log_w)
    assert 0 < se < 0.2
    assert abs(log_z - ref.log_evidence) < 4 * se
    assert np.mean(log_w) < ref.log_evidence - 0.1  # ELBO strictly below log Z
    assert psis_khat(log_w) < 0.5  # bounded weights: an over-dispersed proposal is good


def test_khat_large_for_narrow_proposal():
    D = 5
    ref = linear_gaussian_reference(D)
    z, log_q = _gaussian_draws(ref.mean, 0.4**2 * ref.cov, 4000, seed=3)
    assert psis_khat(_log_joint(z, D) - log_q) > 0.7


def test_log_evidence_is_edge_cases():
    assert math.isnan(log_evidence_is([0.0, float("nan")])[0])
    log_z, se = log_evidence_is([0.0, -np.inf])  # zero weight counts
    assert abs(log_z - np.log(0.5)) < 1e-12 and se > 0
    with pytest.raises(ValueError, match="at least 2"):
        log_evidence_is([1.0])


def test_moment_errors():
    rng = np.random.default_rng(0)
    mean, sd = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    z = mean + sd * rng.standard_normal((20000, 2))
    m_err, s_err = moment_errors(z, mean, sd)
    assert m_err < 0.03 and s_err < 0.03
    m_err, s_err = moment_errors(mean + 0.5 * sd + 2 * sd * rng.standard_normal((20000, 2)), mean, sd)
    assert abs(m_err - 0.5) < 0.05 and abs(s_err - 1.0) < 0.05


# ---- report writer ----------------------------------------------------------------------------


def _result(log_w, D=2, diverged=None):
    if diverged is not None:
        return CellResult(np.array([1.0, np.nan]), diverged_step=diverged)
    log_w = np.asarray(log_w, float)
    z = np.random.default_rng(0).standard_normal((log_w.size, D))
    return CellResult(np.array([3.0, 2.0]), log_w=log_w, z=z, ms_per_step=1.5, total_s=2.0)


def test_report_writer_rows_and_diverged(tmp_path):
    spec = get_model("banana", backend="numpyro")  # reference mean 0, log Z 0
    rng = np.random.default_rng(0)
    good = summarize([_result(rng.normal(-1, 0.1, 100)), _result(rng.normal(-1.2, 0.1, 100))],
                     model="banana", guide="diagonal", backend="numpyro", spec=spec)
    half = summarize([_result(rng.normal(-1, 0.1, 100)), _result(None, diverged=17)],
                     model="banana", guide="iaf", backend="numpyro", spec=spec)
    dead = summarize([_result(None, diverged=5), _result(None, diverged=9)],
                     model="banana", guide="multivariate", backend="pyro", spec=spec)
    broken = nan_row("banana", "iaf_builtin", "pyro", error="RuntimeError: boom")
    assert abs(good["elbo_mean"] + 1.1) < 0.05 and 0.1 < good["elbo_sd"] < 0.2
    assert good["logZ_is"] > good["elbo_mean"] and good["logZ_se"] > 0
    assert good["diverged_step"] is None and math.isfinite(good["mean_z_err"])
    assert half["diverged_step"] == 17 and half["diverged_seeds"] == 1 and math.isfinite(half["elbo_mean"])
    assert dead["diverged_step"] == 5 and dead["diverged_seeds"] == 2
    assert all(math.isnan(dead[k]) for k in ("elbo_mean", "logZ_is", "khat", "mean_z_err"))

    md, js = write_report([good, half, dead, broken], tmp_path, {"steps": 2})
    raw = json.loads(js.read_text())
    assert raw["settings"] == {"steps": 2} and len(raw["rows"]) == 4
    for row in raw["rows"]:
        assert set(ROW_KEYS) <= set(row)
    assert raw["rows"][2]["elbo_mean"] is None and raw["rows"][2]["diverged_step"] == 5
    assert raw["rows"][3]["error"] == "RuntimeError: boom"
    back = read_rows(js)
    assert math.isnan(back[2]["elbo_mean"]) and back[0]["elbo_mean"] == pytest.approx(good["elbo_mean"])
    text = md.read_text()
    assert text.count("\n| banana |") == 4
    assert "diverged at step 5 (2/2 seeds)" in text and "error: RuntimeError: boom" in text
    assert "| banana | pyro | multivariate | NaN | NaN |" in text


# ---- the command ------------------------------------------------------------------------------


def test_compare_end_to_end(tmp_path):
    import arviz as az

    from models.compare.harness import main

    rows = main(["--models", "linear_gaussian:D=3,funnel:D=3", "--guides", "diagonal,multivariate,nope",
                 "--backend", "pyro", "--steps", "150", "--lr", "0.05", "--seeds", "1",
                 "--eval-samples", "400", "--out", str(tmp_path), "--export-samples"])
    for name in ("report.md", "report.json", "elbo_linear_gaussian_D3_pyro.png",
                 "marginals_linear_gaussian_D3_pyro.png", "elbo_funnel_D3_pyro.png",
                 "marginals_funnel_D3_pyro.png"):
        assert (tmp_path / name).stat().st_size > 1000, name
    assert len(rows) == 6 and len(json.loads((tmp_path / "report.json").read_text())["rows"]) == 6
    by = {(r["model"], r["guide"]): r for r in rows}
    log_z = linear_gaussian_reference(3).log_evidence
    for guide in ("diagonal", "multivariate"):
        r = by[("linear_gaussian_D3", guide)]
        assert r["error"] is None and r["diverged_step"] is None
        assert log_z - 0.5 < r["elbo_mean"] < log_z + 0.05  # a bound, and close after 150 steps
        assert abs(r["logZ_is"] - log_z) < 0.2 and r["logZ_se"] > 0
        assert math.isfinite(r["khat"]) and r["ms_per_step"] > 0
    assert "Unknown guide 'nope'" in by[("funnel_D3", "nope")]["error"]  # reported, no crash
    idata = az.from_netcdf(tmp_path / "samples" / "linear_gaussian_D3_diagonal_pyro.nc")
    assert idata.posterior["x"].shape == (1, 400, 3)
    assert idata.posterior["latent_unconstrained"].shape == (1, 400, 3)


def test_diverging_guide_gives_nan_row(tmp_path):
    from models.compare.harness import run

    rows = run("funnel:D=3", "diagonal", backend="pyro", steps=30, seeds=1, lr=1e6, out=tmp_path,
               progress=False)
    assert rows[0]["diverged_step"] is not None and rows[0]["diverged_step"] < 30
    assert math.isnan(rows[0]["elbo_mean"]) and rows[0]["error"] is None
    assert "diverged at step" in (tmp_path / "report.md").read_text()


# ---- every registered model: one short cell per backend ---------------------------------------

#: NumPyro compiles every cell (~10 s of CPU each): these run in `make test`, the others in
#: `make test-slow`; Pyro runs every model in `make test`.
FAST_NUMPYRO = ("eight_schools",)


def _one_cell(name: str, backend_name: str) -> None:
    spec = get_model(name, backend=backend_name)
    res = run_cell(spec, "diagonal", seed=0, steps=20, lr=1e-2, particles=1, eval_samples=64)
    assert res.diverged_step is None and res.losses.shape == (20,)
    assert res.log_w.shape == (64,) and np.isfinite(res.log_w).all()
    assert res.z.shape == (64, spec.latent_dim) == (64, spec.reference.mean.shape[0])
    for site, shape in spec.sites:
        assert res.samples[site].shape == (64, *shape)
    row = summarize([res], model=name, guide="diagonal", backend=backend_name, spec=spec)
    # k-hat may be +inf (20 steps of sv_sp500 leave weights spread over thousands of nats), not NaN
    assert math.isfinite(row["mean_z_err"]) and not math.isnan(row["khat"])
    assert row["elbo_mean"] < row["logZ_is"] + 1e-9  # mean <= log-mean-exp


@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_runs_one_cell(name, backend):
    if backend.name == "numpyro" and name not in FAST_NUMPYRO:
        pytest.skip("NumPyro compilation is slow: test_every_model_runs_one_cell_slow (-m slow)")
    _one_cell(name, backend.name)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in MODELS if n not in FAST_NUMPYRO])
def test_every_model_runs_one_cell_slow(name, backend):
    if backend.name == "pyro":
        pytest.skip("Pyro runs every model in test_every_model_runs_one_cell")
    _one_cell(name, backend.name)


def test_khat_ignores_zero_weights():
    rng = np.random.default_rng(0)
    log_w = rng.normal(0, 0.2, 1000)
    k = psis_khat(log_w)
    assert k < 0.5 and psis_khat(np.append(log_w, -np.inf)) == pytest.approx(k, abs=0.05)
    assert math.isnan(psis_khat(np.append(log_w, np.nan)))


def test_merge_reports(tmp_path):
    from models.compare.report import merge_reports

    a = nan_row("funnel", "iaf", "pyro", diverged_step=3)
    b = dict(nan_row("funnel", "iaf", "numpyro"), elbo_mean=-1.5)
    write_report([a], tmp_path / "a", {"seeds": 1})
    write_report([b], tmp_path / "b", {"seeds": 3})
    md, js = merge_reports([tmp_path / "a", tmp_path / "b"], tmp_path)
    rows = read_rows(js)
    assert [r["backend"] for r in rows] == ["pyro", "numpyro"] and rows[1]["elbo_mean"] == -1.5
    assert "seeds=1" in md.read_text() and "seeds=3" in md.read_text()


def test_bench_size_ablations_are_the_builtin_architecture(backend):
    """``iaf_builtin_size[_noskip]``: ours at the built-in's num_flows and widths, with/without skip."""
    D = 4
    model = backend.model(linear_gaussian_model)
    builtin = {"pyro": (1, (3 * D + 1,)), "numpyro": (3, (D, D))}[backend.name]
    for name, skip in (("iaf_builtin_size", True), ("iaf_builtin_size_noskip", False)):
        guide = make_guide(name, model, D, backend.name)
        assert isinstance(guide, backend.pkg.AutoIAFNormal), name
        assert (guide.num_flows, guide.hidden_dims, guide.skip) == (*builtin, skip), name


@pytest.mark.parametrize("backend_name", ["pyro", "numpyro"])
def test_lowrank_guide_is_the_frameworks_own(backend_name):
    from models.compare.guides import make_guide

    guide = make_guide("lowrank", lambda: None, 4, backend_name)
    assert type(guide).__name__ == "AutoLowRankMultivariateNormal"
    assert type(guide).__module__.split(".")[0] == backend_name


def test_posteriordb_report_replaces_one_backend_and_keeps_the_other(tmp_path):
    """Rerunning Pyro's side replaces Pyro's rows and run and keeps NumPyro's, row for row."""
    from models.compare.posteriordb_report import keep_other_backends, merge_runs

    def run(folder, backend, elbo, seeds):
        rows = [dict(nan_row(m, g, backend), elbo_mean=elbo) for m in ("a", "b") for g in ("iaf", "diagonal")]
        write_report(rows, tmp_path / folder, {"seeds": seeds})
        return merge_runs([tmp_path / folder])

    old = {"runs": run("np", "numpyro", -1.0, 3)["runs"] + run("py1", "pyro", -2.0, 1)["runs"],
           "rows": run("np", "numpyro", -1.0, 3)["rows"] + run("py1", "pyro", -2.0, 1)["rows"]}
    new = keep_other_backends(old, run("py3", "pyro", -3.0, 3))
    elbo = {(r["backend"], r["model"], r["guide"]): r["elbo_mean"] for r in new["rows"]}
    assert len(elbo) == len(new["rows"]) == 8
    assert {v for (b, *_), v in elbo.items() if b == "numpyro"} == {-1.0}
    assert {v for (b, *_), v in elbo.items() if b == "pyro"} == {-3.0}
    assert [(r["backends"], r["seeds"]) for r in new["runs"]] == [(["numpyro"], 3), (["pyro"], 3)]


def test_quality_time_against_a_named_rival(tmp_path):
    """``--rivals iaf_nostl``: ours (2 ms/step) passes the rival's final ELBO at step 300 of a
    linear ramp; the rival's 1000 steps at 1 ms take 1 s, ours 0.6 s: no slower."""
    from models.compare.quality_time import analyse, counts

    steps = 1000
    losses = np.tile(-np.linspace(-10.0, 0.0, steps), (3, 1))  # ELBO trace: -10 -> 0
    (tmp_path / "cells").mkdir()
    np.savez(tmp_path / "cells" / "m_numpyro_iaf.npz", losses=losses)
    rows = [dict(nan_row("m", "iaf", "numpyro"), elbo_mean=0.0, ms_per_step=2.0, total_s=3.0, latent_dim=4),
            dict(nan_row("m", "iaf_nostl", "numpyro"), elbo_mean=-7.0, ms_per_step=1.0, total_s=2.0)]
    write_report(rows, tmp_path, {"seeds": 3})
    (row,) = analyse(tmp_path, ("iaf_nostl",))
    # trailing mean of 100 steps reaches -7 where the ramp passes -7 + 0.5 * 99 * 10 / 999
    expected = int(np.ceil(0.3 * 999 + 49.5)) + 1
    assert row["rival"] == "iaf_nostl" and row["latent_dim"] == 4
    assert abs(row["reach_step"] - expected) <= 1
    assert row["ours_s"] == pytest.approx(row["reach_step"] * 2e-3) and row["rival_s"] == pytest.approx(1.0)
    assert row["no_slower"]
    assert counts([row], "numpyro", ("iaf_nostl",))["no_slower_iaf_nostl"] == 1
    assert analyse(tmp_path) == []  # the default rivals have no rows here
