"""The IAF as a NumPyro ``Transform``: K gated (or affine) autoregressive steps."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from numpyro.distributions import constraints
from numpyro.distributions.transforms import Transform

from .masks import default_hidden_dims
from .nn import MADE, Params

__all__ = ["IAF", "AFFINE_LOG_SCALE_RANGE"]

#: ``s`` of the affine variant is clamped to this range (softly, by ``tanh``).
AFFINE_LOG_SCALE_RANGE = (-5.0, 3.0)


def _soft_clamp(s: jnp.ndarray) -> jnp.ndarray:
    """Smooth clamp to ``(lo, hi)``, the identity near 0 (slope 1 at 0)."""
    lo, hi = AFFINE_LOG_SCALE_RANGE
    return jnp.where(s > 0, hi * jnp.tanh(s / hi), -lo * jnp.tanh(s / -lo))


def _step(made: MADE, params: Params, z, h, gated: bool):
    """One step on ``z [..., D]``: returns ``(z', log|det| [...])``."""
    m, s = made.apply(params, z, h)
    if gated:  # paper eq. (11)-(12): z' = sigma z + (1 - sigma) m, log|det| = sum log sigma
        sigma = jax.nn.sigmoid(s)
        return sigma * z + (1 - sigma) * m, jax.nn.log_sigmoid(s).sum(-1)
    s = _soft_clamp(s)
    return m + jnp.exp(s) * z, s.sum(-1)


def _step_inverse(made: MADE, params: Params, y, h, gated: bool):
    """Invert one step by D sequential passes (output ``i`` only needs inputs ``< i``)."""

    def body(_, z):
        m, s = made.apply(params, z, h)
        if gated:
            sigma = jax.nn.sigmoid(s)
            return (y - (1 - sigma) * m) / sigma
        return (y - m) * jnp.exp(-_soft_clamp(s))

    return jax.lax.fori_loop(0, made.input_dim, body, jnp.zeros_like(y))


class IAF(Transform):
    """Inverse autoregressive flow (Kingma et al. 2016, arXiv:1606.04934), ``z [..., D]``.

    Each of ``num_flows`` steps computes ``(m, s) = MADE_t(z, h)`` and, gated (default, the
    paper's eq. 11-12) ``sigma = sigmoid(s)``, ``z <- sigma * z + (1 - sigma) * m``,
    ``log|det| += sum_i log sigma_i``; or affine ``z <- m + exp(s) * z`` with ``s`` softly
    clamped to :data:`AFFINE_LOG_SCALE_RANGE`. Step ``t`` uses the reversed variable order of
    step ``t - 1``. ``s`` starts at ``gate_bias`` (gated; 0 for affine) and ``m`` near 0, so a
    fresh flow is close to ``z -> sigmoid(gate_bias)**K * z``. ``skip`` adds a masked linear
    term ``V z`` to ``m``, so that one step can express any full-covariance Gaussian.
    Sampling is one pass per step; the inverse (scoring an arbitrary point) takes ``D``.

    Parameters are the pytree ``flow.params`` (a tuple of per-step dicts, initialised from
    ``seed``); ``flow.with_params(p)`` rebinds them, e.g. to values from ``numpyro.param``.
    Same names, arguments and defaults as ``pyro_iaf.IAF``.

    Args:
        input_dim: ``D``, the size of ``z``.
        num_flows: ``K``, the number of steps; the variable order is reversed between steps.
        hidden_dims: hidden widths of each step's MADE; None gives ``default_hidden_dims(D)``.
        context_dim: size ``C`` of a context ``h`` that conditions every step (0: none; see
            ``condition``).
        skip: the masked linear skip term ``V z`` in each step's ``m``.
        gated: the paper's gated step (True) or the affine step (False).
        gate_bias: initial ``s`` of a gated step (a fresh gate is ``sigmoid(gate_bias)``).
        output_scale: scale of the output layers' initial weights (near-identity steps at the
            start).
        seed: seed of the initial weights.

    Example:
        >>> flow = IAF(4, num_flows=2, hidden_dims=(16,))
        >>> z = jnp.ones((10, 4))
        >>> y = flow(z); flow.log_abs_det_jacobian(z, y).shape
        (10,)
        >>> q = dist.TransformedDistribution(dist.Normal(jnp.zeros(4)).to_event(1), flow)
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector
    sign = 1

    def __init__(
        self,
        input_dim: int,
        *,
        num_flows: int = 2,
        hidden_dims: Sequence[int] | None = None,
        context_dim: int = 0,
        skip: bool = True,
        gated: bool = True,
        gate_bias: float = 2.0,
        output_scale: float = 0.01,
        seed: int = 0,
    ) -> None:
        if input_dim < 1 or num_flows < 1:
            raise ValueError(f"IAF needs input_dim >= 1 and num_flows >= 1; got {input_dim}, {num_flows}")
        self.input_dim, self.num_flows, self.context_dim = input_dim, num_flows, context_dim
        self.hidden_dims = tuple(default_hidden_dims(input_dim) if hidden_dims is None else hidden_dims)
        self.skip, self.gated, self.gate_bias, self.output_scale = skip, gated, gate_bias, output_scale
        self.seed = seed
        self.steps = tuple(
            MADE(
                input_dim,
                self.hidden_dims,
                context_dim=context_dim,
                skip=skip,
                reverse=bool(t % 2),
                s_bias=gate_bias if gated else 0.0,
                output_scale=output_scale,
                seed=seed + t,
            )
            for t in range(num_flows)
        )
        self.params: tuple[Params, ...] = tuple(made.params for made in self.steps)
        self.context: jnp.ndarray | None = None

    @property
    def config(self) -> dict:
        """Constructor arguments; the same keys in both backends."""
        keys = (
            "input_dim",
            "num_flows",
            "hidden_dims",
            "context_dim",
            "skip",
            "gated",
            "gate_bias",
            "output_scale",
            "seed",
        )
        return {k: getattr(self, k) for k in keys}

    def init_params(self, key: jax.Array) -> tuple[Params, ...]:
        """Fresh parameters drawn with ``key`` (what ``numpyro.param`` should start from)."""
        return tuple(
            made.init_params(k) for made, k in zip(self.steps, jax.random.split(key, self.num_flows))
        )

    def with_params(self, params: Sequence[Params]) -> IAF:
        """The same flow with other parameters (same structure as ``flow.params``)."""
        new = copy.copy(self)
        new.params = tuple(params)
        return new

    def condition(self, context: jnp.ndarray) -> IAF:
        """The flow for context ``h [..., C]`` (Pyro's ``ConditionalTransformModule`` convention)."""
        if self.context_dim == 0:
            raise ValueError("IAF.condition(h) needs a flow built with context_dim > 0")
        if jnp.shape(context)[-1:] != (self.context_dim,):
            raise ValueError(
                f"IAF expected context shape [..., {self.context_dim}]; got {tuple(jnp.shape(context))}"
            )
        new = copy.copy(self)
        new.context = context
        return new

    def _check_input(self, x) -> None:
        if jnp.shape(x)[-1:] != (self.input_dim,):
            raise ValueError(f"IAF expected input shape [..., {self.input_dim}]; got {tuple(jnp.shape(x))}")

    def call_with_intermediates(self, x):
        """``x [..., D]`` -> ``(y [..., D], log|det| [...])``."""
        self._check_input(x)
        logdet = jnp.zeros(())
        for made, params in zip(self.steps, self.params):
            x, ld = _step(made, params, x, self.context, self.gated)
            logdet = logdet + ld
        return x, logdet

    def __call__(self, x):
        return self.call_with_intermediates(x)[0]

    def _inverse(self, y):
        self._check_input(y)
        for made, params in reversed(tuple(zip(self.steps, self.params))):
            y = _step_inverse(made, params, y, self.context, self.gated)
        return y

    def log_abs_det_jacobian(self, x, y, intermediates=None):
        """``log|det dy/dx|``, shape ``x.shape[:-1]``; free when given the forward's intermediates."""
        if intermediates is not None:
            return intermediates
        return self.call_with_intermediates(x)[1]

    def tree_flatten(self):
        aux = {k: v for k, v in self.__dict__.items() if k not in ("params", "context", "_inv")}
        return (self.params, self.context), (("params", "context"), aux)
