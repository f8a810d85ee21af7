"""The discretized logistic likelihood of 8-bit images (Kingma et al. 2016, appendix C;
PixelCNN++ edge handling), over an op set, and its Pyro / NumPyro distributions.

Pixels ``x = k / 255``, ``k in {0..255}``, are scored on ``y = 2x - 1 in [-1, 1]`` (bins of
width ``2/255``)::

    P(k) = sigmoid((y + 1/255 - mu) / s) - sigmoid((y - 1/255 - mu) / s)     0 < k < 255
    P(0) = sigmoid((y + 1/255 - mu) / s),  P(255) = 1 - sigmoid((y - 1/255 - mu) / s)

so the 256 probabilities sum to one exactly. ``s = exp(log_scale)``.
"""

from __future__ import annotations

import math

__all__ = ["discretized_logistic_log_prob", "numpyro_distribution", "pyro_distribution"]

HALF_BIN = 1 / 255


def discretized_logistic_log_prob(F, x, mean, log_scale):
    """Elementwise ``log P(x)`` for ``x`` in [0, 1] (multiples of 1/255); broadcasts."""
    y = 2 * x - 1
    inv_s = F.exp(-log_scale)
    plus = inv_s * (y - mean + HALF_BIN)
    minus = inv_s * (y - mean - HALF_BIN)
    log_cdf_plus = F.log_sigmoid(plus)
    log_sf_minus = F.log_sigmoid(-minus)
    # log(sigmoid(a) - sigmoid(b)) = log sigmoid(a) + log(1 - exp(b - a)) + log sigmoid(-b), stably
    delta = plus - minus
    log_mid = log_cdf_plus + log_sf_minus + F.log(-_expm1(F, -delta) + 1e-30)
    return F.where(y < -0.999, log_cdf_plus, F.where(y > 0.999, log_sf_minus, log_mid))


def _expm1(F, x):
    return F.exp(x) - 1


def numpyro_distribution():
    """The NumPyro class ``DiscretizedLogistic(mean, log_scale)`` (batch shape of ``mean``)."""
    import jax
    import jax.numpy as jnp
    import numpyro.distributions as nd
    from numpyro.distributions import constraints

    from .ops import jax_ops

    F = jax_ops()

    class DiscretizedLogistic(nd.Distribution):
        support = constraints.unit_interval

        def __init__(self, mean, log_scale, validate_args=None):
            self.mean_, self.log_scale = jnp.broadcast_arrays(mean, log_scale)
            super().__init__(batch_shape=jnp.shape(self.mean_), validate_args=validate_args)

        def sample(self, key, sample_shape=()):
            shape = sample_shape + self.batch_shape
            u = jax.random.uniform(key, shape, minval=1e-5, maxval=1 - 1e-5)
            y = self.mean_ + jnp.exp(self.log_scale) * (jnp.log(u) - jnp.log1p(-u))
            return jnp.round((jnp.clip(y, -1, 1) + 1) * 127.5) / 255

        def log_prob(self, value):
            return discretized_logistic_log_prob(F, value, self.mean_, self.log_scale)

    return DiscretizedLogistic


def pyro_distribution():
    """The Pyro class ``DiscretizedLogistic(mean, log_scale)`` (batch shape of ``mean``)."""
    import torch
    from pyro.distributions import TorchDistribution
    from torch.distributions import constraints

    from .ops import torch_ops

    F = torch_ops()

    class DiscretizedLogistic(TorchDistribution):
        support = constraints.unit_interval
        arg_constraints: dict = {}

        def __init__(self, mean, log_scale, validate_args=None):
            self.mean_, self.log_scale = torch.broadcast_tensors(mean, log_scale)
            super().__init__(batch_shape=self.mean_.shape, validate_args=validate_args)

        def expand(self, batch_shape, _instance=None):
            return DiscretizedLogistic(self.mean_.expand(batch_shape), self.log_scale.expand(batch_shape))

        @torch.no_grad()
        def sample(self, sample_shape=()):
            shape = torch.Size(sample_shape) + self.batch_shape
            u = torch.rand(shape).clamp(1e-5, 1 - 1e-5)
            y = self.mean_ + self.log_scale.exp() * (u.log() - (-u).log1p())
            return torch.round((y.clamp(-1, 1) + 1) * 127.5) / 255

        def log_prob(self, value):
            return discretized_logistic_log_prob(F, value, self.mean_, self.log_scale)

    return DiscretizedLogistic


LOG2 = math.log(2)
