"""A PixelCNN baseline (masked convolutions, Bernoulli pixels) in JAX, for the synthesis benchmark.

>>> from models.pixelcnn import PRESETS, init_params, sample_images
>>> cfg = PRESETS["tiny"]
>>> x = sample_images(init_params(cfg), cfg, jax.random.key(0), 4)  # [4, 1, 8, 8] in {0, 1}

``python -m models.pixelcnn --help`` trains one and reports its test nats.
"""

from .net import (
    PRESETS,
    PixelCNNConfig,
    channels_for_params,
    init_params,
    log_prob,
    logits,
    nll,
    param_count,
    taps,
)
from .sample import sample_images
from .train import evaluate, fit, load_checkpoint, marginal_nats, save_checkpoint

__all__ = ["PixelCNNConfig", "PRESETS", "init_params", "logits", "log_prob", "nll", "taps",
           "param_count", "channels_for_params", "sample_images", "fit",
           "evaluate", "marginal_nats", "save_checkpoint", "load_checkpoint"]
