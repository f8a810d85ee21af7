"""Figures of a ResNet VAE run: ``learning_curve.png`` (training loss against steps, from the
history) and ``samples.png`` (a grid of images drawn from the model's prior).

``python -m models.resnet_vae.figures DIR`` redraws both from ``DIR``'s checkpoint (any backend,
trained anywhere: the checkpoint holds the weights), so a run trained on a GPU can be drawn here.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

__all__ = ["image_grid", "save_learning_curve", "save_samples", "save_figures", "main"]


def image_grid(images: np.ndarray, cols: int | None = None) -> np.ndarray:
    """``[n, C, S, S]`` in [0, 1] -> one ``[rows*S, cols*S]`` (grey) or ``[.., .., 3]`` image."""
    n, c, s, _ = images.shape
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    full = np.zeros((rows * cols, c, s, s), images.dtype)
    full[:n] = images
    grid = full.reshape(rows, cols, c, s, s).transpose(0, 3, 1, 4, 2).reshape(rows * s, cols * s, c)
    return grid[..., 0] if c == 1 else grid


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_learning_curve(history: dict, path: Path, title: str = "") -> Path:
    """Training loss (nats/image, the free-bits objective) at each progress line against steps;
    dotted lines where the run was resumed."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(history["step"], history["loss"], lw=1.2)
    for step in history.get("resumed_at", []):
        ax.axvline(step, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (nats / image)")
    if history["loss"] and min(history["loss"]) > 0 and max(history["loss"]) > 4 * min(history["loss"]):
        ax.set_yscale("log")
    ax.set_title(title, fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def save_samples(images: np.ndarray, path: Path, title: str = "") -> Path:
    """``images [n, C, S, S]`` in [0, 1] as one grid."""
    plt = _pyplot()
    grid = image_grid(np.clip(images, 0, 1))
    fig, ax = plt.subplots(figsize=(grid.shape[1] / 40 + 1, grid.shape[0] / 40 + 1))
    ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Path(path)


def save_figures(vae, history: dict, out: Path, n: int = 64, seed: int = 0) -> list[Path]:
    """``<out>/learning_curve.png`` and ``<out>/samples.png`` (``n`` prior samples at ``seed``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    steps = history["step"][-1] if history["step"] else 0
    what = f"{vae.backend}, {steps} steps"
    kind = "Bernoulli means" if vae.cfg.likelihood == "bernoulli" else "discretized-logistic draws"
    return [save_learning_curve(history, out / "learning_curve.png", f"ResNet VAE ({what})"),
            save_samples(vae.sample_images(n, seed), out / "samples.png", f"prior samples ({kind}; {what})")]


def main(argv=None) -> list[Path]:
    from .train import finished_history, restore

    p = argparse.ArgumentParser(prog="python -m models.resnet_vae.figures",
                                description=__doc__.splitlines()[0])
    p.add_argument("dir", help="a folder with checkpoint.npz / checkpoint.json (from --out)")
    p.add_argument("--out", default=None, help="where to write the figures (default: dir)")
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    vae, ckpt = restore(Path(args.dir))
    paths = save_figures(vae, finished_history(ckpt["train"]), Path(args.out or args.dir), args.samples,
                         args.seed)
    for path in paths:
        print(path)
    return paths


if __name__ == "__main__":
    main()
