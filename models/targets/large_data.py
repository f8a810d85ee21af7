"""Large-data models with subsampled plates (issue 23), written once for both backends.

Logistic regression (``logistic``), all latents global::

    alpha ~ N(0, 2.5)                          latent "alpha", shape []
    beta ~ N(0, I_F)                           latent "beta", shape [F] (one event)
    y_n ~ Bernoulli(logits = alpha + X_n beta), n < N     plate "data" (subsampled)

Hierarchical regression (``hier``), ``J`` groups of ``K`` rows each, the group intercepts local::

    intercept_loc ~ N(0, 5), intercept_scale ~ HalfNormal(2)           globals, shape []
    noise_scale ~ HalfNormal(2), slope ~ N(0, 5)                       globals, shape []
    intercepts_j ~ N(intercept_loc, intercept_scale), j < J            plate "groups" (subsampled)
    y_jk ~ N(intercepts_j + slope * x_jk, noise_scale), k < K          one event of K per group

With ``subsample_size=B`` the plate draws ``B`` of its ``N`` (or ``J``) elements and scales their
log-likelihood (and, for ``hier``, the intercepts' prior) by ``N / B``; ``None`` uses all of them.
Data are simulated with ``numpy.random.default_rng(seed)`` (float32; the true values in ``TRUE_*``)
and never stored.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from models.api import dist, ops, pyro

__all__ = ["SIZES", "TRUE_HIER", "hier_data", "hier_model", "logistic_data", "logistic_model"]

#: the issue's sizes ("full") and a test scale ("small"): data arguments, then the fit's minibatch
#: size (rows / groups), SVI steps and initial Adam step size (the benchmark's defaults)
SIZES: dict[str, dict[str, dict[str, float]]] = {
    "small": {"logistic": {"num_rows": 2000, "num_features": 5, "batch": 500, "steps": 400, "lr": 1e-2},
              "hier": {"num_groups": 20, "group_size": 10, "batch": 5, "steps": 1000, "lr": 1e-2}},
    "full": {"logistic": {"num_rows": 1_000_000, "num_features": 50, "batch": 20_000, "steps": 3000,
                          "lr": 2e-2, "lr_end": 1e-2, "final_steps": 800, "final_lr": 1e-2,
                          "final_lr_end": 1e-3, "average_last": 500},
             "hier": {"num_groups": 1000, "group_size": 100, "batch": 100, "steps": 5000, "lr": 1e-2,
                      "lr_end": 1e-3, "average_last": 2000}},
}
#: the keys of a ``SIZES`` entry that set the fit, not the data (``final_*``: a last phase on all rows,
#: Adam from ``final_lr`` decaying to ``final_lr_end`` (default 1e-4), after the subsampled one from
#: ``lr`` to ``lr_end``; ``average_last``: the fitted parameters are the mean of that many last iterates)
FIT_KEYS = ("batch", "steps", "lr", "lr_end", "final_steps", "final_lr", "final_lr_end", "average_last")
TRUE_ALPHA = -0.5
TRUE_HIER = {"intercept_loc": 1.5, "intercept_scale": 0.6, "slope": -0.7, "noise_scale": 0.8}


@lru_cache(maxsize=2)
def logistic_data(num_rows: int, num_features: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``X [N, F]`` standard normal and ``y [N]`` in {0, 1} (float32); ``beta ~ N(0, 0.5^2 I)``."""
    if num_rows < 1 or num_features < 1:
        raise ValueError(f"logistic: need num_rows, num_features >= 1; got {num_rows}, {num_features}")
    rng = np.random.default_rng(seed)
    beta = 0.5 * rng.standard_normal(num_features)
    X = rng.standard_normal((num_rows, num_features), dtype=np.float32)
    logits = TRUE_ALPHA + X @ beta.astype(np.float32)
    y = (rng.random(num_rows, dtype=np.float32) < 1 / (1 + np.exp(-logits))).astype(np.float32)
    return X, y


@lru_cache(maxsize=2)
def hier_data(num_groups: int, group_size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``x [J, K]`` in {0, 1} (a binary covariate, 30% ones) and ``y [J, K]`` (float32)."""
    if num_groups < 1 or group_size < 1:
        raise ValueError(f"hier: need num_groups, group_size >= 1; got {num_groups}, {group_size}")
    rng = np.random.default_rng(seed)
    t = TRUE_HIER
    a = t["intercept_loc"] + t["intercept_scale"] * rng.standard_normal(num_groups)
    x = (rng.random((num_groups, group_size)) < 0.3).astype(np.float64)
    y = a[:, None] + t["slope"] * x + t["noise_scale"] * rng.standard_normal(x.shape)
    return x.astype(np.float32), y.astype(np.float32)


def logistic_model(X, y, subsample_size: int | None = None) -> None:
    """``X [N, F]``, ``y [N]``; ``subsample_size`` rows per call (None: all)."""
    alpha = pyro.sample("alpha", dist.Normal(0.0, 2.5))
    beta = pyro.sample("beta", dist.Normal(ops.zeros_like(X[0]), 1.0).to_event(1))
    with pyro.plate("data", X.shape[0], subsample_size=subsample_size) as idx:
        Xb, yb = (X, y) if subsample_size is None else (X[idx], y[idx])
        logits = alpha + (Xb * beta).sum(-1)  # [B]; [P, B] under a particle plate at dim -2
        pyro.sample("y", dist.Bernoulli(logits=logits), obs=yb)


def hier_model(x, y, subsample_size: int | None = None) -> None:
    """``x [J, K]``, ``y [J, K]``; ``subsample_size`` groups per call (None: all)."""
    loc = pyro.sample("intercept_loc", dist.Normal(0.0, 5.0))
    scale = pyro.sample("intercept_scale", dist.HalfNormal(2.0))
    noise = pyro.sample("noise_scale", dist.HalfNormal(2.0))
    slope = pyro.sample("slope", dist.Normal(0.0, 5.0))
    with pyro.plate("groups", y.shape[0], subsample_size=subsample_size) as idx:
        xb, yb = (x, y) if subsample_size is None else (x[idx], y[idx])
        a = pyro.sample("intercepts", dist.Normal(loc, scale))  # [B]
        mean = a[..., None] + slope[..., None] * xb  # [..., B, K]
        pyro.sample("y", dist.Normal(mean, noise[..., None]).to_event(1), obs=yb)


def hier_encoder_input(x, y, subsample_size: int | None = None):
    """The amortized guide's input per group: ``[J, 2K]``, the group's ``y`` then its ``x``."""
    return ops.concatenate([y, x], -1)
