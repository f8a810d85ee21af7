"""Maximum-likelihood training of the PixelCNN with optax Adam; test NLL; checkpoints.

A checkpoint folder holds ``checkpoint.npz`` (the parameters) and ``metrics.json`` (the config,
the training history, test nats, the command). The synthesis benchmark reads both.
"""

from __future__ import annotations

import json
import math
import os
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from models.vae.data import BinaryImages
from models.vae.train import epoch_batches

from .net import PixelCNNConfig, init_params, log_prob, nll

__all__ = ["fit", "evaluate", "marginal_nats", "save_checkpoint", "load_checkpoint"]

CHECKPOINT, METRICS = "checkpoint.npz", "metrics.json"


def fit(cfg: PixelCNNConfig, data: BinaryImages, *, steps: int | None = None,
        seconds: float | None = None, batch_size: int = 32, lr: float = 1e-3, seed: int = 0,
        log_every: int = 0, params: dict | None = None) -> tuple[dict, dict]:
    """Train until ``steps`` Adam steps or ``seconds`` of wall time (compile excluded), whichever first.

    Returns ``(params, history)`` with ``history["loss"]`` the per-step training NLL (nats/image).
    """
    if data.side != cfg.side:
        raise ValueError(f"data {data.name!r} has side {data.side} but cfg.side is {cfg.side}")
    if steps is None and seconds is None:
        raise ValueError("fit needs steps=... or seconds=... (a budget)")
    rng = np.random.default_rng(seed)
    params = jax.tree.map(jnp.asarray, init_params(cfg, seed) if params is None else params)
    opt = optax.adam(lr)
    state = opt.init(params)

    @jax.jit
    def step(params, state, x):
        loss, g = jax.value_and_grad(nll)(params, cfg, x)
        upd, state = opt.update(g, state, params)
        return optax.apply_updates(params, upd), state, loss

    history: dict = {"loss": [], "images": 0}
    t0 = time.perf_counter()
    batches = iter(())
    while True:
        x = next(batches, None)
        if x is None:
            batches = iter(epoch_batches(data, rng, batch_size))
            continue
        params, state, loss = step(params, state, x)
        history["loss"].append(float(loss))
        if len(history["loss"]) == 1:  # compile time kept out of the budget
            history["compile_seconds"] = time.perf_counter() - t0
            t0 = time.perf_counter()
        history["images"] += batch_size
        done = len(history["loss"])
        if log_every and done % log_every == 0:
            print(f"step {done}: loss {np.mean(history['loss'][-log_every:]):.2f} nats/image, "
                  f"{time.perf_counter() - t0:.0f} s", flush=True)
        out_of_time = seconds is not None and time.perf_counter() - t0 >= seconds
        if out_of_time or (steps is not None and done >= steps):
            break
    history["train_seconds"] = time.perf_counter() - t0
    return params, history


@partial(jax.jit, static_argnames="cfg")
def _nats(params: dict, cfg: PixelCNNConfig, x: jax.Array) -> jax.Array:
    return -log_prob(params, cfg, x)


def evaluate(params: dict, cfg: PixelCNNConfig, x: np.ndarray, batch_size: int = 50) -> dict:
    """Mean test NLL (nats per image) of ``x [N, P]`` in {0, 1}, with its standard error."""
    n = len(x)
    xp = np.concatenate([x, np.zeros((-n % batch_size, x.shape[1]), x.dtype)])  # one batch shape
    out = [np.asarray(_nats(params, cfg, jnp.asarray(xp[i : i + batch_size])))
           for i in range(0, len(xp), batch_size)]
    v = np.concatenate(out)[:n].astype(np.float64)
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
    return {"test_nats": float(v.mean()), "test_nats_se": se, "test_images": int(len(v))}


def marginal_nats(data: BinaryImages, x: np.ndarray) -> float:
    """NLL of ``x`` under independent pixels with the training means: what a PixelCNN must beat."""
    p = np.clip(data.train.mean(0).astype(np.float64), 1e-4, 1 - 1e-4)
    return float(-(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(1).mean())


def save_checkpoint(out: str | Path, params: dict, cfg: PixelCNNConfig, metrics: dict) -> None:
    """``<out>/checkpoint.npz`` and ``<out>/metrics.json`` (with ``config``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ("tmp_" + CHECKPOINT)
    np.savez(tmp, **{k: np.asarray(v) for k, v in params.items()})
    os.replace(tmp, out / CHECKPOINT)
    with open(out / METRICS, "w") as f:
        json.dump({"config": cfg.to_dict(), **metrics}, f, indent=2)
        f.write("\n")


def load_checkpoint(out: str | Path) -> tuple[dict, PixelCNNConfig, dict]:
    """``(params, cfg, metrics)`` from a folder written by :func:`save_checkpoint`."""
    out = Path(out)
    if not (out / CHECKPOINT).exists() or not (out / METRICS).exists():
        raise FileNotFoundError(f"No PixelCNN checkpoint in {out} (expected {CHECKPOINT} and "
                                f"{METRICS}); train one with `python -m models.pixelcnn --out {out}`")
    with open(out / METRICS) as f:
        metrics = json.load(f)
    with np.load(out / CHECKPOINT) as z:
        params = {k: z[k] for k in z.files}
    return params, PixelCNNConfig(**metrics["config"]), metrics
