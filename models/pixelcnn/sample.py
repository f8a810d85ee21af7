"""Naive PixelCNN sampling: one full forward pass per pixel inside ``jax.lax.fori_loop``, jitted.

For ``i = 0 .. P-1`` (raster order): ``l = logits(x)[:, i]``, ``u_i ~ U(0, 1)`` from
``fold_in(key, i)``, ``x_i = 1[u_i < sigmoid(l)]``. Each step recomputes the whole network on
the whole image, as the paper's "naively sampled PixelCNN" does (no caching), so every step
costs the same; ``steps < P`` runs only the first ``steps`` pixels (the benchmark times a prefix
of the loop and scales it by ``P / steps`` when a full run would take too long on a CPU).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from .net import PixelCNNConfig, logits

__all__ = ["sample_images"]


@partial(jax.jit, static_argnames=("cfg", "n", "steps"))
def sample_images(params: dict, cfg: PixelCNNConfig, key: jax.Array, n: int,
                  steps: int | None = None) -> jax.Array:
    """``n`` images ``[n, 1, side, side]`` in {0, 1} (pixels after ``steps`` stay 0)."""
    P = cfg.pixels
    steps = P if steps is None else steps
    if not 0 < steps <= P:
        raise ValueError(f"steps must be in 1..{P}; got {steps}")

    def body(i, x):
        p_i = jax.nn.sigmoid(logits(params, cfg, x)[:, i])
        u = jax.random.uniform(jax.random.fold_in(key, i), (n,))
        return x.at[:, i].set((u < p_i).astype(x.dtype))

    x = jax.lax.fori_loop(0, steps, body, jnp.zeros((n, P), jnp.float32))
    return jnp.reshape(x, (n, 1, cfg.side, cfg.side))
