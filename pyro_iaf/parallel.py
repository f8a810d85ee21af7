"""Data-parallel SVI with ``torch.distributed`` (gloo on CPU, nccl on GPUs): the batch is sharded.

    def work(rank, world_size, x):                 # runs in each of world_size processes
        pyro.set_rng_seed(rank)
        svi = DataParallelSVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
        return [svi.step(x) for _ in range(100)]   # x [B, ...]: rank r takes rows r*B/n ...

    losses = launch(work, x, world_size=2)         # one list per rank

Each rank computes the ELBO and its gradients on its shard of the batch; one all-reduce of a
flat buffer (loss and all gradients, as in a DistributedDataParallel bucket) combines them, and
every rank applies the same optimiser step. How the shard losses combine depends on the model:

- ``reduction="sum"`` (default): the model's plate covers only the rows it is given, so the
  full-batch ELBO is the **sum** of the shard ELBOs (Pyro's ELBO sums over the batch; e.g. the
  VAE with local latents only). Gradients are summed.
- ``reduction="mean"``: the model scales its plate to the full data size (``pyro.plate("data",
  N, subsample=...)``), so every shard ELBO estimates the full one (global latents are counted
  once per rank); gradients are averaged, as DDP does.

With either, a step equals the single-process step on the full batch when the ranks' random
draws are the full batch's (exactly so for global latents drawn with the same seed on every
rank). We do not wrap a ``DistributedDataParallel`` module: Pyro's parameters live in the
param store, are created lazily on the first step and need not be ``nn.Parameter`` s, while
DDP hooks the parameters of a module whose ``forward`` it runs. Parameters must start equal on
all ranks (same seed); new ones are broadcast from rank 0 before their first update.
"""

from __future__ import annotations

import os
import pickle
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path

import pyro
import pyro.poutine as poutine
import torch
import torch.distributed as dist
from pyro.infer import SVI
from pyro.infer.util import zero_grads

__all__ = ["DataParallelSVI", "shard", "launch", "free_port"]

REDUCTIONS = ("sum", "mean")


