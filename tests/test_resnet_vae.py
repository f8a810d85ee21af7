"""The ResNet VAE of models.resnet_vae (tiny sizes): shapes, log q, free bits, weight-norm init,
cross-backend parity, the discretized logistic and colour path, a short fit, and what the step
benchmark relies on (the plain baselines' objective, the shared top-down pass, Pyro's traced loss)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.resnet_vae import ResNetVAEConfig, data_init, init_params, make_resnet_vae, sample_images
from models.resnet_vae.data import load, synthetic_colour
from models.resnet_vae.likelihood import discretized_logistic_log_prob
from models.resnet_vae.nets import Net
from models.resnet_vae.ops import numpy_ops

LAMBDA = 0.5
CFG = ResNetVAEConfig.preset("tiny", free_bits=LAMBDA)
B = 16


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def weights(digits):
    """Data-initialised tiny weights with the IAF moved far from the identity (NumPy)."""
    p = data_init(CFG, init_params(CFG, 0), digits.train[:64], seed=0)
    rng = np.random.default_rng(1)
    for k in p:
        if "_iaf" in k:
            p[k] = (p[k] + 0.3 * rng.standard_normal(p[k].shape)).astype(np.float32)
    return p


@pytest.fixture(scope="module")
def vaes(weights):
    """One model per backend from the same NumPy weights (shared: compiled once)."""
    return {}


def get_vae(vaes, weights, name):
    if name not in vaes:
        vaes[name] = make_resnet_vae(name, CFG, params=weights)
    return vaes[name]


@pytest.fixture(scope="module")
def batch(digits):
    rng = np.random.default_rng(2)
    x = digits.test[:B]
    fixed = {f"z{i}_0": rng.standard_normal((B, CFG.zdim, s, s)).astype(np.float32)
             for i, s in enumerate(CFG.layer_sides())}
    return x, fixed


def log_normal(x, loc, scale):
    x, loc, scale = (np.asarray(a, np.float64) for a in (x, loc, scale))
    return -0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * math.log(2 * math.pi)


def test_layer_and_sample_shapes(backend, vaes, weights, batch):
    vae = get_vae(vaes, weights, backend.name)
    x, fixed = batch
    out = vae.inspect(x, fixed)
    assert CFG.layer_sides() == [4, 2]
    assert set(out["sites"]) == {"z0_0", "z0", "z1_0", "z1"}
    for i, s in enumerate(CFG.layer_sides()):
        for key in ("loc", "scale", "prior_loc", "z0", "z", "log_sigma"):
            assert out["layers"][i][key].shape == (B, CFG.zdim, s, s), (i, key)
        assert out["layers"][i]["context"].shape == (B, CFG.hidden, s, s)
        assert out["sites"][f"z{i}"].shape == (B,)
    assert out["log_p"].shape == out["log_q"].shape == (B,)
    assert np.all(np.isfinite(out["log_p"])) and np.all(out["log_p"] < 0)


def test_sample_images_jit():
    import jax

    sample = jax.jit(sample_images, static_argnums=(1, 3))
    params = init_params(CFG, 0)
    imgs = np.asarray(sample(params, CFG, jax.random.PRNGKey(0), 5))
    assert imgs.shape == (5, 1, 8, 8)
    assert 0 < imgs.min() and imgs.max() < 1  # Bernoulli means
    assert imgs.std() > 1e-3  # the draws of z differ
    again = np.asarray(sample(params, CFG, jax.random.PRNGKey(0), 5))
    np.testing.assert_array_equal(imgs, again)


def test_log_q_matches_change_of_variables(backend, vaes, weights, batch):
    """A layer's log q(z_i | .) = log N(z_i^0; loc, scale) - log|det dz_i/dz_i^0| (autodiff)."""
    vae = get_vae(vaes, weights, backend.name)
    x, fixed = batch
    out = vae.inspect(x, fixed)
    for i, t in enumerate(out["layers"]):
        z, jac = vae.flow_jacobian(i, t["z0"][:1], t["context"][:1])
        np.testing.assert_allclose(z, t["z"][:1], atol=1e-5)
        sign, logdet = np.linalg.slogdet(jac.astype(np.float64))
        assert sign > 0
        assert np.abs(jac - np.diag(np.diag(jac))).max() > 1e-3  # not diagonal: an autoregressive map
        expected = log_normal(t["z0"][0], t["loc"][0], t["scale"][0]).sum() - logdet
        got = out["sites"][f"z{i}_0"][0] + out["sites"][f"z{i}"][0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=2e-3)
        assert np.abs(t["z"] - t["z0"]).max() > 0.05


