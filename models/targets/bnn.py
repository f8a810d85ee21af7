"""A small Bayesian neural network: one hidden layer of 16 tanh units, 1-D regression.

    b1 ~ N(0, 1) [H], b2 ~ N(0, 1) []          latents "b1", "b2"
    sigma ~ HalfNormal(1)                       latent "sigma", positive (observation noise)
    w1 ~ N(0, 1) [1, H], w2 ~ N(0, 1) [H]       latents "w1", "w2"
    y_n ~ N(tanh(x_n w1 + b1) . w2 + b2, sigma), n < N

Latent dimension 3 H + 2 = 50 for H = 16. Data: ``N`` points on [-1, 1], ``y = x + 0.2 x^3 +
0.5 (0.5 + x)^2 sin(4 x) + 0.15 noise`` (the function of NumPyro's GP and BNN examples),
standardized, from ``default_rng(seed)``. The posterior is multimodal (hidden units can be
permuted and their signs flipped): its NUTS reference is one chain in one mode, so moments
against it say little; the ELBO is the measure here.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference


@lru_cache(maxsize=4)
def bnn_data(N: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x [N, 1]``, ``y [N]`` (float64, ``y`` standardized)."""
    rng = np.random.default_rng(seed)
    x = np.linspace(-1.0, 1.0, N)
    y = x + 0.2 * x**3 + 0.5 * (0.5 + x) ** 2 * np.sin(4.0 * x) + 0.15 * rng.standard_normal(N)
    return x[:, None], (y - y.mean()) / y.std()


def bnn_model(x, y, hidden: int) -> None:
    """``x [N, 1]`` inputs, ``y [N]`` observed; ``hidden`` units."""
    b1 = pyro.sample("b1", dist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
    b2 = pyro.sample("b2", dist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    w1 = pyro.sample("w1", dist.Normal(0.0, 1.0).expand([1, hidden]).to_event(2))
    w2 = pyro.sample("w2", dist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
    # Pyro's vectorized particles sit left of the data plate: b1 [P, 1, H], w1 [P, 1, 1, H],
    # b2 and sigma [P, 1]; so the hidden activations are [P, N, H] (unbatched: [N, H]) and the
    # data plate's batch dimension lines up with the latents' trailing 1
    h = ops.tanh(x * w1[..., 0, :] + b1)
    mean = (h * w2).sum(-1) + b2
    with pyro.plate("data", y.shape[-1]):
        pyro.sample("y", dist.Normal(mean, sigma), obs=y)


def bnn(N: int = 100, hidden: int = 16, seed: int = 0) -> ModelSpec:
    """Spec for the current backend: ``model(x, y, hidden=H)``; latent dim 3 H + 2."""
    x, y = bnn_data(int(N), int(seed))
    H = int(hidden)
    sites = (("b1", (H,)), ("b2", ()), ("sigma", ()), ("w1", (1, H)), ("w2", (H,)))
    config = {"N": int(N), "hidden": H, "seed": int(seed)}
    digest = data_digest(x, y)
    ref = load_reference("bnn", config, digest)
    return build_spec("bnn", bnn_model, (x, y), {"hidden": H}, sites, ref, config, digest)
