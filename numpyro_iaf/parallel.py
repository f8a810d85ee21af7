"""Data-parallel SVI over the local devices: the batch is sharded, the SVI state replicated.

    mesh = local_mesh()                        # 1-D mesh, axis "data", all local devices
    update = data_parallel_update(svi)         # (state, *batch_args) -> (state, loss)
    state, loss = update(state, x)             # x [B, ...] split into B / n rows per device

``x`` is placed with ``NamedSharding(mesh, PartitionSpec("data"))`` (leading axis split over the
devices), the state with ``NamedSharding(mesh, PartitionSpec())`` (a full copy on each device),
and ``jax.jit`` partitions ``svi.update`` (GSPMD): every device runs the model and guide on its
rows, the ELBO (a sum over the batch) and its gradient are all-reduced, and each device applies
the same optimiser step. A step is therefore the single-device step on the full batch, up to
the order of floating-point sums (random draws do not depend on the sharding).

On CPU, ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before JAX starts) gives N
host devices, which is how the tests check the equality without accelerators.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["AXIS", "DataParallelUpdate", "local_mesh", "shard_batch", "replicate", "data_parallel_update"]

#: Name of the mesh axis the batch is split along.
AXIS = "data"


def local_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D :class:`~jax.sharding.Mesh` with axis :data:`AXIS` over ``devices`` (default: all
    local devices of the default backend).

    Args:
        devices: the devices; None gives all local devices of the default backend.
    """
    devices = list(jax.local_devices() if devices is None else devices)
    if not devices:
        raise ValueError("local_mesh: no devices given; pass e.g. devices=jax.local_devices()")
    return Mesh(np.array(devices), (AXIS,))


def _check_divisible(x, n: int, what: str) -> None:
    if np.ndim(x) == 0:
        raise ValueError(
            f"{what} is a scalar; data-parallel arguments need a leading batch axis "
            f"(pass scalars as keyword arguments, which are replicated)"
        )
    B = np.shape(x)[0]
    if B % n:
        lo, hi = (B // n) * n, -(-B // n) * n
        fix = f"use a batch size that is a multiple of {n} (e.g. {hi}" + (f" or {lo})" if lo else ")")
        raise ValueError(
            f"{what} has batch size {B}, not divisible by the {n} devices; {fix}, or "
            f"pass devices=jax.local_devices()[:k] with k dividing {B}"
        )


def shard_batch(x, mesh: Mesh, name: str = "x"):
    """``x [B, ...]`` (array or pytree of arrays) split along ``B`` over the mesh's devices.

    Raises ``ValueError`` (naming ``name``) if ``B`` is not a multiple of the device count.

    Args:
        x: an array or pytree of arrays ``[B, ...]``.
        mesh: the device mesh.
        name: what ``x`` is, for the error message.
    """
    n = mesh.devices.size
    for path, leaf in jax.tree_util.tree_flatten_with_path(x)[0]:
        _check_divisible(leaf, n, f"{name}{jax.tree_util.keystr(path)}")
    return _place(x, NamedSharding(mesh, PartitionSpec(AXIS)))


def replicate(tree, mesh: Mesh):
    """A full copy of every array of ``tree`` on each device of ``mesh`` (no copy if already so).

    Args:
        tree: a pytree of arrays.
        mesh: the device mesh.
    """
    return _place(tree, NamedSharding(mesh, PartitionSpec()))


def _place(tree, sharding: NamedSharding):
    """``jax.device_put(tree, sharding)``, skipped (it costs ~0.1 ms a leaf) when already placed."""
    if all(getattr(leaf, "sharding", None) == sharding for leaf in jax.tree.leaves(tree)):
        return tree
    return jax.device_put(tree, sharding)


def data_parallel_update(
    svi, *, devices: Sequence[jax.Device] | None = None, mesh: Mesh | None = None
) -> DataParallelUpdate:
    """A jitted ``update(state, *args, **kwargs) -> (state, loss)`` of ``svi`` over all devices.

    Positional ``args`` are the batch: every array in them is split along its leading axis
    (size ``B``, a multiple of the device count) over ``mesh`` (default: :func:`local_mesh` of
    ``devices``); ``state`` and ``kwargs`` are replicated. The returned state stays replicated,
    so it feeds the next call without transfers; ``loss`` is the full-batch loss (replicated).
    Works for any model/guide whose batch is the leading axis of its positional array arguments;
    with one device it is ``jax.jit(svi.update)``. A drop-in for ``jax.jit(svi.update)``, ahead-of-
    time compilation included: ``update.lower(state, x).compile()(state, x)``.

    Args:
        svi: a ``numpyro.infer.SVI``.
        devices: the devices to use; None gives all local devices.
        mesh: a mesh to use instead of ``devices``.
    """
    if mesh is None:
        mesh = local_mesh(devices)
    elif devices is not None:
        raise ValueError("data_parallel_update: pass devices or mesh, not both")
    return DataParallelUpdate(svi.update, mesh)


class DataParallelUpdate:
    """``fn(state, *batch, **kwargs)`` jitted over ``mesh``: see :func:`data_parallel_update`.

    Args:
        fn: ``fn(state, *batch, **kwargs)``, e.g. ``svi.update``.
        mesh: the device mesh (axis ``AXIS``).
    """

    def __init__(self, fn: Callable, mesh: Mesh) -> None:
        self.mesh = mesh
        rep = NamedSharding(mesh, PartitionSpec())
        self.jitted = jax.jit(fn, out_shardings=(rep, rep))

    def place(self, state, args: tuple, kwargs: dict) -> tuple:
        """``(state, args, kwargs)`` on the mesh: state and kwargs replicated, args sharded."""
        mesh = self.mesh
        return replicate(state, mesh), shard_batch(args, mesh, "args"), replicate(kwargs, mesh)

    def __call__(self, state, *args, **kwargs):
        state, args, kwargs = self.place(state, args, kwargs)
        return self.jitted(state, *args, **kwargs)

    def lower(self, state, *args, **kwargs) -> _Lowered:
        state, args, kwargs = self.place(state, args, kwargs)
        return _Lowered(self, self.jitted.lower(state, *args, **kwargs))


class _Lowered:
    """``.compile()`` gives the executable behind a function that places its inputs first."""

    def __init__(self, update: DataParallelUpdate, lowered) -> None:
        self.update, self.lowered = update, lowered

    def as_text(self) -> str:
        return self.lowered.as_text()

    def compile(self) -> Callable:
        compiled = self.lowered.compile()

        def run(state, *args, **kwargs):
            state, args, kwargs = self.update.place(state, args, kwargs)
            return compiled(state, *args, **kwargs)

        run.compiled = compiled
        return run