def shard(x: torch.Tensor, rank: int, world_size: int, what: str = "argument") -> torch.Tensor:
    """Rows ``rank * B / n : (rank + 1) * B / n`` of ``x [B, ...]`` (``n = world_size``).

    Args:
        x: the full batch ``[B, ...]``.
        rank: this process's rank.
        world_size: the number of processes ``n`` (must divide ``B``).
        what: what ``x`` is, for the error message.
    """
    if not torch.is_tensor(x) or x.dim() == 0:
        raise ValueError(
            f"{what} needs a leading batch axis to be sharded; pass scalars and "
            f"other arguments as keyword arguments (they go to every rank whole)"
        )
    B = x.shape[0]
    if B % world_size:
        lo, hi = (B // world_size) * world_size, -(-B // world_size) * world_size
        eg = f"{hi}" + (f" or {lo}" if lo else "")
        raise ValueError(
            f"{what} has batch size {B}, not divisible by the {world_size} processes; "
            f"use a batch size that is a multiple of {world_size} (e.g. {eg}) or "
            f"launch a number of processes dividing {B}"
        )
    b = B // world_size
    return x[rank * b : (rank + 1) * b]


class DataParallelSVI(SVI):
    """:class:`pyro.infer.SVI` whose ``step(*args, **kwargs)`` runs on this rank's shard.

    Positional tensor arguments ``[B, ...]`` are the full batch (the same on every rank; each
    rank keeps its rows, see :func:`shard`); keyword arguments go to every rank whole.
    ``reduction``: ``"sum"`` or ``"mean"`` (see the module docstring). ``step`` returns the
    full-batch loss (the sum or the mean of the shard losses), the same number on every rank.
    Needs an initialised process group (:func:`launch` makes one); ``world_size`` 1 works
    without one and is plain ``SVI``.

    Args:
        model: the model.
        guide: the guide.
        optim: a ``pyro.optim`` optimiser.
        loss: the ELBO (e.g. ``Trace_ELBO()``).
        reduction: ``"sum"`` when the model's plate covers only the rows it is given, ``"mean"``
            when it is scaled to the full data.
        **kwargs: passed to :class:`pyro.infer.SVI`.
    """

    def __init__(self, model, guide, optim, loss, *, reduction: str = "sum", **kwargs) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
        super().__init__(model, guide, optim, loss, **kwargs)
        self.reduction = reduction
        ready = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if ready else 0
        self.world_size = dist.get_world_size() if ready else 1
        self._synced: set[str] = set()

    def step(self, *args, **kwargs) -> float:
        args = tuple(shard(a, self.rank, self.world_size, f"args[{i}]") for i, a in enumerate(args))
        with poutine.trace(param_only=True) as capture:
            loss = self.loss_and_grads(self.model, self.guide, *args, **kwargs)
        names = sorted(capture.trace.nodes)  # the same order on every rank
        params = [capture.trace.nodes[n]["value"].unconstrained() for n in names]
        loss = float(loss)
        if self.world_size > 1:
            loss = self._all_reduce(names, params, loss)
        self.optim(set(params))
        zero_grads(set(params))
        return loss

    def _all_reduce(self, names: list[str], params: list[torch.Tensor], loss: float) -> float:
        """Sum (or average) ``[grad of every param..., loss]`` over ranks in one collective."""
        new = [p for n, p in zip(names, params) if n not in self._synced]
        if new:  # parameters created on this step: rank 0's values everywhere
            with torch.no_grad():
                flat = torch.cat([p.reshape(-1) for p in new])
                dist.broadcast(flat, src=0)
                i = 0
                for p in new:
                    p.copy_(flat[i : i + p.numel()].view_as(p))
                    i += p.numel()
            self._synced.update(names)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        ref = grads[0] if grads else torch.zeros(())
        flat = torch.cat([g.reshape(-1) for g in grads] + [ref.new_tensor([loss])])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        if self.reduction == "mean":
            flat /= self.world_size
        i = 0
        for p, g in zip(params, grads):
            n = g.numel()
            if p.grad is None:
                p.grad = flat[i : i + n].view_as(p).clone()
            else:
                p.grad.copy_(flat[i : i + n].view_as(p))
            i += n
        return float(flat[-1])


def free_port() -> int:
    """A TCP port on localhost that was free a moment ago (for ``MASTER_PORT``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(
    rank: int,
    fn: Callable,
    world_size: int,
    port: int,
    backend: str,
    threads: int | None,
    args: tuple,
    out: str,
) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if threads is not None:
        torch.set_num_threads(threads)
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    try:
        pyro.clear_param_store()
        result = fn(rank, world_size, *args)
        with open(Path(out) / f"{rank}.pkl", "wb") as f:
            pickle.dump(result, f)
    finally:
        dist.destroy_process_group()


def launch(fn: Callable, *args, world_size: int = 2, backend: str = "gloo", threads: int | None = 1) -> list:
    """Run ``fn(rank, world_size, *args)`` in ``world_size`` fresh processes that form a
    process group (``torch.multiprocessing`` spawn, ``MASTER_ADDR`` 127.0.0.1 on a free port);
    returns the ranks' return values (picklable), rank 0 first.

    ``fn`` must be importable by the children (defined at module level, not in ``python -c``).
    ``threads``: ``torch.set_num_threads`` in each child (``None`` keeps torch's default).
    Raises ``torch.multiprocessing.ProcessRaisedException`` if a rank fails.

    Args:
        fn: ``fn(rank, world_size, *args)``, importable by the children.
        *args: passed to ``fn`` in every process (picklable).
        world_size: the number of processes.
        backend: the ``torch.distributed`` backend: ``"gloo"`` on CPU, ``"nccl"`` on GPUs.
        threads: ``torch.set_num_threads`` in each child (None keeps torch's default).
    """
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1; got {world_size}")
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this torch build")
    with tempfile.TemporaryDirectory() as out:
        torch.multiprocessing.spawn(
            _entry,
            nprocs=world_size,
            join=True,
            args=(fn, world_size, free_port(), backend, threads, args, out),
        )
        results = []
        for rank in range(world_size):
            with open(Path(out) / f"{rank}.pkl", "rb") as f:
                results.append(pickle.load(f))
    return results
