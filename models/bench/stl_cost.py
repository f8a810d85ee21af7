"""What the path-derivative gradient (``AutoIAFNormal(stl=True)``) costs per SVI step.

    python -m models.bench.stl_cost [--backend numpyro|pyro|both] [--dims 10,100,256,512,1000]

Model: the linear-Gaussian target (``models/targets/linear_gaussian.py``) at each ``D``; guide:
our ``AutoIAFNormal`` at its defaults with ``stl=False`` and ``stl=True``, Adam(1e-2), one
particle. ms/step excludes compilation: NumPyro, the median of 3 runs of a compiled
``lax.scan`` of 100 updates; Pyro, 100 steps after 10 warm-up steps (torch on 1 thread).
Prints a markdown table and writes it to ``--out``/stl_cost.md, its numbers to ``--out``/stl_cost.json
(``python docs/generate.py --stl-cost DIR`` takes them into the docs).
"""

from __future__ import annotations

import argparse
import json
import os
import time


def _ms_numpyro(D: int, stl: bool) -> float:
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.infer.initialization import init_to_median

    import numpyro_iaf
    from models.targets import get_model

    spec = get_model("linear_gaussian", backend="numpyro", D=D)
    guide = numpyro_iaf.AutoIAFNormal(spec.model, init_loc_fn=init_to_median, stl=stl)
    svi = SVI(spec.model, guide, numpyro.optim.Adam(1e-2), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), *spec.model_args, **spec.model_kwargs)

    @jax.jit
    def hundred(state):
        return jax.lax.scan(
            lambda s, _: svi.update(s, *spec.model_args, **spec.model_kwargs), state, None, 100
        )

    state, _ = jax.block_until_ready(hundred(state))  # compile
    times = []
    for _ in range(3):
        t = time.perf_counter()
        state, _ = jax.block_until_ready(hundred(state))
        times.append(time.perf_counter() - t)
    return sorted(times)[1] / 100 * 1e3


def _ms_pyro(D: int, stl: bool) -> float:
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO

    import pyro_iaf
    from models.targets import get_model

    torch.set_num_threads(1)
    spec = get_model("linear_gaussian", backend="pyro", D=D)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = pyro_iaf.AutoIAFNormal(spec.model, stl=stl)
    svi = SVI(spec.model, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO())
    for _ in range(10):
        svi.step(*spec.model_args, **spec.model_kwargs)
    t = time.perf_counter()
    for _ in range(100):
        svi.step(*spec.model_args, **spec.model_kwargs)
    return (time.perf_counter() - t) / 100 * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", default="both", choices=("numpyro", "pyro", "both"))
    parser.add_argument("--dims", default="10,100,256,512,1000")
    parser.add_argument("--out", default="results/stl_cost")
    args = parser.parse_args(argv)
    backends = ("numpyro", "pyro") if args.backend == "both" else (args.backend,)
    lines = [
        f"Machine: {os.uname().machine}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at start.",
        "",
        "| backend | D | ms/step stl=False (2 gated steps) | ms/step stl=True (1 affine step) | ratio |",
        "|---|---|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    rows = []
    for backend in backends:
        timer = _ms_numpyro if backend == "numpyro" else _ms_pyro
        for D in map(int, args.dims.split(",")):
            off, on = timer(D, False), timer(D, True)
            lines.append(f"| {backend} | {D} | {off:.2f} | {on:.2f} | {on / off:.1f}x |")
            rows.append({"backend": backend, "D": D, "ms_stl_false": off, "ms_stl_true": on,
                         "ratio": on / off})
            print(lines[-1], flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "stl_cost.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "stl_cost.json"), "w") as f:
        json.dump({"settings": {"machine": lines[0]}, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
