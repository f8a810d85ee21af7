"""MADE conditioner of an IAF step: ``z [..., D]`` (and context ``h [..., C]``) -> ``(m, s)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .masks import made_masks

__all__ = ["MADE"]


def _normal(shape: tuple[int, ...], std: float, generator: torch.Generator) -> nn.Parameter:
    return nn.Parameter(torch.randn(shape, generator=generator) * std)


class MADE(nn.Module):
    """Masked MLP with ELU hidden layers returning the IAF step's ``(m, s)``, each ``[..., D]``.

    ``hidden_l = elu(W_l^masked hidden_{l-1} + U_l h + b_l)``;
    ``m = W_m^masked hidden_L + b_m (+ V^strict-lower z if skip)``, ``s = W_s^masked hidden_L + b_s``.
    Output ``i`` depends only on inputs of lower degree (``reverse`` flips the order). The output
    layer starts at ``output_scale`` times a unit-variance init and ``b_s = s_bias``, so a fresh
    step is near ``m = 0, s = s_bias``. Weights are stored unmasked, ``weight[out, in]``, at unit
    scale: the masks carry each layer's gain ``1/sqrt(fan_in)`` (an equalized learning rate, which
    keeps Adam's steps small in function space for wide layers and large ``D``).

    Example:
        >>> made = MADE(5, (16,), context_dim=3)
        >>> m, s = made(torch.randn(7, 5), torch.randn(7, 3))
        >>> m.shape, s.shape
        (torch.Size([7, 5]), torch.Size([7, 5]))
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dims: Sequence[int] = (),
        *,
        context_dim: int = 0,
        skip: bool = True,
        reverse: bool = False,
        s_bias: float = 2.0,
        output_scale: float = 0.01,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.input_dim, self.context_dim = input_dim, context_dim
        self.hidden_dims, self.skip, self.reverse = tuple(hidden_dims), skip, reverse
        g = torch.Generator().manual_seed(seed)
        hidden_masks, output_mask, skip_mask = made_masks(
            input_dim, self.hidden_dims, context=context_dim > 0, reverse=reverse
        )
        # masks carry each layer's gain 1/sqrt(fan_in): weights are stored at unit scale, so Adam's
        # step in function space shrinks with the width ("equalized learning rate")
        widths = (input_dim, *self.hidden_dims)
        self.context_gain = 1 / math.sqrt(max(context_dim, 1))
        self.hidden_weights = nn.ParameterList()
        self.hidden_biases = nn.ParameterList()
        self.context_weights = nn.ParameterList()
        for l, (mask, fan_in, width) in enumerate(zip(hidden_masks, widths, self.hidden_dims)):
            self.register_buffer(f"hidden_mask_{l}", torch.as_tensor(mask) / math.sqrt(fan_in))
            self.hidden_weights.append(_normal((width, fan_in), 1.0, g))
            self.hidden_biases.append(nn.Parameter(torch.zeros(width)))
            if context_dim:
                self.context_weights.append(_normal((width, context_dim), 1.0, g))
        last = widths[-1]
        self.register_buffer("output_mask", torch.as_tensor(output_mask).repeat(2, 1) / math.sqrt(last))
        self.output_weight = _normal((2 * input_dim, last), output_scale, g)
        self.output_bias = nn.Parameter(
            torch.cat([torch.zeros(input_dim), torch.full((input_dim,), float(s_bias))])
        )
        if context_dim and not self.hidden_dims:  # linear IAF: context enters the output directly
            self.context_weights.append(_normal((2 * input_dim, context_dim), output_scale, g))
        if skip:
            self.register_buffer("skip_mask", torch.as_tensor(skip_mask) / math.sqrt(input_dim))
            self.skip_weight = nn.Parameter(torch.zeros(input_dim, input_dim))

    def forward(self, z: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [..., D]``, ``h [..., C]`` or None -> ``(m, s)``, each ``[..., D]``."""
        if (h is None) != (self.context_dim == 0):
            raise ValueError(
                f"MADE was built with context_dim={self.context_dim} but got context "
                f"{'None' if h is None else tuple(h.shape)}; pass h of shape [..., "
                f"{self.context_dim}] (use flow.condition(h)) or build it with context_dim=0."
            )
        x = z
        for l, (w, b) in enumerate(zip(self.hidden_weights, self.hidden_biases)):
            pre = F.linear(x, w * getattr(self, f"hidden_mask_{l}"), b)
            if h is not None:
                pre = pre + F.linear(h, self.context_gain * self.context_weights[l])
            x = F.elu(pre)
        out = F.linear(x, self.output_weight * self.output_mask, self.output_bias)
        if h is not None and not self.hidden_dims:
            out = out + F.linear(h, self.context_gain * self.context_weights[0])
        m, s = out.split(self.input_dim, dim=-1)
        if self.skip:
            m = m + F.linear(z, self.skip_weight * self.skip_mask)
        return m, s
