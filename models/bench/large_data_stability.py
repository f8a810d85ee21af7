"""Step size and the path-derivative score on the 1,000,000-row logistic regression, plain ``SVI``.

    python -m models.bench.large_data_stability [--backend numpyro|pyro|both] [--steps 2000] \
        [--seeds 3] [--out docs/bench/large_data_stability.json]

The posterior of :func:`models.targets.large_data.logistic_model` at 1,000,000 rows is narrow
(sds about 0.0025 against coefficients of order 1). Each cell fits ``AutoIAFNormal`` with a plain
``SVI`` (``Trace_ELBO``, one particle, batches of 20,000 rows), a constant Adam step size and the
guide's ``stl`` left at its default (on at this dimension) or off, for a few seeds and both
backends, and records the last 100 steps' mean loss, the step at which the loss first stopped
being finite (Pyro's validation raises there: the fit stops), and the globals' accuracy against
the stored NUTS reference (``docs/bench/large_data_reference.json``). No guard, no averaging, no
final full-data phase: what a user's own loop sees.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from models.bench.large_data import _rounded, config, data, load_reference, machine, uptime
from models.bench.large_data_report import ROOT, accuracy, summarize

OUT = ROOT / "docs" / "bench" / "large_data_stability.json"
#: (Adam step size, stl): stl None is the guide's default (on at D = 51)
CELLS = [(5e-2, None), (5e-2, False), (2e-2, None), (1e-2, None)]
BATCH = 20_000
NUM_DRAWS = 4000


def plain_svi_numpyro(arrays, *, lr: float, stl: bool | None, steps: int, seed: int) -> dict:
    """Plain ``SVI.run`` in NumPyro; the losses and ``NUM_DRAWS`` guide draws."""
    import jax
    import jax.numpy as jnp
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO

    from models.api import bind
    from models.targets.large_data import logistic_model
    from numpyro_iaf import AutoIAFNormal

    fn = bind(logistic_model, "numpyro")
    args = tuple(jnp.asarray(a) for a in arrays)
    guide = AutoIAFNormal(fn, stl=stl)
    svi = SVI(fn, guide, numpyro.optim.Adam(lr), Trace_ELBO())
    res = svi.run(jax.random.PRNGKey(seed), steps, *args, subsample_size=BATCH, progress_bar=False)
    draws = guide.sample_posterior(jax.random.PRNGKey(12345), res.params, *args, sample_shape=(NUM_DRAWS,))
    draws = {k: np.asarray(v) for k, v in draws.items()}
    return {"losses": np.asarray(res.losses, np.float64), "draws": draws}


def plain_svi_pyro(arrays, *, lr: float, stl: bool | None, steps: int, seed: int) -> dict:
    """Plain ``SVI.step`` in Pyro, stopped where the loss (or the model's validation) fails."""
    import pyro
    import torch
    from pyro.infer import SVI, Trace_ELBO

    from models.api import bind
    from models.targets.large_data import logistic_model
    from pyro_iaf import AutoIAFNormal

    torch.set_num_threads(1)
    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    fn = bind(logistic_model, "pyro")
    args = tuple(torch.as_tensor(a) for a in arrays)
    guide = AutoIAFNormal(fn, stl=stl)
    svi = SVI(fn, guide, pyro.optim.Adam({"lr": lr}), Trace_ELBO())
    losses = []
    for _ in range(steps):
        try:
            losses.append(svi.step(*args, subsample_size=BATCH))
        except ValueError:  # a NaN parameter reaches the model's distributions
            losses.append(float("nan"))
        if not np.isfinite(losses[-1]):
            return {"losses": np.asarray(losses), "draws": None}
    with torch.no_grad():
        draws = guide.sample_posterior(NUM_DRAWS, seed=12345)
    return {"losses": np.asarray(losses), "draws": {k: v.numpy() for k, v in draws.items()}}


def run(backends: list[str], steps: int, seeds: int, out: Path) -> dict:
    cfg = config("logistic", "full")
    ref, arrays = load_reference("logistic", cfg), data("logistic", cfg)
    result = {"machine": machine(), "load_start": uptime(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": steps,
              "batch": BATCH, "command": f"python -m models.bench.large_data_stability --steps {steps} "
              f"--seeds {seeds} --backend {'both' if len(backends) == 2 else backends[0]}", "rows": []}
    for backend in backends:
        fit = plain_svi_numpyro if backend == "numpyro" else plain_svi_pyro
        for lr, stl in CELLS:
            for seed in range(seeds):
                start = time.perf_counter()
                got = fit(arrays, lr=lr, stl=stl, steps=steps, seed=seed)
                losses = got["losses"]
                bad = np.flatnonzero(~np.isfinite(losses))
                row = {"backend": backend, "lr": lr, "stl": "default (on)" if stl is None else stl,
                       "seed": seed, "seconds": time.perf_counter() - start,
                       "first_nonfinite_step": int(bad[0]) if bad.size else None,
                       "final_loss": float(np.mean(losses[-100:])) if not bad.size else None,
                       "accuracy": None}
                if got["draws"] is not None and not bad.size:
                    row["accuracy"] = accuracy(summarize(got["draws"], "logistic"), ref)["globals"]
                result["rows"].append(row)
                print(json.dumps(row), flush=True)
    result["load_end"] = uptime()
    out.write_text(json.dumps(_rounded(result), indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["numpyro", "pyro", "both"], default="both")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(OUT))
    opts = parser.parse_args(argv)
    backends = ["numpyro", "pyro"] if opts.backend == "both" else [opts.backend]
    run(backends, opts.steps, opts.seeds, Path(opts.out))


if __name__ == "__main__":
    main()
