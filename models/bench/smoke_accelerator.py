"""Accelerator smoke test: float32 SVI steps of our guides on the default device, timed.

    python -m models.bench.smoke_accelerator --out results/smoke          # GPU if there is one, else CPU

NumPyro (JAX's default device): ``AutoIAFNormal`` on the linear-Gaussian model, the MLP VAE
with ``AutoAmortizedIAF`` and with the hand-written IAF guide (8x8 digits). ``--steps`` SVI
updates run inside one jitted ``lax.scan`` (batches stacked on the device beforehand), so no
value goes to the host between steps; we block once per scan. Pyro (torch's default device:
cuda if available, else cpu): the same three, eager, losses kept on the device until the end.

Reports per case: device, compile seconds (NumPyro: lowering + XLA compile of the scan; Pyro:
the first step, which creates the parameters), median ms per step over ``--repeats`` scans,
the last loss and whether every loss was finite. Writes ``<out>/smoke.md`` and ``smoke.json``;
exits 1 if a loss was not finite.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

CASES = ("iaf_linear_gaussian", "vae_auto", "vae_hand")


def _vae_config(args, guide: str):
    from models.vae import VAEConfig

    return VAEConfig(guide=guide, batch_size=args.batch_size, hidden=args.hidden, width=args.width)


def _batches(args, n: int) -> np.ndarray:
    """``[n, B, 64]`` binarized 8x8 digits (float32), fixed seed."""
    from models.vae import load

    x = load("digits").train
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(x), size=(n, args.batch_size))
    return (rng.random(idx.shape + x.shape[1:], dtype=np.float32) < x[idx]).astype(np.float32)


# ---- NumPyro ------------------------------------------------------------------------------------


def numpyro_cases(args) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    from models.api import backend
    from models.targets.linear_gaussian import linear_gaussian
    from models.vae import make_vae
    from numpyro_iaf import AutoIAFNormal

    device = jax.devices()[0]
    where = f"{device.platform}:{device.device_kind}"
    rows = []
    for case in CASES:
        if case == "iaf_linear_gaussian":
            with backend("numpyro"):
                spec = linear_gaussian(args.dim)
            model, margs, mkw = spec.model, spec.model_args, spec.model_kwargs
            svi = SVI(model, AutoIAFNormal(model), numpyro.optim.Adam(1e-2), Trace_ELBO())
            state = svi.init(jax.random.PRNGKey(0), *margs, **mkw)

            def body(s, _, svi=svi, margs=margs, mkw=mkw):
                return svi.update(s, *margs, **mkw)

            xs = None
        else:
            vae = make_vae("numpyro", _vae_config(args, case.split("_")[1]), 8)
            svi, state = vae.svi, vae.state
            xs = jax.device_put(jnp.asarray(_batches(args, args.steps)), device)

            def body(s, x, svi=svi):
                return svi.update(s, x)

        run = jax.jit(lambda s, xs, body=body: jax.lax.scan(body, s, xs, length=args.steps))
        t0 = time.perf_counter()
        compiled = run.lower(state, xs).compile()
        compile_s = time.perf_counter() - t0
        times, losses = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            state, loss = compiled(state, xs)
            loss.block_until_ready()  # the only synchronisation: once per scan of --steps
            times.append(time.perf_counter() - t0)
            losses.append(loss)
        loss = np.asarray(jnp.concatenate(losses))
        rows.append(_row("numpyro", case, where, str(loss.dtype), compile_s, times, args.steps, loss))
    return rows


# ---- Pyro ---------------------------------------------------------------------------------------


def pyro_cases(args) -> list[dict]:
    import pyro
    import torch
    from pyro.infer import Trace_ELBO

    from models.api import backend
    from models.targets.linear_gaussian import linear_gaussian
    from models.vae import make_vae
    from pyro_iaf import AutoIAFNormal

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(args.torch_threads)
    torch.set_default_dtype(torch.float32)
    if dev.type == "cuda":  # new tensors (data, networks, guide parameters) on the GPU
        torch.set_default_device(dev)
    where = f"cuda:{torch.cuda.get_device_name(dev)}" if dev.type == "cuda" else "cpu"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    elbo, rows = Trace_ELBO(), []
    for case in CASES:
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        if case == "iaf_linear_gaussian":
            with backend("pyro"):
                spec = linear_gaussian(args.dim)
            model, guide = spec.model, AutoIAFNormal(spec.model)
            margs, mkw = spec.model_args, spec.model_kwargs
            batches = [None] * (args.steps * args.repeats + 1)
        else:
            vae = make_vae("pyro", _vae_config(args, case.split("_")[1]), 8)
            model, guide, margs, mkw = vae.model, vae.guide, (), {}
            batches = list(torch.as_tensor(_batches(args, args.steps * args.repeats + 1)))

        def loss_fn(x, model=model, guide=guide, margs=margs, mkw=mkw):
            return elbo.differentiable_loss(model, guide, *(margs if x is None else (x,)), **mkw)

        t0 = time.perf_counter()
        first = loss_fn(batches[0])  # creates the parameters
        params = [v.unconstrained() for v in pyro.get_param_store().values()]
        optim = torch.optim.Adam(params, lr=1e-2 if case == "iaf_linear_gaussian" else 1e-3)
        first.backward()
        optim.step()
        sync()
        compile_s = time.perf_counter() - t0
        times, losses = [], []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            for x in batches[1 + r * args.steps : 1 + (r + 1) * args.steps]:
                optim.zero_grad()
                loss = loss_fn(x)
                loss.backward()
                optim.step()
                losses.append(loss.detach())  # stays on the device
            sync()
            times.append(time.perf_counter() - t0)
        loss = torch.stack(losses).cpu().numpy()
        rows.append(_row("pyro", case, where, str(loss.dtype), compile_s, times, args.steps, loss))
    return rows


# ---- report -------------------------------------------------------------------------------------


def _row(backend, case, where, dtype, compile_s, times, steps, loss) -> dict:
    return {"backend": backend, "case": case, "device": where, "dtype": dtype,
            "compile_s": round(compile_s, 3), "ms_per_step": round(1e3 * statistics.median(times) / steps, 3),
            "steps": steps * len(times), "last_loss": float(loss[-1]),
            "finite": bool(np.isfinite(loss).all())}


def markdown(rows: list[dict], args) -> str:
    lines = [f"Smoke test: float32 SVI steps, {args.steps} steps per timed scan, median of "
             f"{args.repeats}; VAE: MLP (hidden {args.hidden}, IAF width {args.width}), batch "
             f"{args.batch_size} of 8x8 digits; linear-Gaussian D = {args.dim}. Compile: NumPyro's "
             "XLA compile of the scan; Pyro's first (eager) step.", "", table(rows)]
    return "\n".join(lines) + "\n"


def table(rows: list[dict]) -> str:
    """The markdown table of the rows of ``smoke.json`` (also rendered by ``docs/generate.py``)."""
    lines = ["| backend | case | device | dtype | compile (s) | ms/step | steps | last loss | finite |",
             "|---|---|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['case']} | {r['device']} | {r['dtype']} | {r['compile_s']:.2f} "
                     f"| {r['ms_per_step']:.2f} | {r['steps']} | {r['last_loss']:.2f} | {r['finite']} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.bench.smoke_accelerator",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/smoke")
    p.add_argument("--backends", nargs="+", choices=("numpyro", "pyro"), default=["numpyro", "pyro"])
    p.add_argument("--steps", type=int, default=20, help="SVI steps per timed scan")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--hidden", type=int, default=300)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--dim", type=int, default=10, help="linear-Gaussian latent dimension")
    p.add_argument("--torch-threads", type=int, default=1,
                   help="torch intra-op threads (more OpenMP workers fight JAX's on a small CPU)")
    args = p.parse_args(argv)
    if min(args.steps, args.repeats, args.batch_size, args.dim, args.torch_threads) < 1:
        p.error("--steps, --repeats, --batch-size, --dim and --torch-threads must be >= 1")
    rows = []
    for b in args.backends:
        rows += numpyro_cases(args) if b == "numpyro" else pyro_cases(args)
        print(markdown(rows, args), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoke.md").write_text(markdown(rows, args))
    (out / "smoke.json").write_text(json.dumps(rows, indent=2) + "\n")
    bad = [f"{r['backend']}/{r['case']}" for r in rows if not r["finite"]]
    if bad:
        print(f"non-finite losses: {', '.join(bad)}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
