"""The PixelCNN baseline (models.pixelcnn) on tiny 8x8 nets: causality, likelihood, sampler, training."""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_expit

from models.pixelcnn import (
    PRESETS,
    PixelCNNConfig,
    channels_for_params,
    evaluate,
    fit,
    init_params,
    load_checkpoint,
    log_prob,
    logits,
    param_count,
    sample_images,
    save_checkpoint,
)
from models.vae import load

TINY = PixelCNNConfig(side=8, channels=8, blocks=2, first_kernel=5)


def random_params(cfg: PixelCNNConfig, seed: int = 0, scale: float = 0.2, dtype=np.float32) -> dict:
    """Init weights moved by ``scale * N(0, 1)`` (biases too) so that every path is live."""
    rng = np.random.default_rng(seed + 100)
    return {k: jnp.asarray((v + scale * rng.standard_normal(v.shape)).astype(dtype))
            for k, v in init_params(cfg, seed).items()}


@pytest.mark.parametrize("cfg", [TINY, replace(TINY, first_kernel=3, blocks=1),
                                 replace(TINY, side=6, blocks=3, first_kernel=7)],
                         ids=["k5-b2", "k3-b1", "k7-b3-side6"])
def test_causality_by_perturbation(cfg):
    """Flipping pixel j moves logits only after j; the left and upper neighbours' links are live."""
    P, S = cfg.pixels, cfg.side
    x = (np.random.default_rng(1).random(P) < 0.5).astype(np.float32)
    flips = np.tile(x, (P, 1))  # row j: x with pixel j flipped
    flips[np.arange(P), np.arange(P)] = 1 - x
    with jax.enable_x64(True):  # float64: rounding far below any real dependence
        params = random_params(cfg, dtype=np.float64)
        lg = np.asarray(logits(params, cfg, jnp.asarray(np.vstack([x[None], flips]), jnp.float64)))
    assert lg.dtype == np.float64
    d = np.abs(lg[1:] - lg[:1])  # d[j, i]: change of logit i when pixel j flips
    tol = 1e-10 * (1 + np.abs(lg).max())
    not_after = np.tril(np.ones((P, P), bool))  # i <= j
    assert d[not_after].max() < tol
    right = [j for j in range(P - 1) if (j + 1) % S]
    assert d[right, [j + 1 for j in right]].min() > 1e-4
    below = list(range(P - S))
    assert d[below, [j + S for j in below]].min() > 1e-4


def test_log_prob_is_sum_of_pixel_bernoullis():
    params = random_params(TINY)
    x = (np.random.default_rng(2).random((5, TINY.pixels)) < 0.4).astype(np.float32)
    lg = np.asarray(logits(params, TINY, jnp.asarray(x)), np.float64)
    expected = (x * log_expit(lg) + (1 - x) * log_expit(-lg)).sum(1)  # log p, log(1 - p)
    np.testing.assert_allclose(np.asarray(log_prob(params, TINY, jnp.asarray(x))), expected, rtol=1e-5)


def test_sampler_shapes_values_seeds_and_the_logits():
    """Shapes, {0, 1}, seeds; with huge logits each pixel is 1[logit_i(sample) > 0] (no noise left)."""
    params = random_params(TINY)
    a = np.asarray(sample_images(params, TINY, jax.random.key(0), 8))
    assert a.shape == (8, 1, TINY.side, TINY.side)
    assert set(np.unique(a)) == {0.0, 1.0}
    np.testing.assert_array_equal(a, np.asarray(sample_images(params, TINY, jax.random.key(0), 8)))
    assert (a != np.asarray(sample_images(params, TINY, jax.random.key(1), 8))).any()
    sharp = {**params, "out2_w": params["out2_w"] * 1e6, "out2_b": 0 * params["out2_b"]}
    x = sample_images(sharp, TINY, jax.random.key(4), 8).reshape(8, -1)
    lg = np.asarray(logits(sharp, TINY, x))
    saturated = np.abs(lg) > 30  # sigmoid is 0 or 1 in float32
    assert saturated.mean() > 0.98
    np.testing.assert_array_equal(np.asarray(x).astype(bool)[saturated], (lg > 0)[saturated])
    assert 0.05 < float(x.mean()) < 0.95


