"""Two-parameter logistic item-response model (2PL), simulated answers.

    ability ~ N(0, 1)                  latent "ability", shape [P] (one event; persons)
    difficulty ~ N(0, 2)               latent "difficulty", shape [I] (one event; items)
    discrimination ~ LogNormal(0, 0.5) latent "discrimination", shape [I], positive
    y_pi ~ Bernoulli(logits = discrimination_i (ability_p - difficulty_i))   observed [P, I]

Geometry: products of latents (discrimination x ability) give banana-shaped, scale-coupled
pairs; each ability is pinned by only ``I`` binary answers (skewed marginals).
Data: one draw at ``TRUE``-scale parameters (``default_rng(seed)``).
Reference: NUTS (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference


@lru_cache(maxsize=4)
def irt_data(num_persons: int = 90, num_items: int = 20, seed: int = 0) -> np.ndarray:
    """Answers ``y [P, I]`` in {0, 1} (float64)."""
    if num_persons < 2 or num_items < 2:
        raise ValueError(f"item_response: need >= 2 persons and items; got {num_persons}, {num_items}")
    rng = np.random.default_rng(seed)
    ability = rng.standard_normal(num_persons)
    difficulty = rng.normal(0.0, 1.0, num_items)
    discrimination = rng.lognormal(0.0, 0.5, num_items)
    logits = discrimination * (ability[:, None] - difficulty)
    return (rng.random((num_persons, num_items)) < 1 / (1 + np.exp(-logits))).astype(np.float64)


def item_response_model(y) -> None:
    """``y [P, I]`` answers in {0, 1}."""
    ability = pyro.sample("ability", dist.Normal(ops.zeros_like(y[:, 0]), 1.0).to_event(1))
    difficulty = pyro.sample("difficulty", dist.Normal(ops.zeros_like(y[0]), 2.0).to_event(1))
    discrimination = pyro.sample("discrimination",
                                 dist.LogNormal(ops.zeros_like(y[0]), 0.5).to_event(1))
    logits = discrimination[..., None, :] * (ability[..., :, None] - difficulty[..., None, :])
    pyro.sample("y", dist.Bernoulli(logits=logits).to_event(2), obs=y)


def item_response(num_persons: int = 90, num_items: int = 20, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(y)``; latent dim P + 2 I."""
    P, I = int(num_persons), int(num_items)
    y = irt_data(P, I, int(seed))
    sites = (("ability", (P,)), ("difficulty", (I,)), ("discrimination", (I,)))
    config = {"num_persons": P, "num_items": I, "seed": int(seed)}
    digest = data_digest(y)
    ref = load_reference("item_response", config, digest)
    return build_spec("item_response", item_response_model, (y,), {}, sites, ref, config, digest)
