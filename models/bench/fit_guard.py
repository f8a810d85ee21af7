"""What ``fit``'s guards change: each model fitted with today's ``fit`` and, where it clipped or
skipped a step, again as the previous ``fit`` did (no clipping, ``clip_factor=inf``; the first
non-finite step raises, ``max_skipped_steps=1``), same seed.

    python -m models.bench.fit_guard --backend numpyro --suite both --seeds 3 \\
        --out docs/bench/fit_guard_numpyro.json
    python -m models.bench.fit_guard --backend numpyro --models arma-arma11 --particles 16 \\
        --final-lr 1e-4 --steps 1000 --seeds 3 --out docs/bench/fit_guard_arma11.json

``AutoIAFNormal(model)`` at every default under ``numpyro_iaf.fit`` / ``pyro_iaf.fit`` (Adam
``--lr``, decaying to ``--final-lr`` when given, ``--particles``, ``--steps``); the ELBO from
``--draws`` draws. A run in which no step was clipped or skipped is the same run either way (the
guard only rescales a clipped gradient and holds back a non-finite one), so only those are run
twice. Rows are
written after each model (``--out``; an existing file is resumed). Prints the rows that changed.
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

from models.compare.accuracy import Recipe, make_optim
from models.posteriordb import POSTERIOR_NAMES
from models.targets import MODELS, get_model


def fit_and_elbo(spec, recipe: Recipe, seed: int, draws: int, guards: bool = True) -> dict:
    """``AutoIAFNormal(spec.model)`` under the backend's ``fit`` with ``recipe``, then the ELBO
    from ``draws`` draws: ``{"elbo", "clipped", "skipped", "error", "seconds"}``. ``guards=False``
    is the previous ``fit`` (no clipping; the first non-finite step raises). Any error is recorded."""
    t0 = time.perf_counter()
    row = {"elbo": None, "clipped": None, "skipped": None, "error": None}
    args, kwargs = spec.model_args, spec.model_kwargs
    optim = make_optim(spec.backend, recipe)
    off = {} if guards else {"clip_factor": math.inf, "max_skipped_steps": 1}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if spec.backend == "numpyro":
                import jax
                from numpyro.infer import Trace_ELBO

                import numpyro_iaf

                guide = numpyro_iaf.AutoIAFNormal(spec.model)
                result = numpyro_iaf.fit(spec.model, guide, *args, optim=optim, num_steps=recipe.steps,
                                         num_particles=recipe.particles, seed=seed, progress_bar=False,
                                         **off, **kwargs)
                loss = Trace_ELBO(num_particles=draws).loss(jax.random.PRNGKey(seed + 1), result.params,
                                                            spec.model, guide, *args, **kwargs)
            else:
                import pyro
                import torch
                from pyro.infer import Trace_ELBO

                import pyro_iaf

                pyro.clear_param_store()
                guide = pyro_iaf.AutoIAFNormal(spec.model)
                elbo = Trace_ELBO(num_particles=recipe.particles,
                                  vectorize_particles=spec.vectorize_particles(recipe.particles))
                result = pyro_iaf.fit(spec.model, guide, *args, optim=optim, num_steps=recipe.steps,
                                      seed=seed, progress_bar=False, loss=elbo, **off, **kwargs)
                with torch.no_grad():
                    pyro.set_rng_seed(seed + 1)
                    loss = Trace_ELBO(num_particles=draws, vectorize_particles=False).loss(
                        spec.model, guide, *args, **kwargs)
        row.update(elbo=-float(loss), clipped=result.clipped_steps, skipped=len(result.skipped_steps))
    except Exception as error:  # recorded, the run goes on
        row["error"] = f"{type(error).__name__}: {str(error)[:200]}"
    row["seconds"] = time.perf_counter() - t0
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("numpyro", "pyro"), default="numpyro")
    p.add_argument("--suite", choices=("targets", "posteriordb", "both"), default="both")
    p.add_argument("--models", default="", help="comma-separated names (default: the suite)")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--particles", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--final-lr", type=float, default=None)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.backend == "pyro":
        import torch

        torch.set_num_threads(1)
    names = [n for n in args.models.split(",") if n]
    if not names:
        names = (list(MODELS) if args.suite != "posteriordb" else []) + (
            list(POSTERIOR_NAMES) if args.suite != "targets" else [])
    recipe = Recipe(args.steps, args.particles, args.lr, args.final_lr)
    config = {"backend": args.backend, "steps": args.steps, "particles": args.particles, "lr": args.lr,
              "final_lr": args.final_lr, "draws": args.draws, "seeds": args.seeds}
    data = json.loads(args.out.read_text()) if args.out.exists() else {"config": config, "rows": []}
    done = {(r["model"], r["seed"]) for r in data["rows"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in names:
        for seed in range(args.seeds):
            if (name, seed) in done:
                continue
            spec = get_model(name, args.backend)
            suite = "posteriordb" if name in POSTERIOR_NAMES else "targets"
            row = {"model": name, "seed": seed, "suite": suite,
                   "guarded": fit_and_elbo(spec, recipe, seed, args.draws),
                   "previous": None}
            g = row["guarded"]
            if g["clipped"] != 0 or g["skipped"] != 0:  # None (an error) or a step clipped/skipped
                row["previous"] = fit_and_elbo(spec, recipe, seed, args.draws, guards=False)
            data["rows"].append(row)
            args.out.write_text(json.dumps(data, indent=1) + "\n")
            g, u = row["guarded"], row["previous"]
            print(f"{name} seed {seed}: guarded {g['elbo']} (clipped {g['clipped']}, skipped {g['skipped']}"
                  f"{', ' + g['error'] if g['error'] else ''})"
                  + (f"; previous fit {u['elbo']} {u['error'] or ''}" if u else ""), flush=True)


if __name__ == "__main__":
    main()
