"""Binary image data sets for the VAE: ``mnist`` (dynamic), ``binarized_mnist`` (static), ``digits``.

- ``mnist``: ``<data-dir>/mnist.npz``; each epoch every training pixel is drawn anew as
  Bernoulli(x / 255) (60,000 images, Burda et al. 2015); the 10,000 test images are binarized
  once with a fixed seed.
- ``binarized_mnist``: ``<data-dir>/binarized_mnist.npz``, Larochelle & Murray's static
  50k/10k/10k split (train on ``train``, report on ``test``).
- ``digits``: scikit-learn's 8x8 digits (offline), Bernoulli(x / 16), dynamic for training like
  ``mnist``, a fixed 1,500/297 split. For tests and demos.

``<data-dir>`` defaults to ``../shared/data`` from the project root. A data set named explicitly
but missing raises ``FileNotFoundError``; only ``load(None)`` falls back (mnist, else digits).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["DATASETS", "DEFAULT_DATA_DIR", "BinaryImages", "load"]

DATASETS = ("mnist", "binarized_mnist", "digits")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data"
TEST_SEED = 123  # binarization of the test sets
DIGITS_SPLIT_SEED = 0
DIGITS_TEST = 297


@dataclass
class BinaryImages:
    """``train`` holds probabilities (dynamic) or {0, 1} (static); ``test`` is {0, 1} float32."""

    name: str
    side: int
    train: np.ndarray  # [N, side*side] float32
    test: np.ndarray  # [M, side*side] float32 in {0, 1}
    dynamic: bool
    source: str

    def train_epoch(self, rng: np.random.Generator) -> np.ndarray:
        """The training images for one epoch, binarized anew with ``rng`` if dynamic."""
        if not self.dynamic:
            return self.train
        return (rng.random(self.train.shape, dtype=np.float32) < self.train).astype(np.float32)

    def describe(self) -> str:
        kind = "dynamically" if self.dynamic else "statically"
        return (f"{self.name} ({kind} binarized, {len(self.train)} train / {len(self.test)} test, "
                f"{self.side}x{self.side}) from {self.source}")


def _binarize_once(p: np.ndarray, seed: int = TEST_SEED) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(p.shape, dtype=np.float32) < p).astype(np.float32)


def _file(data_dir: Path, name: str) -> Path:
    path = Path(data_dir) / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(
            f"Data set {name!r} needs {path}, which does not exist; pass --data-dir DIR "
            f"(the folder holding {name}.npz) or choose --dataset digits (offline)."
        )
    return path


def load(name: str | None = "digits", data_dir: str | Path | None = None) -> BinaryImages:
    """The data set ``name`` in :data:`DATASETS`; ``None``: mnist if present, else digits."""
    data_dir = Path(DEFAULT_DATA_DIR if data_dir is None else data_dir)
    if name is None:
        name = "mnist" if (data_dir / "mnist.npz").exists() else "digits"
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; expected one of {DATASETS}")
    if name == "mnist":
        path = _file(data_dir, name)
        with np.load(path) as f:
            train = f["x_train"].reshape(-1, 784).astype(np.float32) / 255.0
            test = _binarize_once(f["x_test"].reshape(-1, 784).astype(np.float32) / 255.0)
        return BinaryImages(name, 28, train, test, True, str(path))
    if name == "binarized_mnist":
        path = _file(data_dir, name)
        with np.load(path) as f:
            train = f["train"].astype(np.float32)
            test = f["test"].astype(np.float32)
        return BinaryImages(name, 28, train, test, False, str(path))
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float32) / 16.0
    perm = np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(x))
    train, test = x[perm[DIGITS_TEST:]], _binarize_once(x[perm[:DIGITS_TEST]])
    return BinaryImages(name, 8, train, test, True, "sklearn.datasets.load_digits")
