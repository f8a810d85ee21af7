"""The VAE of models.vae on the 8x8 digits: densities, training, IS bounds, checkpoints, parity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.vae import VAEConfig, load, make_vae
from models.vae.convert import convert
from models.vae.train import evaluate, fit

SMALL = dict(latent_dim=8, context_dim=8, hidden=64, width=32, flows=2, batch_size=50, lr=3e-3)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny networks: PyTorch's second thread only spins against the other processes here."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def perturbed(vae, scale: float = 0.3, seed: int = 0, prefix: str = "iaf."):
    """Move the flow's weights by ``scale * N(0, 1)`` so that it is far from the identity."""
    rng = np.random.default_rng(seed)
    flat = vae.export_weights()
    for k, v in flat.items():
        if k.startswith(prefix):
            flat[k] = (v + scale * rng.standard_normal(v.shape)).astype(v.dtype)
    vae.load_weights(flat)
    return vae


def log_normal(x):
    return -0.5 * (x**2).sum(-1) - 0.5 * x.shape[-1] * math.log(2 * math.pi)


@pytest.mark.parametrize("posterior", ["iaf", "diagonal"])
def test_guide_log_q_matches_change_of_variables(backend, digits, posterior):
    """log q(z|x) of the traced guide = log N(eps) - log|det dz/deps| (autodiff Jacobian)."""
    vae = perturbed(make_vae(backend.name, VAEConfig(posterior=posterior, **SMALL), digits.side))
    rng = np.random.default_rng(1)
    site = "z0" if posterior == "iaf" else "z"
    for x1 in digits.test[:3]:
        eps = rng.standard_normal(8).astype(np.float32)
        z0, z, jac = vae.eps_to_z(x1, eps)
        _, log_q = vae.log_weights(x1[None], fixed={site: z0[None]})
        sign, logdet = np.linalg.slogdet(jac.astype(np.float64))
        assert sign > 0
        expected = log_normal(eps.astype(np.float64)) - logdet
        np.testing.assert_allclose(log_q[0], expected, rtol=0, atol=2e-3)
        if posterior == "iaf":  # the flow moved z away from z0 (far from the identity)
            assert np.abs(z - z0).max() > 0.05
            assert np.abs(np.log(np.abs(np.diag(jac)))).max() > 0.05


_TRAINED: dict = {}


def test_one_epoch_lowers_the_loss(backend, digits):
    cfg = VAEConfig(posterior="iaf", free_bits=0.05, **SMALL)
    vae = make_vae(backend.name, cfg, digits.side)
    x = digits.test[:100]
    before = evaluate(vae, x, 16)["test_elbo"]
    vae, history = fit(backend.name, cfg, digits, 1, progress=False, vae=vae)
    after = evaluate(vae, x, 16)["test_elbo"]
    assert after > before + 2.0, (before, after)
    assert np.isfinite(history["loss"][0])
    _TRAINED[backend.name] = vae


def test_importance_sampling_bounds(backend, digits):
    """E[IS_64] >= E[IS_1] (tighter) and E[IS_1] = E[log w] = ELBO, up to noise."""
    vae = _TRAINED.get(backend.name) or make_vae(backend.name, VAEConfig(**SMALL), digits.side)
    x = digits.test[:100]
    is1 = evaluate(vae, x, 1, per_image=True)
    is64 = evaluate(vae, x, 64, per_image=True)
    diff = is64["log_likelihood"] - is1["log_likelihood"]  # paired over images
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    assert diff.mean() > max(3 * se, 0.1), (diff.mean(), se)
    assert is64["test_log_likelihood"] > is64["test_elbo"] + 0.1
    # IS with one sample is a draw of log w: its mean agrees with the 64-sample ELBO within noise
    d1 = is1["log_likelihood"] - is64["elbo"]
    assert abs(d1.mean()) < 4 * d1.std(ddof=1) / math.sqrt(len(d1)) + 0.05
    assert is64["test_log_likelihood"] < 0


def test_checkpoint_resume_takes_the_same_steps(backend, digits, tmp_path):
    cfg = VAEConfig(posterior="iaf", free_bits=0.05, **SMALL)
    x = digits.test[:5]
    straight, h1 = fit(backend.name, cfg, digits, 2, tmp_path / "a", progress=False)
    w1, draw1 = straight.export_weights(), straight.log_weights(x)[1]  # next guide draw
    fit(backend.name, cfg, digits, 1, tmp_path / "b", progress=False)
    resumed, h2 = fit(backend.name, cfg, digits, 2, tmp_path / "b", resume=True, progress=False)
    w2, draw2 = resumed.export_weights(), resumed.log_weights(x)[1]
    assert h1["loss"] == h2["loss"]
    for k in w1:
        np.testing.assert_array_equal(w1[k], w2[k], err_msg=k)
    np.testing.assert_array_equal(draw1, draw2)  # the RNG state was restored too
    fresh = make_vae(backend.name, cfg, 8).export_weights()
    assert not np.array_equal(w1["encoder.l0_w"], fresh["encoder.l0_w"])  # training moved it