def test_first_pixel_frequency_and_prefix_steps():
    """``steps=1``: pixel 0 is 1 with frequency sigmoid(l_0(zeros)); the other pixels stay 0."""
    params, n = random_params(TINY, seed=3), 4000
    x = np.asarray(sample_images(params, TINY, jax.random.key(5), n, steps=1)).reshape(n, -1)
    p0 = float(jax.nn.sigmoid(logits(params, TINY, jnp.zeros((1, TINY.pixels)))[0, 0]))
    assert 0.05 < p0 < 0.95
    assert abs(x[:, 0].mean() - p0) < 4 * np.sqrt(p0 * (1 - p0) / n)
    assert not x[:, 1:].any()


def test_training_lowers_test_nll_and_checkpoint_round_trip(tmp_path):
    data = load("digits")
    cfg = PRESETS["tiny"]
    before = evaluate(init_params(cfg), cfg, data.test)["test_nats"]
    params, history = fit(cfg, data, steps=100, lr=3e-3, batch_size=32)
    after = evaluate(params, cfg, data.test)
    assert len(history["loss"]) == 100
    assert after["test_nats"] < before - 8, (before, after)
    save_checkpoint(tmp_path, params, cfg, after)
    loaded, cfg2, metrics = load_checkpoint(tmp_path)
    assert cfg2 == cfg and metrics["test_nats"] == after["test_nats"]
    x = jnp.asarray(data.test[:4])
    np.testing.assert_allclose(log_prob(loaded, cfg, x), log_prob(params, cfg, x), rtol=1e-6)


@pytest.mark.parametrize("target", [20_000, 153_474, 1_487_426])
def test_channels_for_params_matches_a_count(target):
    cfg = replace(PRESETS["mnist"], channels=channels_for_params(target, PRESETS["mnist"]))
    assert abs(param_count(init_params(cfg)) / target - 1) < 0.03


def test_bad_input_raises():
    with pytest.raises(ValueError, match="first_kernel must be odd"):
        PixelCNNConfig(first_kernel=4)
    with pytest.raises(ValueError, match=r"Expected x of shape \[B, 64\]"):
        logits(init_params(TINY), TINY, jnp.zeros((2, 8, 8)))
    with pytest.raises(FileNotFoundError, match="python -m models.pixelcnn"):
        load_checkpoint("/nonexistent/folder")


def test_synthesis_table_states_the_ratio():
    """The benchmark's Markdown: '<N>x faster' from the two rates, the scaled prefix named."""
    from models.bench.synthesis import render

    row = dict(batch=64, vae_images_per_s=5000.0, pixelcnn_images_per_s=0.8, ratio=6250.0, vae_compile_s=1.0,
               pixelcnn_compile_s=2.0, pixel_steps=98)
    from models.resnet_vae import ResNetVAEConfig

    res = dict(vae=dict(preset="mnist", params=100_000, test_nats=None,
                        config=ResNetVAEConfig.preset("mnist").to_dict()),
               pixelcnn=dict(config=dict(PRESETS["mnist"].to_dict()), params=110_000, test_nats=90.0,
                             test_nats_se=0.5, test_images=10_000, train_steps=300, marginal_nats=206.0,
                             checkpoint="ckpt"),
               rows=[row], repeats=3, max_seconds=30.0,
               machine=dict(cpu="cpu", cores=2, jax="x", device="cpu", platform="cpu", load_start=(1.0,),
                            load_end=(2.0,)))
    md = render(res, "cmd")
    assert "| 64 | 5,000.0 | 0.8 | 1.25 | **6,250x faster** |" in md
    assert "98 of 784, scaled x8.0" in md and "110,000 (+10.0%)" in md and "90.00 ± 0.50" in md
