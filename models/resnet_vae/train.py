"""Training for a number of epochs and/or minutes, evaluation (nats, or bits/dim for colour).

Minibatches come from :func:`models.vae.train.epoch_batches` (dynamic binarization per epoch for
``mnist``/``digits``); the test ELBO and the importance-sampled ``log p(x)`` from
:func:`models.vae.train.evaluate` (``K`` draws of ``q`` per image, no free bits).
"""

from __future__ import annotations

import math
import time

import numpy as np

from models.vae.train import epoch_batches, evaluate

__all__ = ["train", "evaluate_images", "bits_per_dim"]


def train(vae, data, epochs: int, minutes: float | None = None, log_every: int = 0,
          verbose: bool = True) -> dict:
    """Up to ``epochs`` epochs of ``vae.train_epoch``, stopping early after ``minutes`` (checked
    every ``chunk`` steps). Returns the history: per-chunk mean loss (nats/image), steps,
    seconds (compilation excluded, reported apart)."""
    cfg = vae.cfg
    rng = np.random.default_rng(cfg.seed)
    hist = {"loss": [], "step": [], "seconds": [], "compile_seconds": None, "epochs": 0.0}
    t_train, steps = 0.0, 0
    chunk = log_every or 50
    for epoch in range(epochs):
        batches = epoch_batches(data, rng, cfg.batch_size)
        if hist["compile_seconds"] is None:
            hist["compile_seconds"] = vae.warmup(batches[0])
        for j in range(0, len(batches), chunk):
            t0 = time.perf_counter()
            loss = vae.train_epoch(batches[j : j + chunk])
            t_train += time.perf_counter() - t0
            steps += len(batches[j : j + chunk])
            hist["loss"].append(loss)
            hist["step"].append(steps)
            hist["seconds"].append(t_train)
            hist["epochs"] = epoch + (j + chunk) / len(batches)
            if verbose:
                print(f"epoch {epoch + 1} step {steps}: loss {loss:.3f} nats/image, {t_train:.0f} s",
                      flush=True)
            if minutes is not None and t_train > 60 * minutes:
                hist["epochs"] = min(hist["epochs"], epoch + 1)
                return hist
        hist["epochs"] = epoch + 1
    return hist


def bits_per_dim(nats_per_image: float, dims: int) -> float:
    """``-log p / (D ln 2)`` for a log-likelihood in nats per image of ``D`` numbers."""
    return -nats_per_image / (dims * math.log(2))


def evaluate_images(vae, x: np.ndarray, num_samples: int, chunk_images: int = 8) -> dict:
    """Test ELBO and IS log-likelihood (nats per image; plus bits/dim for 8-bit colour)."""
    n = (len(x) // chunk_images) * chunk_images or len(x)  # equal chunks: one compilation
    out = evaluate(vae, x[:n], num_samples, chunk_rows=chunk_images * num_samples)
    out["test_images"] = n
    out["is_samples"] = num_samples
    if vae.cfg.likelihood == "logistic":
        out["test_elbo_bits_per_dim"] = bits_per_dim(out["test_elbo"], vae.cfg.pixels)
        out["test_bits_per_dim"] = bits_per_dim(out["test_log_likelihood"], vae.cfg.pixels)
    return out