class _RunsCode:
    """Unpickling this would create the file ``path`` (a stand-in for any code in a pickle)."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_is_data_and_old_pickles_are_refused(digits, tmp_path):
    import json
    import pickle

    cfg = VAEConfig(posterior="iaf", **SMALL)
    fit("pyro", cfg, digits, 1, tmp_path / "new", progress=False)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["checkpoint.json", "checkpoint.npz"]
    meta = json.loads((tmp_path / "new" / "checkpoint.json").read_text())
    assert meta["state"]["epoch"] == 1 and meta["state"]["backend"] == "pyro"
    with np.load(tmp_path / "new" / "checkpoint.npz", allow_pickle=False) as f:
        assert any("encoder" in k and "l0_w" in k for k in f.files)
        assert any("optim" in k and "exp_avg" in k for k in f.files)
    old = tmp_path / "old"
    old.mkdir()
    ran = tmp_path / "code-ran"
    (old / "checkpoint.pkl").write_bytes(pickle.dumps(_RunsCode(ran)))
    with pytest.raises(ValueError, match="older version.*another --out"):
        fit("pyro", cfg, digits, 2, old, resume=True, progress=False)
    assert not ran.exists()


@pytest.mark.parametrize(
    "arch,posterior,side",
    [("mlp", "iaf", 8), ("resnet", "iaf", 28), ("resnet", "diagonal", 8)],
)
def test_cross_backend_parity(arch, posterior, side):
    """Weights converted NumPyro -> Pyro give the same log p(x, z) and log q(z|x) at fixed noise."""
    cfg = VAEConfig(arch=arch, posterior=posterior, **SMALL)
    src = perturbed(make_vae("numpyro", cfg, side), seed=2)
    dst = convert(src, "pyro")
    flat, back = src.export_weights(), convert(dst, "numpyro").export_weights()
    for k in flat:
        np.testing.assert_array_equal(flat[k], back[k], err_msg=k)
    rng = np.random.default_rng(3)
    x = (rng.random((6, side * side)) < 0.3).astype(np.float32)
    site = "z0" if posterior == "iaf" else "z"
    fixed = {site: rng.standard_normal((6, 8)).astype(np.float32)}
    lp_n, lq_n = src.log_weights(x, fixed=fixed)
    lp_p, lq_p = dst.log_weights(x, fixed=fixed)
    np.testing.assert_allclose(lp_p, lp_n, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lq_p, lq_n, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lp_p - lq_p, lp_n - lq_n, rtol=1e-5, atol=1e-3)
    z = rng.standard_normal((4, 8)).astype(np.float32)
    np.testing.assert_allclose(dst.decode_probs(z), src.decode_probs(z), atol=1e-5)


@pytest.mark.parametrize("posterior", ["iaf", "diagonal"])
def test_plain_baseline_computes_our_elbo(backend, digits, posterior):
    """The speed benchmark's plain loop (no PPL) gives our log p(x, z) and log q(z|x) for the
    same weights and noise, so its time measures our overhead, not another model."""
    from models.vae.plain import PLAIN

    cfg = VAEConfig(posterior=posterior, **SMALL)
    ours = perturbed(make_vae(backend.name, cfg, digits.side), seed=4)
    plain = PLAIN[backend.name](cfg, digits.side)
    plain.load_weights(ours.export_weights())
    x = digits.test[:6]
    eps = np.random.default_rng(5).standard_normal((6, 8)).astype(np.float32)
    lp, lq, z0 = plain.log_weights(x, eps)
    lp_ours, lq_ours = ours.log_weights(x, fixed={"z0" if posterior == "iaf" else "z": z0})
    np.testing.assert_allclose(lp, lp_ours, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(lq, lq_ours, rtol=1e-5, atol=1e-3)
    assert np.ptp(lq) > 1.0  # distinct images give distinct values (not a vacuous match)


def test_free_bits_penalty(backend, digits):
    """Above every latent's KL, raising lambda by 10 raises the loss by D * 10 nats per image."""
    x = digits.test[:50]
    losses = []
    for lam in (50.0, 60.0):
        vae = make_vae(backend.name, VAEConfig(free_bits=lam, **SMALL), digits.side)
        if backend.name == "pyro":
            import torch

            torch.manual_seed(0)  # the same draws of z for both
        losses.append(vae.loss(x))
    np.testing.assert_allclose(losses[1] - losses[0], 8 * 10.0, rtol=1e-4)


