"""Rank-based MADE masks (Germain et al. 2015), one convention: ``mask[out, in]``.

Pure NumPy, so both backends build the very same masks (a shared test checks it).
"""

from __future__ import annotations

import functools

import numpy as np


def input_degrees(input_dim: int, reverse: bool = False) -> np.ndarray:
    """Autoregressive degree of each input, ``1..D`` (or ``D..1`` when ``reverse``). Shape ``[D]``."""
    degrees = np.arange(1, input_dim + 1)
    return degrees[::-1].copy() if reverse else degrees


def hidden_degrees(width: int, input_dim: int, has_context: bool) -> np.ndarray:
    """Degrees of a hidden layer, cycling so every degree gets units. Shape ``[width]``.

    With a context, degree 0 (units that see no input, only ``h``) lets the first output
    depend on the context too.
    """
    if has_context:
        return np.arange(width) % input_dim
    return np.arange(width) % max(input_dim - 1, 1) + 1


def made_masks(
    input_dim: int,
    hidden_dims: tuple[int, ...] | list[int],
    *,
    context: bool = False,
    reverse: bool = False,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Masks of a MADE with ``D`` inputs and outputs ``(m, s)``, each ``mask[out, in]``.

    Returns ``(hidden_masks, output_mask, skip_mask)``: ``hidden_masks[l]`` has shape
    ``[H_l, H_{l-1}]`` (``H_{-1} = D``), ``output_mask`` ``[D, H_last]`` (shared by ``m`` and
    ``s``; ``[D, D]`` strictly triangular when there is no hidden layer) and ``skip_mask``
    ``[D, D]`` (output ``i`` sees input ``j`` iff ``deg_j < deg_i``).

    Args:
        input_dim: ``D``, the number of inputs and of each output.
        hidden_dims: widths of the hidden layers (may be empty).
        context: whether a context is fed to the hidden layers (it is unmasked; no effect on the
            masks' values).
        reverse: use the reversed variable order.
    """
    d_in = input_degrees(input_dim, reverse)
    previous = d_in
    hidden_masks = []
    for width in hidden_dims:
        d_h = hidden_degrees(width, input_dim, context)
        hidden_masks.append((d_h[:, None] >= previous[None, :]).astype(np.float32))
        previous = d_h
    output_mask = (d_in[:, None] > previous[None, :]).astype(np.float32)
    skip_mask = (d_in[:, None] > d_in[None, :]).astype(np.float32)
    return hidden_masks, output_mask, skip_mask


#: ``AutoIAFNormal(stl=None)`` uses the path-derivative gradient up to this latent dimension: its
#: backward pass costs a blocked triangular solve per draw (``jacobian``).
STL_MAX_DIM = 512


def autoguide_defaults(
    latent_dim: int, stl: bool | None, num_flows: int | None, gated: bool | None
) -> tuple[bool, int, bool]:
    """``AutoIAFNormal``'s ``(stl, num_flows, gated)`` where the user left None.

    ``stl`` is on up to :data:`STL_MAX_DIM`; with it, one affine step; without it, two gated
    steps (each was the better flow in its regime on the fourteen targets and the linear-Gaussian
    benchmark, docs/iaf_diagnosis.md).

    Args:
        latent_dim: ``D``, the number of unconstrained latent coordinates.
        stl: the user's ``stl`` (None: resolve it).
        num_flows: the user's ``num_flows`` (None: resolve it).
        gated: the user's ``gated`` (None: resolve it).
    """
    stl = latent_dim <= STL_MAX_DIM if stl is None else stl
    num_flows = (1 if stl else 2) if num_flows is None else num_flows
    gated = (not stl) if gated is None else gated
    return stl, num_flows, gated


def default_hidden_dims(input_dim: int) -> tuple[int, ...]:
    """Default MADE widths (both backends): one hidden layer of ``2 D`` units, in [16, 256].

    Args:
        input_dim: ``D``.
    """
    return (min(max(2 * input_dim, 16), 256),)


def coupling_units(
    degree: np.ndarray, input_dim: int, block: int
) -> tuple[tuple[int, int, tuple[slice, ...]], ...]:
    """The plan of the blocked triangular solve of a one-hidden-layer MADE's Jacobian (``jacobian``).

    A hidden unit of degree ``k`` couples output ``i`` to input ``j`` only where ``j <= k < i``
    (degrees counted ``1..D`` in the order of the solve, i.e. after flipping a reversed MADE), so
    within a block of coordinates ``[start, stop)`` only the units of degree ``start+1 .. stop-1``
    enter its own triangle. Returns, last block first, ``(start, stop, units)`` with ``units`` those
    units as runs of consecutive indices (one per cycle of :func:`hidden_degrees`). Cached.

    Args:
        degree: ``[H]``, the degree of each first-layer hidden unit (``MADE.unit_degrees``).
        input_dim: ``D``.
        block: coordinates per block.
    """
    return _coupling_units(np.asarray(degree, np.int64).tobytes(), input_dim, block)


@functools.lru_cache(maxsize=256)
def _coupling_units(degree_bytes: bytes, input_dim: int, block: int) -> tuple:
    degree = np.frombuffer(degree_bytes, np.int64)
    plan = []
    for start in reversed(range(0, input_dim, block)):
        stop = min(start + block, input_dim)
        inside = np.flatnonzero((degree >= start + 1) & (degree <= stop - 1))
        runs = np.split(inside, np.flatnonzero(np.diff(inside) != 1) + 1)
        plan.append((start, stop, tuple(slice(int(run[0]), int(run[-1]) + 1) for run in runs if run.size)))
    return tuple(plan)
