"""Image data for the ResNet VAE: the binary sets of :mod:`models.vae.data` and 8-bit colour.

- ``digits``, ``mnist``, ``binarized_mnist``: :func:`models.vae.data.load` (binary, 1 channel).
- ``cifar10``: a user-supplied copy (it cannot be downloaded here): ``--data-path`` to a ``.npz``
  with ``x_train``, ``x_test`` uint8 ``[N, 32, 32, 3]`` (or ``[N, 3, 32, 32]``), or to the
  ``cifar-10-batches-py`` folder of the official Python version (``data_batch_1..5``,
  ``test_batch``; pickles by that data set's own format, so only from a trusted source: prefer
  the ``.npz``, which is read without pickle). Pixels are stored as ``k / 255`` in
  channel-major order ``[N, 3*32*32]``.
- ``synthetic_colour``: random smooth 32x32x3 uint8 images (the CIFAR code path without CIFAR).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.vae import data as vae_data

__all__ = ["DATASETS", "ColourImages", "load", "synthetic_colour", "channels_of"]

DATASETS = (*vae_data.DATASETS, "cifar10", "synthetic_colour")


@dataclass
class ColourImages:
    """8-bit images as ``k / 255`` float32 ``[N, C*S*S]`` (channel-major); static."""

    name: str
    side: int
    channels: int
    train: np.ndarray
    test: np.ndarray
    source: str
    dynamic: bool = False

    def train_epoch(self, rng: np.random.Generator) -> np.ndarray:
        return self.train

    def describe(self) -> str:
        return (f"{self.name} ({len(self.train)} train / {len(self.test)} test, {self.channels}x"
                f"{self.side}x{self.side}, 8-bit) from {self.source}")


def channels_of(data) -> int:
    return getattr(data, "channels", 1)


def _to_flat(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x)
    if x.ndim != 4 or x.dtype != np.uint8:
        raise ValueError(f"{what}: expected uint8 images [N, 32, 32, 3] or [N, 3, 32, 32]; got "
                         f"{x.dtype} {x.shape}")
    if x.shape[-1] == 3:
        x = x.transpose(0, 3, 1, 2)
    if x.shape[1:] != (3, 32, 32):
        raise ValueError(f"{what}: expected 32x32 RGB images; got shape {x.shape}")
    return (x.reshape(len(x), -1).astype(np.float32) / 255.0)


def _load_cifar(path: str | Path | None) -> ColourImages:
    if path is None:
        raise FileNotFoundError("cifar10 cannot be downloaded here: pass --data-path to a .npz with "
                                "x_train/x_test uint8 [N, 32, 32, 3] or to cifar-10-batches-py/")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"cifar10: {path} does not exist; pass --data-path to a .npz with "
                                "x_train/x_test or to the cifar-10-batches-py folder")
    if path.is_dir():
        # CIFAR-10's "python version" batches are pickles: that is the data set's own format, and
        # unpickling runs whatever a file holds, so read them only from a trusted download. The
        # ``.npz`` form (x_train / x_test arrays, read with allow_pickle=False) is preferred.
        def batch(name):
            f = path / name
            if not f.exists():
                raise FileNotFoundError(f"cifar10: {f} is missing (expected the official "
                                        "cifar-10-batches-py folder)")
            with open(f, "rb") as fh:
                d = pickle.load(fh, encoding="bytes")
            return np.asarray(d[b"data"], np.uint8).reshape(-1, 3, 32, 32)

        train = np.concatenate([batch(f"data_batch_{i}") for i in range(1, 6)])
        test = batch("test_batch")
    else:
        with np.load(path, allow_pickle=False) as f:
            if "x_train" not in f or "x_test" not in f:
                raise ValueError(f"cifar10: {path} needs arrays x_train and x_test; has {list(f)}")
            train, test = f["x_train"], f["x_test"]
    return ColourImages("cifar10", 32, 3, _to_flat(train, str(path)), _to_flat(test, str(path)), str(path))


def synthetic_colour(n_train: int = 256, n_test: int = 64, side: int = 32, seed: int = 0) -> ColourImages:
    """Smooth random RGB images (sums of a few random waves), uint8-valued, for the colour path."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    u = np.linspace(0, 2 * np.pi, side)
    img = np.zeros((n, 3, side, side))
    for _ in range(3):
        f = rng.uniform(0.5, 3, (n, 3, 2, 1, 1))
        ph = rng.uniform(0, 2 * np.pi, (n, 3, 1, 1))
        img += np.sin(f[:, :, 0] * u[None, None, :, None] + f[:, :, 1] * u[None, None, None, :] + ph)
    img = np.clip(127.5 + 40 * img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    x = img.reshape(n, -1).astype(np.float32) / 255.0
    return ColourImages("synthetic_colour", side, 3, x[:n_train], x[n_train:], f"synthetic (seed {seed})")


def load(name: str | None = "digits", data_dir: str | Path | None = None,
         data_path: str | Path | None = None):
    """A data set of :data:`DATASETS`: binary ones from :mod:`models.vae.data` (``data_dir``),
    ``cifar10`` from ``data_path``, or ``synthetic_colour``."""
    if name == "cifar10":
        return _load_cifar(data_path)
    if name == "synthetic_colour":
        return synthetic_colour()
    if name is not None and name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASETS}")
    return vae_data.load(name, data_dir)