@pytest.mark.slow  # ~35 s of CPU for both backends (the autoguide's eager set-up); make test-slow
def test_auto_guide_trains_and_scores(backend, digits):
    """``--guide auto``: AutoAmortizedIAF with our encoder; trains, and IS_16 > ELBO."""
    cfg = VAEConfig(guide="auto", **SMALL)
    vae = make_vae(backend.name, cfg, digits.side)
    x = digits.test[:100]
    before = evaluate(vae, x, 16)
    vae, _ = fit(backend.name, cfg, digits, 1, progress=False, vae=vae)
    after = evaluate(vae, x, 16)
    assert after["test_elbo"] > before["test_elbo"] + 2.0, (before, after)
    assert after["test_log_likelihood"] > after["test_elbo"] + 0.1


def test_speed_benchmark_small(tmp_path):
    """``benchmark --speed`` at a toy size (Pyro only: nothing to compile): rows, ratios, table."""
    import json

    from models.vae.benchmark import speed, speed_table

    result = speed(tmp_path, ["pyro"], ["iaf", "diagonal"], steps=3, rounds=2, dataset="digits",
                   data_dir=None, threads=1, cfg_overrides=SMALL)
    rows = {r["posterior"]: r for r in result["rows"]}
    assert set(rows) == {"iaf", "diagonal"} and result["steps_per_epoch"] == 1500 // 50
    for r in rows.values():
        assert len(r["ratios"]) == 2 and all(0.1 < q < 10 for q in r["ratios"])
        assert r["ours_s_per_step"] > 0 and r["plain_s_per_step"] > 0
    assert json.loads((tmp_path / "speed.json").read_text())["rows"]
    text = speed_table(result)
    assert "| pyro | iaf |" in text and "x |" in text and "load average" in text


@pytest.mark.parametrize("posterior,free_bits", [("iaf", 0.0), ("iaf", 3.0), ("diagonal", 0.0)])
def test_pyro_traced_training_step_equals_trace_elbo(digits, posterior, free_bits):
    """Pyro trains on JitTrace_ELBO: same loss and gradients as Trace_ELBO at the same seed."""
    import torch
    from pyro.infer import Trace_ELBO

    vae = make_vae("pyro", VAEConfig(posterior=posterior, free_bits=free_bits, **SMALL), digits.side)
    x = digits.train[:50] > 0.5
    vae.warmup(x)
    params = vae.optim.param_groups[0]["params"]
    out = []
    for elbo in (vae.train_elbo, Trace_ELBO()):
        torch.manual_seed(1)
        vae.optim.zero_grad()
        loss = elbo.loss_and_grads(vae.model, vae.guide, vae._tensor(x))
        out.append((loss, [p.grad.clone() for p in params]))
    (jit_loss, jit_grads), (loss, grads) = out
    assert vae.train_elbo is not vae.elbo
    np.testing.assert_allclose(jit_loss, loss, rtol=1e-6)
    for g_jit, g in zip(jit_grads, grads):
        np.testing.assert_allclose(g_jit.numpy(), g.numpy(), rtol=1e-4, atol=1e-6 * float(g.abs().max()))


def test_pyro_traced_step_other_batch_size(digits):
    """The trace holds the batch size: another one raises until ``warmup`` traces it anew."""
    vae = make_vae("pyro", VAEConfig(**SMALL), digits.side)
    x = (digits.train[:100] > 0.5).astype(np.float32)
    vae.train_epoch(x.reshape(2, 50, -1))
    with pytest.raises(ValueError, match="traced for"):
        vae.train_epoch(x[:40].reshape(2, 20, -1))
    vae.warmup(x[:20])
    import torch
    from pyro.infer import Trace_ELBO

    losses = []
    for elbo in (vae.train_elbo, Trace_ELBO()):  # the new trace computes the loss of 20 images
        torch.manual_seed(3)
        losses.append(elbo.loss_and_grads(vae.model, vae.guide, vae._tensor(x[:20])))
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-6)
    assert np.isfinite(vae.train_epoch(x[:40].reshape(2, 20, -1)))
