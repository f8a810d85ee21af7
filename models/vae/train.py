"""Training loop, checkpoints, evaluation (ELBO and importance-sampled log p(x)), figures, metrics.

Checkpoints (``<out>/checkpoint.npz`` + ``checkpoint.json``, written after every epoch; see
:mod:`models.vae.checkpoint`: data only, no pickle) hold the configuration, the backend's full
state (parameters, optimiser state, RNG state), the data RNG state, the epoch and the history,
so a resumed run takes exactly the steps the uninterrupted run would have taken.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.special import logsumexp

from . import checkpoint, make_vae
from .config import VAEConfig
from .data import BinaryImages

__all__ = ["fit", "evaluate", "save_checkpoint", "load_checkpoint", "save_figures", "epoch_batches"]

def epoch_batches(data: BinaryImages, rng: np.random.Generator, batch_size: int) -> np.ndarray:
    """One epoch of training minibatches ``[nb, B, P]``: binarize (if dynamic), shuffle, drop the rest."""
    x = data.train_epoch(rng)
    nb = len(x) // batch_size
    if nb == 0:
        raise ValueError(f"batch size {batch_size} exceeds the {len(x)} training images")
    perm = rng.permutation(len(x))[: nb * batch_size]
    return x[perm].reshape(nb, batch_size, -1)


def save_checkpoint(folder: Path, vae, backend: str, rng: np.random.Generator, epoch: int,
                    history: dict) -> None:
    """The training state into ``<folder>/checkpoint.npz`` and ``checkpoint.json``."""
    state = {"backend": backend, "config": vae.cfg.to_dict(), "epoch": epoch, "history": history,
             "data_rng": rng.bit_generator.state, "vae": vae.state_dict()}
    checkpoint.write(folder, state)


def load_checkpoint(folder: Path) -> dict:
    """The state of :func:`save_checkpoint` (a pickled ``checkpoint.pkl`` of older versions is refused)."""
    return checkpoint.read(folder)


def fit(backend: str, cfg: VAEConfig, data: BinaryImages, epochs: int, out: Path | None = None,
        resume: bool = False, progress: bool = True, vae=None, verbose: bool | None = None):
    """Train to a total of ``epochs`` epochs; returns ``(vae, history)``.

    ``resume``: continue from the checkpoint in ``out`` (its configuration must equal ``cfg``).
    ``progress``: tqdm bars; ``verbose`` (default: ``progress``): one line per epoch.
    """
    from tqdm.auto import tqdm

    rng = np.random.default_rng(cfg.seed)
    history: dict = {"loss": [], "epoch_seconds": []}
    start = 0
    ckpt = None if out is None else Path(out)
    if ckpt is not None:
        ckpt.mkdir(parents=True, exist_ok=True)
    if resume:
        if ckpt is None:
            raise ValueError("resume=True needs out (the folder of the checkpoint)")
        state = load_checkpoint(ckpt)
        saved = {**VAEConfig.field_defaults(), **state["config"]}  # keys added since: defaults
        if state["backend"] != backend or saved != cfg.to_dict():
            raise ValueError(
                f"--resume: {ckpt} was written by backend {state['backend']!r} with config "
                f"{state['config']}; rerun with the same flags (or another --out)"
            )
        vae = vae or make_vae(backend, cfg, data.side)
        vae.load_state_dict(state["vae"])
        rng.bit_generator.state = state["data_rng"]
        start, history = state["epoch"], state["history"]
    vae = vae or make_vae(backend, cfg, data.side)
    compile_seconds = None
    for epoch in range(start, epochs):
        t0 = time.perf_counter()
        batches = epoch_batches(data, rng, cfg.batch_size)
        if compile_seconds is None:  # jit compilation is kept out of the epoch times
            compile_seconds = vae.warmup(batches[0])
            history.setdefault("compile_seconds", []).append(compile_seconds)
            t0 += compile_seconds
        bar = tqdm(total=len(batches), desc=f"epoch {epoch + 1}/{epochs}", disable=not progress,
                   leave=False)
        loss = vae.train_epoch(batches, bar)
        bar.close()
        history["epoch_seconds"].append(time.perf_counter() - t0)
        history["loss"].append(loss)
        if progress if verbose is None else verbose:
            print(f"epoch {epoch + 1}/{epochs}: loss {loss:.3f} nats/image, "
                  f"{history['epoch_seconds'][-1]:.2f} s", flush=True)
        if ckpt is not None:
            save_checkpoint(ckpt, vae, backend, rng, epoch + 1, history)
    return vae, history


def evaluate(vae, x: np.ndarray, num_samples: int = 128, chunk_rows: int = 8192,
             progress: bool = False, per_image: bool = False) -> dict:
    """Per-image test ELBO and IS log-likelihood (nats), ``num_samples`` draws of ``q`` each.

    ``log p(x) ~= logsumexp_k(log p(x, z_k) - log q(z_k | x)) - log K``; the ELBO is the mean of
    the same log weights (no free bits). Returns means and standard errors over images (and
    the per-image arrays ``elbo``, ``log_likelihood`` if ``per_image``).
    """
    from tqdm.auto import tqdm

    K = num_samples
    n = max(1, chunk_rows // K)
    elbo, ll = [], []
    for i in tqdm(range(0, len(x), n), desc="evaluate", disable=not progress, leave=False):
        xs = x[i : i + n]
        lp, lq = vae.log_weights(np.tile(xs, (K, 1)))
        lw = (lp - lq).reshape(K, len(xs)).astype(np.float64)
        elbo.append(lw.mean(0))
        ll.append(logsumexp(lw, axis=0) - math.log(K))
    elbo, ll = np.concatenate(elbo), np.concatenate(ll)
    se = lambda a: float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")  # noqa: E731
    out = {"test_elbo": float(elbo.mean()), "test_elbo_se": se(elbo),
           "test_log_likelihood": float(ll.mean()), "test_log_likelihood_se": se(ll)}
    if per_image:
        out.update(elbo=elbo, log_likelihood=ll)
    return out


def save_figures(vae, x_test: np.ndarray, side: int, out: Path, seed: int = 0) -> list[Path]:
    """``samples.png`` (8x8 prior samples, Bernoulli means) and ``reconstructions.png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    z = rng.standard_normal((64, vae.arch.latent_dim)).astype(np.float32)
    samples = vae.decode_probs(z).reshape(8, 8, side, side)
    grid = samples.transpose(0, 2, 1, 3).reshape(8 * side, 8 * side)
    x = x_test[:16]
    recon = vae.reconstruct(x)
    pairs = np.stack([x, recon]).reshape(2, 16, side, side).transpose(0, 2, 1, 3).reshape(2 * side, 16 * side)
    paths = []
    for name, img, title in (("samples.png", grid, "samples (Bernoulli means)"),
                             ("reconstructions.png", pairs, "test images (top), reconstructions (bottom)")):
        fig, ax = plt.subplots(figsize=(img.shape[1] / 40 + 1, img.shape[0] / 40 + 1))
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
        path = Path(out) / name
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        paths.append(path)
    return paths


def write_metrics(path: Path, metrics: dict) -> None:
    with open(path, "w") as f:
        json.dump(metrics, f, indent=2)
        f.write("\n")
