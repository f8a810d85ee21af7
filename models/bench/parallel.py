"""Step time of data-parallel VAE training: NumPyro on 1 vs 2 devices, Pyro on 1 vs 2 processes.

    python -m models.bench.parallel --out results/parallel        # also writes docs/parallel.md

NumPyro: :func:`numpyro_iaf.parallel.data_parallel_update` of the MLP VAE's SVI (hand IAF guide,
8x8 digits), each device count in its own process with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (on CPU: N host "devices" sharing the
same cores). Pyro: :class:`pyro_iaf.parallel.DataParallelSVI` under :func:`~pyro_iaf.parallel.launch`
(gloo), 1 and 2 processes of one torch thread each. Same global batch in every row; timings
are the median over ``--repeats`` runs of ``--steps`` steps (inputs already on the devices,
one synchronisation per run), after compiling (NumPyro) or one warm-up step (Pyro).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "parallel.md"


def _config(args):
    from models.vae import VAEConfig

    return VAEConfig(batch_size=args.batch_size, hidden=args.hidden, width=args.width)


def _batches(args, n: int) -> np.ndarray:
    from models.vae import load

    x = load("digits").train
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(x), size=(n, args.batch_size))
    return (rng.random(idx.shape + x.shape[1:], dtype=np.float32) < x[idx]).astype(np.float32)


# ---- workers (each in its own process) --------------------------------------------------------


def numpyro_worker(args) -> dict:
    import jax

    from models.vae import make_vae
    from numpyro_iaf.parallel import data_parallel_update, shard_batch

    vae = make_vae("numpyro", _config(args), 8)
    update = data_parallel_update(vae.svi)
    xs = [shard_batch(x, update.mesh) for x in _batches(args, args.steps)]
    state = vae.state
    t0 = time.perf_counter()
    state, loss = update(state, xs[0])
    loss.block_until_ready()
    compile_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        for x in xs:
            state, loss = update(state, x)
        loss.block_until_ready()
        times.append((time.perf_counter() - t0) / args.steps)
    return {"backend": "numpyro", "workers": len(jax.devices()), "compile_s": compile_s,
            "ms_per_step": 1e3 * statistics.median(times), "loss": float(loss) / args.batch_size}


def _pyro_rank(rank: int, world_size: int, args, xs: np.ndarray) -> dict:
    import pyro
    import torch
    import torch.distributed as dist
    from pyro.infer import Trace_ELBO

    from models.vae import make_vae
    from pyro_iaf.parallel import DataParallelSVI

    vae = make_vae("pyro", _config(args), 8)
    pyro.set_rng_seed(rank)
    svi = DataParallelSVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    xs = torch.as_tensor(xs)
    t0 = time.perf_counter()
    loss = svi.step(xs[0])  # creates the parameters
    warmup_s = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        dist.barrier()
        t0 = time.perf_counter()
        for x in xs:
            loss = svi.step(x)  # returns a float: a synchronisation per step, as in Pyro's SVI
        times.append((time.perf_counter() - t0) / len(xs))
    return {"backend": "pyro", "workers": world_size, "compile_s": warmup_s,
            "ms_per_step": 1e3 * statistics.median(times), "loss": loss / args.batch_size}


def pyro_worker(args) -> dict:
    from pyro_iaf.parallel import launch

    return launch(_pyro_rank, args, _batches(args, args.steps), world_size=args.workers)[0]


# ---- driver -----------------------------------------------------------------------------------


def _run(backend: str, n: int, args) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={n}", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "models.bench.parallel", "--worker", backend, "--workers", str(n),
           "--steps", str(args.steps), "--repeats", str(args.repeats), "--batch-size",
           str(args.batch_size), "--hidden", str(args.hidden), "--width", str(args.width)]
    res = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-4000:]}")
    row = json.loads(res.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    return row


def markdown(rows: list[dict], args, load: tuple[float, float]) -> str:
    ncpu = os.cpu_count()
    lines = [
        "# Data-parallel SVI step time",
        "",
        f"MLP VAE (hidden {args.hidden}, 2 gated IAF steps of width {args.width}, latent 32), global "
        f"batch {args.batch_size} of 8x8 digits, float32, on this machine's CPU ({ncpu} cores). "
        f"Median over {args.repeats} runs of {args.steps} steps. Command: "
        f"`nice -n 10 python -m models.bench.parallel --out results/parallel`.",
        "",
        "| backend | parallelism | workers | rows per worker | compile / first step (s) "
        "| ms/step | vs 1 worker | loss/image |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    base = {r["backend"]: r["ms_per_step"] for r in rows if r["workers"] == 1}
    for r in rows:
        kind = ("jax.sharding, host devices" if r["backend"] == "numpyro"
                else "torch.distributed gloo, processes")
        lines.append(f"| {r['backend']} | {kind} | {r['workers']} | {args.batch_size // r['workers']} "
                     f"| {r['compile_s']:.2f} | {r['ms_per_step']:.1f} "
                     f"| {base[r['backend']] / r['ms_per_step']:.2f}x | {r['loss']:.1f} |")
    lines += [
        "",
        f"**Not a speed-up measurement.** N host \"devices\" are N XLA CPU devices in one process "
        f"sharing the same {ncpu} cores (and one thread pool), and the machine was shared: "
        f"load average {load[0]:.1f} before and {load[1]:.1f} after the run, with other "
        f"benchmarks running. The table shows that the sharded step and the DDP step run and what "
        f"the partitioning and the all-reduce cost here; a real speed-up needs real devices "
        f"(several GPUs) or idle cores. Equality of the parallel and single-device steps is tested "
        f"in `tests/test_parallel.py`.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.bench.parallel",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/parallel")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2], help="worker counts to time")
    p.add_argument("--no-docs", action="store_true", help="do not copy the table to docs/parallel.md")
    p.add_argument("--worker", choices=("numpyro", "pyro"), help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for n in args.devices:
        if n < 1 or args.batch_size % n:
            p.error(f"--devices {n}: needs a count >= 1 dividing --batch-size {args.batch_size}")
    if args.worker:
        if args.worker == "pyro":
            import torch

            torch.set_num_threads(1)
        row = numpyro_worker(args) if args.worker == "numpyro" else pyro_worker(args)
        print(json.dumps(row))
        return 0
    load0 = os.getloadavg()[0]
    rows = [_run(b, n, args) for b in ("numpyro", "pyro") for n in args.devices]
    text = markdown(rows, args, (load0, os.getloadavg()[0]))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "parallel.md").write_text(text)
    (out / "parallel.json").write_text(json.dumps(rows, indent=2) + "\n")
    if not args.no_docs:
        DOCS.parent.mkdir(exist_ok=True)
        DOCS.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