def test_free_bits_objective(backend, vaes, weights, batch):
    """Training loss = -ELBO + B * sum_{i,c} relu(lambda - KL_{i,c}), KL by hand per feature map."""
    vae = get_vae(vaes, weights, backend.name)
    x, fixed = batch
    out = vae.inspect(x, fixed)
    kl = []
    for t in out["layers"]:
        log_q = log_normal(t["z0"], t["loc"], t["scale"]) - t["log_sigma"]
        log_p = log_normal(t["z"], t["prior_loc"], t["prior_scale"])
        kl.append((log_q - log_p).sum((2, 3)).mean(0))  # [zdim]: minibatch mean per feature map
    kl = np.concatenate(kl)
    assert (kl < LAMBDA).any() and (kl > LAMBDA).any(), kl  # the penalty is active for some maps only
    elbo = (out["log_p"] - out["log_q"]).astype(np.float64).sum()
    expected = -elbo + B * np.maximum(LAMBDA - kl, 0).sum()
    np.testing.assert_allclose(out["loss"], expected, rtol=1e-5)
    assert out["loss"] > -elbo + 1.0


def test_cross_backend_parity(vaes, weights, batch):
    """The same NumPy weights give the same log p, log q and loss in Pyro and NumPyro."""
    x, fixed = batch
    a = get_vae(vaes, weights, "numpyro").inspect(x, fixed)
    b = get_vae(vaes, weights, "pyro").inspect(x, fixed)
    np.testing.assert_allclose(b["log_p"] - b["log_q"], a["log_p"] - a["log_q"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(b["log_p"], a["log_p"], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(b["loss"], a["loss"], rtol=1e-5)
    for k in a["sites"]:
        np.testing.assert_allclose(b["sites"][k], a["sites"][k], rtol=1e-5, atol=1e-4, err_msg=k)


def test_weight_norm_data_init(digits):
    """On the init batch every layer's output has per-channel mean 0 and std init_scale."""
    x = digits.train[:64]
    p0 = init_params(CFG, 0)
    before, after = {}, {}
    p = data_init(CFG, p0, x, seed=0)
    _numpy_pass(CFG, p, x, seed=0, record=after)  # the initialised network, plain forward
    _numpy_pass(CFG, p0, x, seed=0, record=before)  # the network before the init
    scale = {k: 0.1 if k.endswith(("up1", "down1")) else 1.0 for k in after}
    constant = "l1_down1"  # the top layer's split sees only h_top (0): a constant, only centred
    moved = 0
    for name, y in after.items():
        axes = (0, 2, 3) if y.ndim == 4 else 0
        np.testing.assert_allclose(y.mean(axes), 0, atol=1e-4, err_msg=name)
        if name != constant:
            np.testing.assert_allclose(y.std(axes), scale[name], rtol=1e-3, err_msg=name)
        moved += np.abs(before[name].std(axes) - scale[name]).max() > 0.2
    assert moved >= 3  # the init changed the scales


def _numpy_pass(cfg, params, x, seed, record):
    """The inference path of ``data_init`` without initialising (same draws of z)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    rng = np.random.default_rng(seed)
    net = Net(cfg, numpy_ops())
    L = net.layers(p, record=record)
    ups = net.up(L, net.image(np.asarray(x, np.float64)))
    h = net.top(p, len(x))
    for i in reversed(range(cfg.num_layers)):
        qm, q_logsd, _ = ups[i]
        _, _, rm, r_logsd, _, d = net.down(L, i, h)
        h = net.merge(L, i, h, qm + rm + np.exp(q_logsd + r_logsd) * rng.standard_normal(qm.shape), d)
    net.decode(L, h)


def test_discretized_logistic_sums_to_one(backend):
    rng = np.random.default_rng(0)
    mean = np.concatenate([rng.uniform(-1.2, 1.2, 20), [-1.0, 1.0, 0.0]])
    log_scale = np.concatenate([rng.uniform(-5, 0.5, 20), [-6.0, -6.0, 1.0]])
    k = np.arange(256)[:, None] / 255.0
    total = np.exp(discretized_logistic_log_prob(numpy_ops(), k, mean, log_scale)).sum(0)
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    from models.resnet_vae import likelihood

    cls = getattr(likelihood, f"{backend.name}_distribution")()
    arr = backend.array
    d = cls(arr(np.broadcast_to(mean, (256, 23))), arr(np.broadcast_to(log_scale, (256, 23))))
    lp = backend.numpy(d.log_prob(arr(np.broadcast_to(k, (256, 23))))).astype(np.float64)
    np.testing.assert_allclose(np.exp(lp).sum(0), 1.0, atol=2e-4)


@pytest.mark.parametrize("name", ["pyro", pytest.param("numpyro", marks=pytest.mark.slow)])
def test_colour_path_one_step(name):
    """The CIFAR-10 code path (discretized logistic, 3 channels, 32x32) on synthetic data.
    NumPyro: slow (compiling the 32x32 update takes minutes on 2 busy cores)."""
    data = synthetic_colour(n_train=16, n_test=8)
    cfg = ResNetVAEConfig(side=32, channels=3, likelihood="logistic", depth=1, stages=2, zdim=2,
                          hidden=8, flows=1, iaf_hidden=8, free_bits=0.1, batch_size=8)
    vae = make_resnet_vae(name, cfg, init_batch=data.train[:8])
    before = vae.export_weights()
    loss = vae.train_epoch(data.train[None, :8])
    bits_per_dim = loss / (cfg.pixels * math.log(2))
    assert 1.0 < bits_per_dim < 12.0, bits_per_dim  # uniform pixels: 8
    after = vae.export_weights()
    assert all(np.all(np.isfinite(v)) for v in after.values())
    assert np.abs(after["x_dec_v"] - before["x_dec_v"]).max() > 1e-4


def test_errors_name_the_fix():
    with pytest.raises(ValueError, match="stages"):
        ResNetVAEConfig(side=28, stages=3)
    with pytest.raises(FileNotFoundError, match="--data-path"):
        load("cifar10")
    with pytest.raises(ValueError, match="init_batch|data_init"):
        data_init(CFG, init_params(CFG), np.zeros((4, 10)))


def test_cifar10_loader_reads_npz_and_batches(tmp_path):
    """A user's CIFAR-10 copy: a .npz of NHWC uint8 or the official pickled batches folder."""
    import pickle

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", x_train=imgs[:6], x_test=imgs[6:])
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    chw = imgs.transpose(0, 3, 1, 2).reshape(10, -1)
    for i in range(1, 6):
        with open(folder / f"data_batch_{i}", "wb") as f:
            pickle.dump({b"data": chw[:2]}, f)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({b"data": chw[6:]}, f)
    a, b = load("cifar10", data_path=tmp_path / "c.npz"), load("cifar10", data_path=folder)
    assert a.train.shape == (6, 3072) and b.train.shape == (10, 3072) and a.channels == 3
    np.testing.assert_array_equal(a.test, b.test)
    np.testing.assert_allclose(a.test[1].reshape(3, 32, 32)[2, 5, 7], imgs[7, 5, 7, 2] / 255.0)
    with pytest.raises(ValueError, match="x_train"):
        np.savez(tmp_path / "bad.npz", images=imgs)
        load("cifar10", data_path=tmp_path / "bad.npz")


@pytest.mark.parametrize("name", ["pyro", pytest.param("numpyro", marks=pytest.mark.slow)])
def test_short_fit_lowers_the_loss(name, vaes, weights, batch, digits):
    """40 steps on the digits lower the loss at the same pinned draws (common random numbers).
    NumPyro: slow (compiling the update takes ~1 min on 2 busy cores); its update also runs in
    test_colour_path_one_step[numpyro] and the benchmark."""
    vae = get_vae(vaes, weights, name)
    x, fixed = batch
    before = vae.inspect(x, fixed)["loss"] / B
    rng = np.random.default_rng(0)
    train = digits.train_epoch(rng)[: 32 * 40].reshape(40, 32, -1)
    vae.train_epoch(train)
    after = vae.inspect(x, fixed)["loss"] / B
    assert after < before - 3.0, (before, after)


def test_plain_baseline_computes_our_objective(backend, vaes, weights, batch):
    """The speed benchmark's plain step (models/resnet_vae/plain.py: no PPL, the objective by
    hand) gives our log p(x, z), log q(z | x) and free-bits loss for the same weights and draws,
    so its time measures what Pyro / NumPyro and our model code add, not another model."""
    from models.resnet_vae.plain import PLAIN, noise_shapes

    x, _ = batch
    rng = np.random.default_rng(5)
    eps = [rng.standard_normal(s).astype(np.float32) for s in noise_shapes(CFG, B)]
    ours = get_vae(vaes, weights, backend.name)  # its current weights (another test may have trained it)
    log_p, log_q, loss, z0 = PLAIN[backend.name](CFG, ours.export_weights()).log_weights(x, eps)
    out = ours.inspect(x, {f"z{i}_0": z for i, z in enumerate(z0)})
    np.testing.assert_allclose(log_p, out["log_p"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(log_q, out["log_q"], rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(loss, out["loss"], rtol=1e-5)
    assert np.ptp(log_q) > 1.0 and loss > -(log_p - log_q).sum() + 1.0  # distinct images; free bits active


def _loss_and_grads(vae, x, fixed, compute: bool = True):
    """Our training loss (Trace_ELBO with free bits) at pinned base draws and its gradient.
    NumPyro with ``compute=False``: only traced (``jax.eval_shape``; nothing is compiled)."""
    if vae.backend == "pyro":
        import pyro.poutine as poutine
        import torch

        guide = poutine.condition(vae.guide, data={k: torch.as_tensor(v) for k, v in fixed.items()})
        loss = vae.elbo.differentiable_loss(vae.model, guide, torch.as_tensor(x))
        grads = torch.autograd.grad(loss, list(vae.params.values()), allow_unused=True)
        return float(loss), {k: np.zeros(tuple(p.shape)) if g is None else g.numpy()
                             for (k, p), g in zip(vae.params.items(), grads)}
    import jax
    from numpyro import handlers
    from numpyro.infer import Trace_ELBO

    guide = handlers.substitute(vae.guide, data=fixed)
    fn = jax.value_and_grad(
        lambda p: Trace_ELBO().loss(jax.random.PRNGKey(0), {"resnet_vae": p}, vae.model, guide, x))
    if not compute:
        return jax.eval_shape(fn, vae.params)
    loss, grads = jax.jit(fn)(vae.params)
    return float(loss), jax.tree.map(np.asarray, grads)


def _check_shared_pass(vae, batch, monkeypatch, compute: bool) -> None:
    from models.resnet_vae.model import GuidePass

    x, fixed = batch
    calls = []
    down = vae.nets.down
    monkeypatch.setattr(vae.nets, "down", lambda *a: calls.append(a[1]) or down(*a))
    shared = _loss_and_grads(vae, x, fixed, compute)
    assert sorted(calls) == list(range(CFG.num_layers))  # the guide's pass only
    calls.clear()
    monkeypatch.setattr(GuidePass, "take", classmethod(lambda cls, nets, p: None))
    recomputed = _loss_and_grads(vae, x, fixed, compute)
    assert sorted(calls) == sorted(2 * list(range(CFG.num_layers)))  # the model's own pass too
    if not compute:
        return
    np.testing.assert_allclose(shared[0], recomputed[0], rtol=1e-6)
    for k, g in recomputed[1].items():
        np.testing.assert_allclose(shared[1][k], g, rtol=1e-4, atol=1e-4 * np.abs(g).max(), err_msg=k)
    assert max(np.abs(g).max() for k, g in shared[1].items() if "down" in k) > 1e-2  # the pass has gradients


def test_model_takes_the_guides_top_down_pass(backend, vaes, weights, batch, monkeypatch):
    """The model reuses the guide's top-down pass (GuidePass): one top-down pass per training
    loss, not two; Pyro: the same loss and gradients as recomputing it (NumPyro: traced only
    here, its gradients in the slow test below: two compilations)."""
    vae = get_vae(vaes, weights, backend.name)
    _check_shared_pass(vae, batch, monkeypatch, compute=backend.name == "pyro")


@pytest.mark.slow  # two compilations of the tiny net's gradient (~16 s of CPU)
def test_shared_top_down_pass_keeps_numpyro_gradients(vaes, weights, batch, monkeypatch):
    """NumPyro: the shared pass gives the same loss and gradients as recomputing it."""
    _check_shared_pass(get_vae(vaes, weights, "numpyro"), batch, monkeypatch, compute=True)


def test_pyro_traced_training_loss_equals_trace_elbo(vaes, weights, batch):
    """Pyro trains on JitTrace_ELBO: the same loss and gradients as Trace_ELBO at the same seed."""
    import torch

    vae = get_vae(vaes, weights, "pyro")
    x = torch.as_tensor(batch[0])
    vae.warmup(batch[0])
    out = []
    for elbo in (vae.train_elbo, vae.elbo):
        torch.manual_seed(1)
        vae.optim.zero_grad()
        loss = elbo.loss_and_grads(vae.model, vae.guide, x)
        out.append((loss, {k: p.grad.clone() for k, p in vae.params.items() if p.grad is not None}))
    vae.optim.zero_grad()
    (jit_loss, jit_grads), (loss, grads) = out
    np.testing.assert_allclose(jit_loss, loss, rtol=1e-6)
    assert set(jit_grads) == set(grads) and len(grads) > 40
    for k, g in grads.items():
        np.testing.assert_allclose(jit_grads[k].numpy(), g.numpy(), rtol=1e-4,
                                   atol=1e-6 * float(g.abs().max()), err_msg=k)


def _arrays(state: dict) -> dict:
    """Every array of a backend's ``state_dict()`` (weights, optimiser, RNG) by its path."""
    from models.vae.checkpoint import split_state

    arrays: dict = {}
    split_state(state, arrays)
    return arrays


class _Killed(Exception):
    pass


def test_resume_gives_the_uninterrupted_run(backend, digits, tmp_path, monkeypatch):
    """15 steps (3 epochs of 5 minibatches) in one go vs a run killed after step 7 (checkpoints
    every 3 steps: the last at step 6, in the middle of an epoch and of a progress line) and
    resumed in a fresh VAE: the same history and bit-identical weights, optimiser and RNG state."""
    from dataclasses import replace

    from models.resnet_vae.train import train

    data = replace(digits, train=digits.train[:160])
    init = digits.train[:64]
    kw = dict(epochs=3, log_every=2, verbose=False)
    whole = make_resnet_vae(backend.name, CFG, init_batch=init)
    start = whole.export_weights()
    h_whole = train(whole, data, **kw)
    assert h_whole["step"] == [2, 4, 5, 7, 9, 10, 12, 14, 15] and h_whole["epochs"] == 3.0

    killed = make_resnet_vae(backend.name, CFG, init_batch=init)
    steps, taken = killed.train_steps, [0]

    def dies_after_step_7(batches):
        if taken[0] + len(batches) > 7:
            raise _Killed
        taken[0] += len(batches)
        return steps(batches)

    monkeypatch.setattr(killed, "train_steps", dies_after_step_7)
    with pytest.raises(_Killed):
        train(killed, data, out=tmp_path, checkpoint_every=3, **kw)
    assert taken[0] == 7

    resumed = make_resnet_vae(backend.name, CFG)  # other weights (no data init) until loaded
    h = train(resumed, data, out=tmp_path, checkpoint_every=3, resume=True, **kw)
    assert h["resumed_at"] == [6]
    assert h["step"] == h_whole["step"] and h["epochs"] == h_whole["epochs"]
    assert h["loss"] == h_whole["loss"], (h["loss"], h_whole["loss"])
    assert h["seconds"][-1] > 0 and h["seconds"] == sorted(h["seconds"])
    end, end_whole = resumed.export_weights(), whole.export_weights()
    assert max(np.abs(end_whole[k] - start[k]).max() for k in start) > 1e-3  # it trained
    for k in end_whole:
        np.testing.assert_array_equal(end[k], end_whole[k], err_msg=k)
    state, state_whole = _arrays(resumed.state_dict()), _arrays(whole.state_dict())
    assert state.keys() == state_whole.keys() and len(state) > len(end)
    for k in state_whole:
        np.testing.assert_array_equal(state[k], state_whole[k], err_msg=k)


@pytest.mark.parametrize("name", ["pyro", pytest.param("numpyro", marks=pytest.mark.slow)])
def test_cli_resumes_refuses_and_draws(name, tmp_path):
    """``python -m models.resnet_vae --out DIR``: 6 steps, then ``--resume`` to 10 equals 10 in
    one go (metrics and checkpoint); another config, no checkpoint, or a fresh run over a
    checkpoint are refused; ``--figures`` and ``models.resnet_vae.figures DIR`` draw both PNGs.
    NumPyro: slow (it compiles the update, the evaluation and the prior sampler)."""
    from models.resnet_vae.__main__ import main
    from models.resnet_vae.figures import main as figures
    from models.resnet_vae.train import load_checkpoint

    flags = ["--backend", name, "--log-every", "4", "--is-samples", "2", "--eval-limit", "16",
             "--init-batch", "32", "--batch-size", "16"]
    one = main([*flags, "--max-steps", "10", "--out", str(tmp_path / "one")])
    main([*flags, "--max-steps", "6", "--out", str(tmp_path / "two")])
    two = main([*flags, "--max-steps", "10", "--out", str(tmp_path / "two"), "--resume", "--figures"])
    assert one["steps"] == two["steps"] == 10 and two["resumed_at"] == [6]
    assert two["history"]["step"] == [4, 8, 10]
    np.testing.assert_allclose(two["history"]["loss"], one["history"]["loss"], rtol=1e-6)  # see RESULTS.md
    a, b = load_checkpoint(tmp_path / "one")["vae"], load_checkpoint(tmp_path / "two")["vae"]
    wa, wb = _arrays(a), _arrays(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)
    with pytest.raises(ValueError, match="lr: checkpoint 0.002, now 0.001"):
        main([*flags, "--lr", "0.001", "--out", str(tmp_path / "two"), "--resume"])
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        main([*flags, "--out", str(tmp_path / "none"), "--resume"])
    with pytest.raises(SystemExit, match="--resume"):
        main([*flags, "--out", str(tmp_path / "two")])
    for png in ("learning_curve.png", "samples.png"):
        assert (tmp_path / "two" / png).stat().st_size > 2000
    paths = figures([str(tmp_path / "one"), "--out", str(tmp_path / "fig"), "--samples", "16"])
    assert [p.name for p in paths] == ["learning_curve.png", "samples.png"]
    assert all(p.stat().st_size > 2000 for p in paths)


def test_prior_samples_both_backends(weights):
    """``vae.sample_images``: the same prior sampler in both backends (Bernoulli means in (0, 1),
    deterministic at a seed, different across seeds), and Pyro's leaves training's RNG alone."""
    import torch

    # fresh VAEs: the shared ones may have trained (test_short_fit_lowers_the_loss)
    pyro_vae, numpyro_vae = (make_resnet_vae(name, CFG, params=weights) for name in ("pyro", "numpyro"))
    before = torch.get_rng_state()
    a, b = pyro_vae.sample_images(16, seed=3), pyro_vae.sample_images(16, seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - pyro_vae.sample_images(16, seed=4)).max() > 1e-2
    c = numpyro_vae.sample_images(16, seed=3)
    assert a.shape == c.shape == (16, 1, 8, 8)
    assert 0 < min(a.min(), c.min()) and max(a.max(), c.max()) < 1
    # same weights, independent draws: the mean images agree to the sampling noise
    assert np.abs(a.mean(0) - c.mean(0)).mean() < 0.15
