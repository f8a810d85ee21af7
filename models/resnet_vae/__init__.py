"""The paper's ResNet VAE (section 6.2, appendix C): a hierarchy of spatial stochastic layers,
bidirectional inference (bottom-up pass, then a top-down pass shared by prior and posterior),
an IAF posterior in every layer, free bits, weight normalisation with data-dependent init and
Adamax; Pyro or NumPyro, one network code for both.

>>> import jax
>>> from models.resnet_vae import ResNetVAEConfig, init_params, param_count, sample_images
>>> cfg = ResNetVAEConfig.preset("tiny")
>>> params = init_params(cfg, seed=0)                      # flat {name: float32 NumPy array}
>>> imgs = sample_images(params, cfg, jax.random.PRNGKey(0), 16)   # [16, 1, 8, 8], NumPyro

Run ``python -m models.resnet_vae --help`` for the command line.
"""

from __future__ import annotations

from .config import PRESETS, ResNetVAEConfig
from .nets import data_init, init_params, param_count

__all__ = ["ResNetVAEConfig", "PRESETS", "init_params", "data_init", "param_count", "sample_images",
           "make_resnet_vae", "BACKENDS"]

BACKENDS = ("pyro", "numpyro")


def sample_images(params: dict, cfg: ResNetVAEConfig, key, n: int):
    """NumPyro prior sampler ``-> [n, C, S, S]`` (see :func:`.numpyro_backend.sample_images`);
    jittable with ``static_argnums=(1, 3)``."""
    from .numpyro_backend import sample_images as _sample

    return _sample(params, cfg, key, n)


def make_resnet_vae(backend: str, cfg: ResNetVAEConfig, init_batch=None, params: dict | None = None):
    """A :class:`.pyro_backend.PyroResNetVAE` or :class:`.numpyro_backend.NumPyroResNetVAE`;
    ``init_batch [B, C*S*S]``: data-dependent weight-norm init on it."""
    if backend == "pyro":
        from .pyro_backend import PyroResNetVAE

        return PyroResNetVAE(cfg, init_batch, params)
    if backend == "numpyro":
        from .numpyro_backend import NumPyroResNetVAE

        return NumPyroResNetVAE(cfg, init_batch, params)
    raise ValueError(f"Unknown backend {backend!r}; expected one of {BACKENDS}")
