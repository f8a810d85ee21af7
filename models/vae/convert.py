"""VAE weights between backends: one flat dict of NumPy arrays, names and layouts shared.

Names: ``encoder.<n>``, ``decoder.<n>`` (the dicts of :mod:`models.vae.nets`, PyTorch layouts)
and ``iaf.steps.<t>.<n>`` (``pyro_iaf`` / ``numpyro_iaf`` ``export_params``). Converting is a copy.

>>> from models.vae.convert import convert
>>> twin = convert(numpyro_vae, "pyro")   # same config and weights, other backend
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import make_vae

__all__ = ["convert", "save_weights", "load_weights"]


def convert(vae, backend: str):
    """A new VAE for ``backend`` with ``vae``'s configuration and weights (not optimiser state)."""
    twin = make_vae(backend, vae.cfg, vae.arch.side)
    twin.load_weights(vae.export_weights())
    return twin


def save_weights(vae, path: str | Path) -> None:
    """``vae``'s weights to an ``.npz`` readable by either backend."""
    np.savez(path, **vae.export_weights())


def load_weights(vae, path: str | Path) -> None:
    with np.load(path) as f:
        vae.load_weights({k: f[k] for k in f.files})
