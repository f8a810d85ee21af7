"""Accuracy of the global latent under ``AutoAmortizedIAF`` against ``AutoNormal`` (issue 14).

    python -m models.bench.globals [--backend pyro|numpyro|both] [--seeds 5] [--steps 3000]
                                   [--batch 200] [--lr 1e-2] [--guides normal,ours] [--out DIR]

Model: ``mu ~ N(0, 10)``, ``theta_i ~ N(mu, 1)``, ``y_i ~ N(theta_i, 1)``, N = 2000 (``--n``),
minibatches of ``--batch`` through ``plate(subsample_size=...)``; data drawn once (seed 0) with
``mu = 3``. The exact posterior of ``mu`` is Gaussian (marginally ``y_i ~ N(mu, 2)``), and so is
the log evidence. Each guide is fitted with ``fit`` (Adam ``--lr``, 1 particle, ``--steps`` steps)
for seeds ``0..seeds-1``; for each fit: ``err = (E_q[mu] - E[mu|y]) / sd[mu|y]`` and
``sd_q[mu] / sd[mu|y]`` from 20,000 draws of ``q(mu)`` (fixed seed), and for our guides the gap
``log p(y) - ELBO`` of the final iterate on the full data (100 particles, fixed seed). Guides:
``normal`` (the built-in ``AutoNormal``, its defaults), ``ours`` (``AutoAmortizedIAF``, its
defaults), ``ours_centred`` (``centre_globals=True``) and ``ours_nostl`` (``stl=False``: the local
part without the path-derivative gradient, the default before issue 20). Writes
``globals.md`` (the table: |err| mean and max over seeds, signed err mean, sd ratio mean, gap) and
``globals.json`` (every fit) to ``--out``; ``--merge DIR,DIR`` writes the table of earlier runs'
``globals.json`` instead of fitting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

GUIDES = ("normal", "ours", "ours_centred", "ours_nostl")


def data(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return 3.0 + rng.standard_normal(n) + rng.standard_normal(n)


def exact(y: np.ndarray) -> tuple[float, float]:
    """Posterior mean and sd of ``mu``: prior N(0, 10^2), y_i | mu ~ N(mu, 2)."""
    precision = 1 / 100 + len(y) / 2
    return float(y.sum() / 2 / precision), float(precision**-0.5)


def log_evidence(y: np.ndarray) -> float:
    """``log p(y)``: ``p(y) = N(y; 0, 2 I + 100 J)`` written through the posterior of ``mu``."""
    mean, sd = exact(y)

    def log_normal(x, loc, var):
        return -0.5 * (np.log(2 * np.pi * var) + (x - loc) ** 2 / var)

    return float(
        log_normal(y, mean, 2.0).sum() + log_normal(mean, 0.0, 100.0) - log_normal(mean, mean, sd**2)
    )


def _ours(guide_name: str) -> dict:
    return {
        "centre_globals": guide_name == "ours_centred",
        **({"stl": False} if guide_name == "ours_nostl" else {}),
    }


def run_pyro(guide_name: str, y: np.ndarray, batch: int, steps: int, lr: float, seed: int):
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import Trace_ELBO
    from pyro.infer.autoguide import AutoNormal

    from pyro_iaf import AutoAmortizedIAF, fit

    torch.set_num_threads(1)
    yt = torch.as_tensor(y, dtype=torch.float32)

    def model(y, subsample_size=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
            theta = pyro.sample("theta", dist.Normal(mu, 1.0))
            pyro.sample("y", dist.Normal(theta, 1.0), obs=y[idx])

    pyro.clear_param_store()
    pyro.set_rng_seed(seed)
    guide = AutoNormal(model) if guide_name == "normal" else AutoAmortizedIAF(model, **_ours(guide_name))
    fit(
        model,
        guide,
        yt,
        batch,
        num_steps=steps,
        seed=seed,
        optim=pyro.optim.Adam({"lr": lr}),
        progress_bar=False,
    )
    with torch.no_grad():
        if guide_name == "normal":
            loc, scale = pyro.param("AutoNormal.locs.mu").item(), pyro.param("AutoNormal.scales.mu").item()
            return loc, scale, None
        torch.manual_seed(12345)
        draws = guide.global_guide.get_posterior().sample((20000,))[..., 0].double()
        pyro.set_rng_seed(1)
        elbo = -Trace_ELBO(num_particles=100, vectorize_particles=True).loss(model, guide, yt, None)
        return draws.mean().item(), draws.std().item(), log_evidence(y) - elbo


def run_numpyro(guide_name: str, y: np.ndarray, batch: int, steps: int, lr: float, seed: int):
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import Trace_ELBO
    from numpyro.infer.autoguide import AutoNormal

    from numpyro_iaf import AutoAmortizedIAF, fit

    yj = jnp.asarray(y, dtype=jnp.float32)

    def model(y, subsample_size=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
            theta = numpyro.sample("theta", dist.Normal(mu, 1.0))
            numpyro.sample("y", dist.Normal(theta, 1.0), obs=y[idx])

    guide = AutoNormal(model) if guide_name == "normal" else AutoAmortizedIAF(model, **_ours(guide_name))
    result = fit(
        model, guide, yj, batch, num_steps=steps, seed=seed, optim=numpyro.optim.Adam(lr), progress_bar=False
    )
    if guide_name == "normal":
        return float(result.params["mu_auto_loc"]), float(result.params["mu_auto_scale"]), None
    q = guide.global_guide.get_posterior(result.params)
    draws = np.asarray(q.sample(jax.random.PRNGKey(12345), (20000,))[..., 0], dtype=np.float64)
    loss = jax.jit(
        lambda p: Trace_ELBO(num_particles=100).loss(jax.random.PRNGKey(1), p, model, guide, yj, None)
    )
    return float(draws.mean()), float(draws.std(ddof=1)), log_evidence(y) + float(loss(result.params))


def table(rows: list[dict], guides, backends) -> str:
    lines = [
        "| backend | guide | seeds | mean abs err (post. sd) | max abs err | mean err | sd ratio q/exact "
        "| gap log Z - ELBO (per seed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for backend in backends:
        for guide in guides:
            sel = [r for r in rows if r["backend"] == backend and r["guide"] == guide]
            if not sel:
                continue
            errs = np.abs([r["err"] for r in sel])
            ratio = np.mean([r["sd_ratio"] for r in sel])
            gaps = " / ".join("-" if r.get("gap") is None else f"{r['gap']:.2f}" for r in sel)
            lines.append(
                f"| {backend} | {guide} | {len(sel)} | {errs.mean():.2f} | {errs.max():.2f} | "
                f"{np.mean([r['err'] for r in sel]):+.2f} | {ratio:.2f} | {gaps} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["pyro", "numpyro", "both"], default="both")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--guides", default="normal,ours")
    parser.add_argument("--out", default="results/globals")
    parser.add_argument("--merge", default="", help="comma-separated output folders of earlier runs")
    opts = parser.parse_args()
    if opts.merge:
        runs = [json.load(open(os.path.join(d, "globals.json"))) for d in opts.merge.split(",")]
        rows = [r for run in runs for r in run["rows"]]
        guides = [g for g in GUIDES if any(r["guide"] == g for r in rows)]
        backends = [b for b in ("pyro", "numpyro") if any(r["backend"] == b for r in rows)]
        text = table(rows, guides, backends)
        os.makedirs(opts.out, exist_ok=True)
        with open(os.path.join(opts.out, "globals.md"), "w") as f:
            f.write(text + "\n")
        print(text)
        return
    guides = opts.guides.split(",")
    unknown = set(guides) - set(GUIDES)
    if unknown:
        parser.error(f"unknown guides {sorted(unknown)}; choose from {GUIDES}")
    backends = ["pyro", "numpyro"] if opts.backend == "both" else [opts.backend]
    y = data(opts.n)
    mean, sd = exact(y)
    rows = []
    for backend in backends:
        run = run_pyro if backend == "pyro" else run_numpyro
        for guide in guides:
            for seed in range(opts.seeds):
                start = time.perf_counter()
                q_mean, q_sd, gap = run(guide, y, opts.batch, opts.steps, opts.lr, seed)
                row = {
                    "backend": backend,
                    "guide": guide,
                    "seed": seed,
                    "err": (q_mean - mean) / sd,
                    "sd_ratio": q_sd / sd,
                    "gap": gap,
                    "seconds": time.perf_counter() - start,
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
    os.makedirs(opts.out, exist_ok=True)
    header = (
        f"N={opts.n}, batch {opts.batch}, Adam {opts.lr:g}, 1 particle, {opts.steps} steps, seeds "
        f"0-{opts.seeds - 1}; exact E[mu|y] = {mean:.4f}, sd = {sd:.4f}\n\n"
    )
    text = header + table(rows, guides, backends)
    with open(os.path.join(opts.out, "globals.md"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(opts.out, "globals.json"), "w") as f:
        json.dump({"options": vars(opts), "exact": [mean, sd], "rows": rows}, f, indent=1)
    print(text)
    assert math.isfinite(mean)


if __name__ == "__main__":
    main()
