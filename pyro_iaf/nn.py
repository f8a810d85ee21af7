"""MADE conditioner of an IAF step: ``z [..., D]`` (and context ``h [..., C]``) -> ``(m, s)``."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .masks import made_masks

__all__ = ["MADE"]


def _normal(shape: tuple[int, ...], std: float, generator: torch.Generator) -> torch.Tensor:
    """Normal draws from ``generator``'s device (the CPU: the same numbers on every machine),
    placed on torch's default device (``torch.set_default_device("cuda")`` works)."""
    draw = torch.randn(shape, generator=generator, device=generator.device) * std
    return draw.to(torch.get_default_device())


class MADE(nn.Module):
    """Masked MLP with ELU hidden layers returning the IAF step's ``(m, s)``, each ``[..., D]``.

    ``hidden_l = elu(W_l^masked hidden_{l-1} + U_l h + b_l)``;
    ``m = W_m^masked hidden_L + b_m (+ V^strict-lower z if skip)``, ``s = W_s^masked hidden_L + b_s``.
    Output ``i`` depends only on inputs of lower degree (``reverse`` flips the order). The output
    layer starts at ``output_scale`` times a unit-variance init and ``b_s = s_bias``, so a fresh
    step is near ``m = 0, s = s_bias``. Weights are stored unmasked, ``weight[out, in]``, at unit
    scale: the masks carry each layer's gain ``1/sqrt(fan_in)`` (an equalized learning rate, which
    keeps Adam's steps small in function space for wide layers and large ``D``).

    All weights live in one flat parameter ``packed`` (Pyro registers, and its optimiser steps,
    each parameter tensor separately: one tensor per step keeps that overhead small); ``params``
    gives them by name, ``{"hidden_weights.0": [H, D], ...}``, the names and shapes of
    ``numpyro_iaf.MADE.params``, and ``forward_with(params, z, h)`` runs the network on any such dict
    (``numpyro_iaf.MADE.apply``).

    Args:
        input_dim: ``D``, the number of inputs (and of each output ``m``, ``s``).
        hidden_dims: widths of the ELU hidden layers (may be empty).
        context_dim: size ``C`` of the context ``h`` fed to every hidden layer (0: none).
        skip: add the strictly lower-triangular linear term ``V z`` to ``m``.
        reverse: use the reversed variable order.
        s_bias: initial value of ``b_s`` (the gate's or log-scale's bias).
        output_scale: scale of the output layer's initial weights.
        seed: seed of the initial weights.

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
        # the degree of each first-layer hidden unit (the number of inputs it sees), NumPy: the plan
        # of the blocked solve of the path-derivative score (``masks.coupling_units``)
        self.unit_degrees = (hidden_masks[0] != 0).sum(1) if hidden_masks else np.zeros(0, np.int64)
        # masks carry each layer's gain 1/sqrt(fan_in): weights are stored at unit scale, so Adam's
        # step in function space shrinks with the width ("equalized learning rate")
        widths = (input_dim, *self.hidden_dims)
        self.context_gain = 1 / math.sqrt(max(context_dim, 1))
        init: dict[str, torch.Tensor] = {}
        for l, (mask, fan_in, width) in enumerate(zip(hidden_masks, widths, self.hidden_dims)):
            self.register_buffer(f"hidden_mask_{l}", torch.as_tensor(mask) / math.sqrt(fan_in))
            init[f"hidden_weights.{l}"] = _normal((width, fan_in), 1.0, g)
            init[f"hidden_biases.{l}"] = torch.zeros(width)
            if context_dim:
                init[f"context_weights.{l}"] = _normal((width, context_dim), 1.0, g)
        last = widths[-1]
        self.register_buffer("output_mask", torch.as_tensor(output_mask).repeat(2, 1) / math.sqrt(last))
        init["output_weight"] = _normal((2 * input_dim, last), output_scale, g)
        init["output_bias"] = torch.cat([torch.zeros(input_dim), torch.full((input_dim,), float(s_bias))])
        if context_dim and not self.hidden_dims:  # linear IAF: context enters the output directly
            init["context_weights.0"] = _normal((2 * input_dim, context_dim), output_scale, g)
        if skip:
            self.register_buffer("skip_mask", torch.as_tensor(skip_mask) / math.sqrt(input_dim))
            init["skip_weight"] = torch.zeros(input_dim, input_dim)
        self._shapes = {name: tuple(w.shape) for name, w in init.items()}
        self._sizes = [w.numel() for w in init.values()]
        self.packed = nn.Parameter(torch.cat([w.reshape(-1) for w in init.values()]))

    @property
    def params(self) -> dict[str, torch.Tensor]:
        """The weights by name, views into ``packed`` (writing to them writes the parameter)."""
        chunks = self.packed.split(self._sizes)
        return {name: c.view(shape) for (name, shape), c in zip(self._shapes.items(), chunks)}

    def load_params(self, params: dict) -> None:
        """Copy ``{name: array}`` (the keys of :attr:`params`) into ``packed``."""
        if set(params) != set(self._shapes):
            raise ValueError(f"MADE.load_params: names differ: {sorted(set(params) ^ set(self._shapes))}")
        with torch.no_grad():
            for name, view in self.params.items():
                value = params[name]
                if not isinstance(value, torch.Tensor):
                    value = torch.from_numpy(np.array(value))  # a writable copy
                view.copy_(value.to(view.dtype).reshape(view.shape))

    def forward(self, z: torch.Tensor, h: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``z [..., D]``, ``h [..., C]`` or None -> ``(m, s)``, each ``[..., D]``."""
        return self.forward_with(self.params, z, h)

    def forward_with(
        self, params: dict, z: torch.Tensor, h: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network with weights ``params`` (names of :attr:`params`): ``(m, s)``, ``[..., D]``."""
        if (h is None) != (self.context_dim == 0):
            raise ValueError(
                f"MADE was built with context_dim={self.context_dim} but got context "
                f"{'None' if h is None else tuple(h.shape)}; pass h of shape [..., "
                f"{self.context_dim}] (use flow.condition(h)) or build it with context_dim=0."
            )
        x = z
        for l in range(len(self.hidden_dims)):
            w, b = params[f"hidden_weights.{l}"], params[f"hidden_biases.{l}"]
            pre = F.linear(x, w * getattr(self, f"hidden_mask_{l}"), b)
            if h is not None:
                pre = pre + F.linear(h, self.context_gain * params[f"context_weights.{l}"])
            x = F.elu(pre)
        out = F.linear(x, params["output_weight"] * self.output_mask, params["output_bias"])
        if h is not None and not self.hidden_dims:
            out = out + F.linear(h, self.context_gain * params["context_weights.0"])
        m, s = out.split(self.input_dim, dim=-1)
        if self.skip:
            m = m + F.linear(z, params["skip_weight"] * self.skip_mask)
        return m, s

    def forward_with_jacobian(
        self, params: dict, z: torch.Tensor, h: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(m, s, dm/dz, ds/dz)``: ``m, s [..., D]`` as :meth:`forward_with`, and their Jacobians
        ``[..., D, D]`` (``[i, j] = d out_i / d z_j``, strictly triangular) from the masked weight
        products, ``W_out diag(elu') W_L ... diag(elu') W_1``: one batched matrix product per layer
        instead of ``D`` forward-mode passes."""
        x, jac = z, None  # jac: d x / d z, [..., width, D] (None: the identity)
        for l in range(len(self.hidden_dims)):
            w = params[f"hidden_weights.{l}"] * getattr(self, f"hidden_mask_{l}")
            pre = F.linear(x, w, params[f"hidden_biases.{l}"])
            if h is not None:
                pre = pre + F.linear(h, self.context_gain * params[f"context_weights.{l}"])
            x = F.elu(pre)
            slope = torch.where(pre > 0, torch.ones_like(pre), torch.exp(torch.clamp(pre, max=0.0)))
            jac = slope[..., :, None] * (w if jac is None else w @ jac)
        w_out = params["output_weight"] * self.output_mask
        out = F.linear(x, w_out, params["output_bias"])
        if h is not None and not self.hidden_dims:
            out = out + F.linear(h, self.context_gain * params["context_weights.0"])
        d_out = w_out if jac is None else w_out @ jac  # [..., 2 D, D]
        m, s = out.split(self.input_dim, dim=-1)
        dm, ds = d_out.split(self.input_dim, dim=-2)
        if self.skip:
            v = params["skip_weight"] * self.skip_mask
            m, dm = m + F.linear(z, v), dm + v
        return m, s, dm, ds
