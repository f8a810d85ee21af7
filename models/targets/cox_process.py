"""Log-Gaussian Cox process on a square grid (centered latent field), simulated counts.

    amplitude ~ LogNormal(0, 1)            latent "amplitude", shape [], positive
    bias ~ N(0, 2)                         latent "bias", shape []
    field ~ MVN(bias, amplitude^2 C)       latent "field", shape [G * G] (one event)
    counts_i ~ Poisson(area * exp(field_i))   observed, shape [G * G]

``C [G*G, G*G]``: squared-exponential correlation of the cell centres (unit square, fixed
``LENGTHSCALE``) plus ``JITTER`` on the diagonal; the body gets its Cholesky factor ``L`` and
uses ``scale_tril = amplitude * L``. The field is *not* whitened: the posterior over it is a
strongly correlated, nearly Gaussian 100-D cloud tied to ``amplitude`` by a funnel.
Data: one draw of the model at ``TRUE`` (``default_rng(seed)``).
Reference: NUTS with a dense mass matrix (see ``models/targets/make_references.py``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

TRUE = {"amplitude": 1.0, "bias": 1.0}
LENGTHSCALE = 0.2
JITTER = 1e-3


def cox_design(grid: int) -> tuple[np.ndarray, float]:
    """Cholesky factor ``L [G*G, G*G]`` of the cell correlation and the cell ``area``."""
    g = (np.arange(grid) + 0.5) / grid
    xy = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    corr = np.exp(-0.5 * d2 / LENGTHSCALE**2) + JITTER * np.eye(len(xy))
    return np.linalg.cholesky(corr), 1.0 / grid**2


@lru_cache(maxsize=4)
def cox_data(grid: int = 10, seed: int = 0) -> np.ndarray:
    """Counts ``[G * G]`` (float64), intensity ~ 100 events over the unit square."""
    if grid < 2:
        raise ValueError(f"cox_process: grid must be >= 2; got {grid}")
    rng = np.random.default_rng(seed)
    L, area = cox_design(grid)
    f = TRUE["bias"] + TRUE["amplitude"] * L @ rng.standard_normal(grid * grid)
    return rng.poisson(100.0 * area * np.exp(f)).astype(np.float64)


def cox_process_model(counts, L, area) -> None:
    """``counts [M]`` observed, ``L [M, M]`` correlation Cholesky, ``area`` events per unit
    intensity per cell (the ``100 * cell area`` exposure)."""
    amplitude = pyro.sample("amplitude", dist.LogNormal(0.0, 1.0))
    bias = pyro.sample("bias", dist.Normal(0.0, 2.0))
    loc = bias[..., None] + ops.zeros_like(counts)
    f = pyro.sample("field", dist.MultivariateNormal(loc, scale_tril=amplitude[..., None, None] * L))
    pyro.sample("counts", dist.Poisson(area * ops.exp(f)).to_event(1), obs=counts)


def cox_process(grid: int = 10, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(counts, L, area)``; latent dim G * G + 2."""
    G = int(grid)
    counts = cox_data(G, int(seed))
    L, area = cox_design(G)
    sites = (("amplitude", ()), ("bias", ()), ("field", (G * G,)))
    config = {"grid": G, "seed": int(seed)}
    digest = data_digest(counts)
    ref = load_reference("cox_process", config, digest)
    return build_spec("cox_process", cox_process_model, (counts, L, np.asarray(100.0 * area)), {},
                      sites, ref, config, digest)
