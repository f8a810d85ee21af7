"""What the path-derivative gradient (``AutoIAFNormal(stl=True)``) costs per SVI step.

    python -m models.bench.stl_cost [--backend numpyro|pyro|both] [--dims 10,100,128,256,512]
        [--particles 1,8] [--out docs/bench]

Model: the linear-Gaussian target (``models/targets/linear_gaussian.py``) at each ``D``; guide:
our ``AutoIAFNormal`` with the flow its default resolves to with ``stl=True`` (one affine step),
scored once with ``stl=False`` (the plain step) and once with ``stl=True``, Adam(1e-2). The two
are timed side by side, interleaved (plain, stl, plain, stl, ...; the median of 7 of each), so
the machine's load affects both alike. ms/step excludes compilation: NumPyro, a compiled
``lax.scan`` of 100 updates; Pyro, 50 steps after 10 warm-up steps (torch on 1 thread).
Writes ``--out``/stl_cost.json (``python docs/generate.py`` renders it into the docs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def _numpyro_timer(D: int, stl: bool, particles: int) -> Callable[[], float]:
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.initialization import init_to_median

    import numpyro_iaf
    from models.targets import get_model

    spec = get_model("linear_gaussian", backend="numpyro", D=D)
    guide = numpyro_iaf.AutoIAFNormal(
        spec.model, init_loc_fn=init_to_median, stl=stl, num_flows=1, gated=False
    )
    svi = SVI(spec.model, guide, numpyro.optim.Adam(1e-2), Trace_ELBO(num_particles=particles))
    state = [svi.init(jax.random.PRNGKey(0), *spec.model_args, **spec.model_kwargs)]

    @jax.jit
    def hundred(state):
        return jax.lax.scan(
            lambda s, _: svi.update(s, *spec.model_args, **spec.model_kwargs), state, None, 100
        )

    state[0], _ = jax.block_until_ready(hundred(state[0]))  # compile

    def timed() -> float:
        t = time.perf_counter()
        state[0], _ = jax.block_until_ready(hundred(state[0]))
        return (time.perf_counter() - t) / 100 * 1e3

    return timed


def _pyro_timer(D: int, stl: bool, particles: int) -> Callable[[], float]:
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO

    import pyro_iaf
    from models.targets import get_model

    torch.set_num_threads(1)
    spec = get_model("linear_gaussian", backend="pyro", D=D)
    # its own prefix: the plain and the STL guide share the param store without clashing
    guide = pyro_iaf.AutoIAFNormal(spec.model, stl=stl, num_flows=1, gated=False,
                                   prefix=f"g{D}_{particles}_{int(stl)}")
    elbo = Trace_ELBO(num_particles=particles, vectorize_particles=particles > 1)
    svi = SVI(spec.model, guide, pyro.optim.Adam({"lr": 1e-2}), elbo)
    pyro.set_rng_seed(0)
    for _ in range(10):
        svi.step(*spec.model_args, **spec.model_kwargs)

    def timed() -> float:
        t = time.perf_counter()
        for _ in range(50):
            svi.step(*spec.model_args, **spec.model_kwargs)
        return (time.perf_counter() - t) / 50 * 1e3

    return timed


def measure(backend: str, D: int, particles: int, repeats: int = 7) -> dict:
    """``{"ms_plain", "ms_stl", "ratio"}``: medians of ``repeats`` interleaved timings."""
    make = _numpyro_timer if backend == "numpyro" else _pyro_timer
    plain, stl = make(D, False, particles), make(D, True, particles)
    times: dict[str, list[float]] = {"plain": [], "stl": []}
    for _ in range(repeats):
        times["plain"].append(plain())
        times["stl"].append(stl())
    off, on = statistics.median(times["plain"]), statistics.median(times["stl"])
    return {"backend": backend, "D": D, "particles": particles, "ms_plain": off, "ms_stl": on,
            "ratio": on / off}


def _solve_blocks(backends: tuple[str, ...]) -> dict[str, int]:
    """Each backend's block size of the blocked triangular solve (``jacobian.SOLVE_BLOCK``)."""
    modules = {"numpyro": "numpyro_iaf.jacobian", "pyro": "pyro_iaf.jacobian"}
    return {b: __import__(modules[b], fromlist=["SOLVE_BLOCK"]).SOLVE_BLOCK for b in backends}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="both", choices=("numpyro", "pyro", "both"))
    parser.add_argument("--dims", default="10,100,128,256,512")
    parser.add_argument("--particles", default="1,8")
    parser.add_argument("--out", default="results/stl_cost")
    parser.add_argument("--label", default="", help="a note stored with the settings")
    args = parser.parse_args(argv)
    backends = ("numpyro", "pyro") if args.backend == "both" else (args.backend,)
    settings = {
        "command": "python -m models.bench.stl_cost " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()} ({os.cpu_count()} cores)",
        "load_at_start": round(os.getloadavg()[0], 1),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": _commit(),
        "label": args.label,
        "solve_block": _solve_blocks(backends),
    }
    rows = []
    for backend in backends:
        for particles in map(int, args.particles.split(",")):
            for D in map(int, args.dims.split(",")):
                rows.append(measure(backend, D, particles))
                r = rows[-1]
                print(f"{backend} D={D} particles={particles}: plain {r['ms_plain']:.2f} ms, "
                      f"stl {r['ms_stl']:.2f} ms, {r['ratio']:.2f}x", flush=True)
    settings["load_at_end"] = round(os.getloadavg()[0], 1)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "stl_cost.json"), "w") as f:
        json.dump({"settings": settings, "rows": rows}, f, indent=1)
    print(f"Wrote {args.out}/stl_cost.json")


if __name__ == "__main__":
    main()
