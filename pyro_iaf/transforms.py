"""The IAF as a Pyro ``TransformModule``: K gated (or affine) autoregressive steps."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from pyro.distributions.torch_transform import TransformModule
from torch import nn
from torch.distributions import Transform, constraints

from .masks import default_hidden_dims
from .nn import MADE

__all__ = ["IAF", "ConditionedIAF", "AFFINE_LOG_SCALE_RANGE"]

#: ``s`` of the affine variant is clamped to this range (softly, by ``tanh``).
AFFINE_LOG_SCALE_RANGE = (-5.0, 3.0)


def _soft_clamp(s: torch.Tensor) -> torch.Tensor:
    """Smooth clamp to ``(lo, hi)``, the identity near 0 (slope 1 at 0)."""
    lo, hi = AFFINE_LOG_SCALE_RANGE
    return torch.where(s > 0, hi * torch.tanh(s / hi), -lo * torch.tanh(s / -lo))


def _step(made: MADE, z: torch.Tensor, h: torch.Tensor | None, gated: bool, params: dict | None = None):
    """One step on ``z [..., D]`` (with ``made``'s weights, or ``params``): ``(z', log|det| [...])``."""
    m, s = made(z, h) if params is None else made.forward_with(params, z, h)
    if gated:  # paper eq. (11)-(12): z' = sigma z + (1 - sigma) m, log|det| = sum log sigma
        sigma = torch.sigmoid(s)
        return sigma * z + (1 - sigma) * m, F.logsigmoid(s).sum(-1)
    s = _soft_clamp(s)
    return m + torch.exp(s) * z, s.sum(-1)


def _step_inverse(made: MADE, y: torch.Tensor, h: torch.Tensor | None, gated: bool):
    """Invert one step by D sequential passes (output ``i`` only needs inputs ``< i``)."""
    z = torch.zeros_like(y)
    for _ in range(made.input_dim):
        m, s = made(z, h)
        if gated:
            sigma = torch.sigmoid(s)
            z = (y - (1 - sigma) * m) / sigma
        else:
            z = (y - m) * torch.exp(-_soft_clamp(s))
    return z


class _IAFMath:
    """Forward/inverse/log-det of an :class:`IAF` for a fixed context (None or ``h``)."""

    _iaf: IAF
    context: torch.Tensor | None

    def _forward_with_logdet(
        self, x: torch.Tensor, detach: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y, log|det|)``; ``detach``: the weights enter detached (no gradient reaches them)."""
        self._iaf._check_input(x)
        logdet = x.new_zeros(())
        for made in self._iaf.steps:
            params = {k: v.detach() for k, v in made.params.items()} if detach else None
            x, ld = _step(made, x, self.context, self._iaf.gated, params)
            logdet = logdet + ld
        return x, logdet

    def _call(self, x: torch.Tensor) -> torch.Tensor:
        y, logdet = self._forward_with_logdet(x)
        self._cached = (x, y, logdet)
        return y

    def _inverse(self, y: torch.Tensor) -> torch.Tensor:
        self._iaf._check_input(y)
        for made in reversed(self._iaf.steps):
            y = _step_inverse(made, y, self.context, self._iaf.gated)
        return y

    def log_abs_det_jacobian(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``log|det dy/dx|``, shape ``x.shape[:-1]``; free right after a forward call on ``x``."""
        cached = getattr(self, "_cached", None)
        if cached is not None and cached[0] is x and cached[1] is y:
            return cached[2]
        return self._forward_with_logdet(x)[1]


class ConditionedIAF(_IAFMath, Transform):
    """An :class:`IAF` bound to a context ``h [..., C]``, as returned by ``flow.condition(h)``.

    Args:
        flow: an ``IAF`` built with ``context_dim > 0``.
        context: ``h [..., C]``.
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

    def __init__(self, flow: IAF, context: torch.Tensor) -> None:
        super().__init__(cache_size=1)
        self._iaf, self.context = flow, context


class IAF(_IAFMath, TransformModule):
    """Inverse autoregressive flow (Kingma et al. 2016, arXiv:1606.04934), ``z [..., D]``.

    Each of ``num_flows`` steps computes ``(m, s) = MADE_t(z, h)`` and, gated (default, the
    paper's eq. 11-12) ``sigma = sigmoid(s)``, ``z <- sigma * z + (1 - sigma) * m``,
    ``log|det| += sum_i log sigma_i``; or affine ``z <- m + exp(s) * z`` with ``s`` softly
    clamped to :data:`AFFINE_LOG_SCALE_RANGE`. Step ``t`` uses the reversed variable order of
    step ``t - 1``. ``s`` starts at ``gate_bias`` (gated; 0 for affine) and ``m`` near 0, so a
    fresh flow is close to ``z -> sigmoid(gate_bias)**K * z``. ``skip`` adds a masked linear
    term ``V z`` to ``m``, so that one step can express any full-covariance Gaussian.
    Sampling is one pass per step; the inverse (scoring an arbitrary point) takes ``D``.

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
        >>> z = torch.randn(10, 4)
        >>> y = flow(z); flow.log_abs_det_jacobian(z, y).shape
        torch.Size([10])
        >>> base = dist.Normal(0.0, 1.0).expand([4]).to_event(1)
        >>> q = pyro.distributions.TransformedDistribution(base, [flow])
    """

    domain = constraints.independent(constraints.real, 1)
    codomain = constraints.independent(constraints.real, 1)
    bijective = True
    sign = +1

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
        super().__init__(cache_size=1)
        if input_dim < 1 or num_flows < 1:
            raise ValueError(f"IAF needs input_dim >= 1 and num_flows >= 1; got {input_dim}, {num_flows}")
        self.input_dim, self.num_flows, self.context_dim = input_dim, num_flows, context_dim
        self.hidden_dims = tuple(default_hidden_dims(input_dim) if hidden_dims is None else hidden_dims)
        self.skip, self.gated, self.gate_bias, self.output_scale = skip, gated, gate_bias, output_scale
        self.seed = seed
        self.steps = nn.ModuleList(
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
        self.context = None

    @property
    def _iaf(self) -> IAF:
        return self

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

    def _check_input(self, x: torch.Tensor) -> None:
        if x.shape[-1] != self.input_dim and not torch._C._get_tracing_state():
            raise ValueError(f"IAF expected input shape [..., {self.input_dim}]; got {tuple(x.shape)}")

    def condition(self, context: torch.Tensor) -> ConditionedIAF:
        """The flow for context ``h [..., C]`` (Pyro's ``ConditionalTransformModule`` convention)."""
        if self.context_dim == 0:
            raise ValueError("IAF.condition(h) needs a flow built with context_dim > 0")
        if context.shape[-1:] != (self.context_dim,):
            raise ValueError(
                f"IAF expected context shape [..., {self.context_dim}]; got {tuple(context.shape)}"
            )
        return ConditionedIAF(self, context)
