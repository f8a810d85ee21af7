"""Benchmark: IAF autoguides vs the built-in guides on the linear-Gaussian model (exact log Z).

    python -m models.bench.autoguide --out results/bench --resume
    python -m models.bench.autoguide --backends numpyro --dims 10,100 --budgets hot --seeds 1

Each cell (backend, budget, D, guide, seed) fits the guide, then scores it by a 1000-particle
ELBO; the gap is ``log Z - ELBO`` (>= 0). ms/step is the median of 3 timed blocks of steps after
warm-up. Cells are cached in ``<out>/cells.json`` (``--resume`` skips done cells), and the
tables go to ``<out>/bench.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from models.compare.guides import GUIDES
from models.compare.guides import numpyro_guide as _numpyro_guide
from models.compare.guides import pyro_guide as _pyro_guide
from models.targets.linear_gaussian import (
    linear_gaussian_data,
    linear_gaussian_model,
    linear_gaussian_reference,
)

BUDGETS = {  # name: (lr, particles, steps)
    "hot": (1e-2, 1, 2000),
    "gentle": (3e-3, 8, 5000),
}
TIMING_STEPS = 50


def run_cell_pyro(guide_name: str, D: int, budget: str, seed: int, scale: float = 0.1) -> dict:
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO

    from models.api import bind

    lr, particles, steps = BUDGETS[budget]
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    model = bind(linear_gaussian_model, "pyro")
    y = torch.tensor(linear_gaussian_data(D, scale), dtype=torch.float32)
    guide = _pyro_guide(guide_name, model, D)
    elbo = Trace_ELBO(num_particles=particles, vectorize_particles=particles > 1)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": lr}), elbo)
    diverged, times = None, []
    t0 = time.perf_counter()
    for step in range(steps):
        if step in (100, 100 + TIMING_STEPS, 100 + 2 * TIMING_STEPS):
            times.append(time.perf_counter())
        loss = svi.step(y, scale)
        if not np.isfinite(loss):
            diverged = step
            break
    total = time.perf_counter() - t0
    ms = statistics.median(np.diff(times + [times[-1]])[:2] * 1e3 / TIMING_STEPS) if len(times) == 3 else None
    final = None
    if diverged is None:
        with torch.no_grad():
            final = -Trace_ELBO(num_particles=1000, vectorize_particles=True).loss(model, guide, y, scale)
    n_params = sum(v.numel() for v in pyro.get_param_store().values())
    return _row("pyro", guide_name, D, budget, seed, scale, final, diverged, ms, total, n_params)


def run_cell_numpyro(guide_name: str, D: int, budget: str, seed: int, scale: float = 0.1) -> dict:
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    from models.api import bind

    lr, particles, steps = BUDGETS[budget]
    model = bind(linear_gaussian_model, "numpyro")
    y = jnp.asarray(linear_gaussian_data(D, scale), dtype=jnp.float32)
    guide = _numpyro_guide(guide_name, model, D)
    svi = SVI(model, guide, numpyro.optim.Adam(lr), Trace_ELBO(num_particles=particles))
    state = svi.init(jax.random.PRNGKey(seed), y, scale)
    block = TIMING_STEPS

    @jax.jit
    def run_block(state):
        return jax.lax.scan(lambda s, _: svi.update(s, y, scale), state, None, length=block)

    t0 = time.perf_counter()
    diverged, times, done = None, [], 0
    while done < steps:
        t = time.perf_counter()
        state, losses = run_block(state)
        losses = np.asarray(losses)
        if 0 < done <= 3 * block:
            times.append((time.perf_counter() - t) * 1e3 / block)
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            diverged = done + int(bad[0])
            break
        done += block
    total = time.perf_counter() - t0
    final = None
    params = svi.get_params(state)
    if diverged is None:
        neg = Trace_ELBO(num_particles=1000).loss(
            jax.random.PRNGKey(seed + 1), params, model, guide, y, scale
        )
        final = -float(neg)
    n_params = int(sum(np.size(v) for v in jax.tree.leaves(params)))
    ms = statistics.median(times) if times else None
    return _row("numpyro", guide_name, D, budget, seed, scale, final, diverged, ms, total, n_params)


def _row(backend, guide, D, budget, seed, scale, elbo, diverged, ms, total, n_params) -> dict:
    log_z = linear_gaussian_reference(D, scale).log_evidence
    gap = None if elbo is None or not np.isfinite(elbo) else log_z - elbo
    return {
        "scale": scale,
        "backend": backend,
        "guide": guide,
        "D": D,
        "budget": budget,
        "seed": seed,
        "elbo": elbo,
        "log_evidence": log_z,
        "gap": gap,
        "diverged_step": diverged,
        "ms_per_step": ms,
        "total_s": total,
        "num_params": n_params,
    }


RUNNERS = {"pyro": run_cell_pyro, "numpyro": run_cell_numpyro}


def _key(backend, budget, D, guide, seed) -> str:
    return f"{backend}|{budget}|{D}|{guide}|{seed}"


def write_tables(cells: dict, path: Path, machine: str) -> None:
    rows = list(cells.values())
    timing_path = path.parent / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    lines = [
        f"Machine: {machine}. Gap = exact log Z - ELBO (1000-particle estimate), nats; mean over seeds.",
        f"ms/step: median of {timing.get('_rounds', 3)} rounds of 50 steps with the guides interleaved "
        "(`--timing`, one particle,",
        "torch 1 thread); a `*` marks a value taken during the fit instead.",
        "",
    ]
    for backend in ("pyro", "numpyro"):
        for budget, (lr, particles, steps) in BUDGETS.items():
            sel = [r for r in rows if r["backend"] == backend and r["budget"] == budget]
            if not sel:
                continue
            lines += [
                f"### {backend}, budget `{budget}` (Adam {lr:g}, {particles} particle(s), {steps} steps)",
                "",
                "| guide | D | gap (mean) | gap per seed | diverged | ms/step | params |",
                "|---|---|---|---|---|---|---|",
            ]
            groups: dict[tuple, list] = {}
            for r in sel:
                groups.setdefault((r["guide"], r["D"], r.get("scale", 0.1)), []).append(r)
            for (guide, D, scale), rs in sorted(
                groups.items(), key=lambda kv: (kv[0][2], kv[0][1], GUIDES.index(kv[0][0]))
            ):
                gaps = [r["gap"] for r in rs]
                finite = [g for g in gaps if g is not None]
                mean = f"{np.mean(finite):.2f}" if len(finite) == len(gaps) else "diverged"
                per = ", ".join("NaN" if g is None else f"{g:.2f}" for g in gaps)
                div = ", ".join(str(r["diverged_step"]) for r in rs if r["diverged_step"] is not None) or "-"
                ms = [r["ms_per_step"] for r in rs if r["ms_per_step"]]
                timed = timing.get(f"{backend}|{D}|{guide}")
                ms_s = f"{timed:.2f}" if timed else (f"{statistics.median(ms):.2f}*" if ms else "-")
                flag = (" (1 seed)" if len(rs) == 1 else "") + ("" if scale == 0.1 else f", A={scale:g}*tril")
                lines.append(
                    f"| {guide} | {D}{flag} | {mean} | {per} | {div} | {ms_s} | {rs[0]['num_params']} |"
                )
            lines.append("")
    path.write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", default="pyro,numpyro")
    parser.add_argument("--dims", default="10,100,1000")
    parser.add_argument("--budgets", default="hot,gentle")
    parser.add_argument("--guides", default=",".join(GUIDES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seeds-at-1000", type=int, default=1)
    parser.add_argument("--out", default="results/bench")
    parser.add_argument("--scale", type=float, default=0.1, help="A = scale * tril(ones)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument(
        "--timing", action="store_true", help="only time the guides (interleaved), into timing.json"
    )
    parser.add_argument("--timing-rounds", type=int, default=9, help="rounds for --timing (median)")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)  # one intra-op thread: stable timings on a shared 2-core machine
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "cells.json"
    if args.timing:
        timing_path = out / "timing.json"
        timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
        timing["_rounds"] = args.timing_rounds
        for backend in args.backends.split(","):
            for D in map(int, args.dims.split(",")):
                guides = [
                    g
                    for g in args.guides.split(",")
                    if not (g == "multivariate" and D > 100)
                    and not (g == "iaf_builtin_stable" and backend != "pyro")
                ]
                for g, ms in time_guides(backend, D, guides, repeats=args.timing_rounds).items():
                    timing[f"{backend}|{D}|{g}"] = ms
                    print(backend, D, g, f"{ms:.3f} ms/step", flush=True)
                timing_path.write_text(json.dumps(timing, indent=1))
        return
    cells = json.loads(cache.read_text()) if args.resume and cache.exists() else {}
    machine = " ".join(
        part for part in (platform.machine(), platform.processor(), f"({os.cpu_count()} cores)") if part
    )
    for backend in args.backends.split(","):
        for budget in args.budgets.split(","):
            for D in map(int, args.dims.split(",")):
                for guide in args.guides.split(","):
                    if guide == "multivariate" and D > 100:
                        continue
                    if guide == "iaf_builtin_stable" and backend != "pyro":
                        continue
                    for seed in range(args.seeds if D < 1000 else args.seeds_at_1000):
                        key = _key(backend, budget, D, guide, seed) + (
                            "" if args.scale == 0.1 else f"|A{args.scale:g}"
                        )
                        if key in cells:
                            continue
                        row = RUNNERS[backend](guide, D, budget, seed, args.scale)
                        cells[key] = row
                        cache.write_text(json.dumps(cells, indent=1))
                        print(key, f"gap={row['gap']}", f"ms={row['ms_per_step']}", flush=True)
                        write_tables(cells, out / "bench.md", machine)
    write_tables(cells, out / "bench.md", machine)



# ---- timing: guides interleaved, so that load on a shared machine hits them alike -------------


def _pyro_stepper(guide_name: str, D: int, scale: float = 0.1):
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO

    from models.api import bind

    model = bind(linear_gaussian_model, "pyro")
    y = torch.tensor(linear_gaussian_data(D, scale), dtype=torch.float32)
    store = pyro.get_param_store()
    pyro.clear_param_store()
    guide = _pyro_guide(guide_name, model, D)
    svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
    svi.step(y, scale)
    state = store.get_state()

    def run(n: int) -> None:
        store.set_state(state)
        for _ in range(n):
            svi.step(y, scale)

    return run


def _numpyro_stepper(guide_name: str, D: int, scale: float = 0.1):
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    from models.api import bind

    model = bind(linear_gaussian_model, "numpyro")
    y = jnp.asarray(linear_gaussian_data(D, scale), dtype=jnp.float32)
    svi = SVI(model, _numpyro_guide(guide_name, model, D), numpyro.optim.Adam(1e-3), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), y, scale)
    run_block = jax.jit(
        lambda s: jax.lax.scan(lambda s, _: svi.update(s, y, scale), s, None, length=TIMING_STEPS)
    )
    jax.block_until_ready(run_block(state))

    def run(n: int) -> None:
        s = state
        for _ in range(max(n // TIMING_STEPS, 1)):
            s, losses = run_block(s)
        jax.block_until_ready(losses)

    return run


def time_guides(backend: str, D: int, guides: list[str], repeats: int = 3) -> dict[str, float]:
    """Median ms/step of each guide over ``repeats`` rounds, the guides interleaved in each round."""
    make = {"pyro": _pyro_stepper, "numpyro": _numpyro_stepper}[backend]
    if backend == "pyro":  # each Pyro guide keeps its own param store state
        steppers = {}
        for g in guides:
            steppers[g] = make(g, D)
    else:
        steppers = {g: make(g, D) for g in guides}
    samples: dict[str, list[float]] = {g: [] for g in guides}
    for _ in range(repeats):
        for g in guides:
            t = time.perf_counter()
            steppers[g](TIMING_STEPS)
            samples[g].append((time.perf_counter() - t) * 1e3 / TIMING_STEPS)
    return {g: statistics.median(v) for g, v in samples.items()}


if __name__ == "__main__":
    main()
