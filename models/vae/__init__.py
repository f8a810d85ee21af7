"""The paper's VAE on binarized MNIST with an IAF (or diagonal Gaussian) posterior, Pyro or NumPyro.

>>> from models.vae import VAEConfig, make_vae, load
>>> data = load("digits")
>>> vae = make_vae("numpyro", VAEConfig(posterior="iaf"), data.side)

Run ``python -m models.vae --help`` for the command line.
"""

from .config import VAEConfig
from .data import DATASETS, load

__all__ = ["VAEConfig", "DATASETS", "load", "make_vae", "BACKENDS"]

BACKENDS = ("pyro", "numpyro")


def make_vae(backend: str, cfg: VAEConfig, side: int):
    """A :class:`~models.vae.pyro_backend.PyroVAE` or :class:`~models.vae.numpyro_backend.NumPyroVAE`."""
    if backend == "pyro":
        from .pyro_backend import PyroVAE

        return PyroVAE(cfg, side)
    if backend == "numpyro":
        from .numpyro_backend import NumPyroVAE

        return NumPyroVAE(cfg, side)
    raise ValueError(f"Unknown backend {backend!r}; expected one of {BACKENDS}")
