"""IAF vs diagonal posterior on MNIST, per backend: runs ``python -m models.vae`` one at a time.

    python -m models.vae.benchmark --epochs 10 --seeds 0 --backends numpyro pyro --out results/vae
    python -m models.vae.benchmark --table-only --out results/vae   # re-collect into README.md

Every run writes ``<out>/<backend>-<posterior>-s<seed>/metrics.json``; the table (mean +- sd over
seeds, nats per image, negative like the paper) goes to ``<out>/README.md``. ``--reference``
also times a plain NumPyro VAE (the architecture of NumPyro's ``examples/vae.py``: 784-400-50,
softplus, batch 128, Adam 1e-3, jit'd ``SVI.update``) on the same machine, as a speed yardstick.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def run_one(out: Path, backend: str, posterior: str, seed: int, args) -> None:
    run = out / f"{backend}-{posterior}-s{seed}"
    metrics = run / "metrics.json"
    if metrics.exists() and not args.force:
        done = json.loads(metrics.read_text()).get("epochs", 0)
        if done >= args.epochs:
            print(f"skip {run} (metrics.json has {done} epochs)", flush=True)
            return
    cmd = [sys.executable, "-m", "models.vae", "--backend", backend, "--posterior", posterior,
           "--dataset", args.dataset, "--arch", args.arch, "--epochs", str(args.epochs),
           "--seed", str(seed), "--is-samples", str(args.is_samples), "--out", str(run),
           "--threads", str(args.threads), "--no-progress"]
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    if args.eval_limit:
        cmd += ["--eval-limit", str(args.eval_limit)]
    if (run / "checkpoint.json").exists() or (run / "checkpoint.pkl").exists():  # .pkl: a clear error
        cmd.append("--resume")
    print(" ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def plain_numpyro_vae_seconds(epochs: int, threads: int, max_steps: int = 468,
                              data_dir: str | None = None) -> float:
    """Median seconds per epoch of a plain NumPyro VAE (examples/vae.py) on dynamic MNIST.

    ``max_steps`` < 468: time that many steps (after one compiled warm-up step) and scale."""
    code = f"""
import time, numpy as np, jax, jax.numpy as jnp, numpyro, numpyro.distributions as dist, optax
from numpyro.infer import SVI, Trace_ELBO
from models.vae.data import load
def mlp(p, x, act):
    for i, (w, b) in enumerate(p):
        x = x @ w + b
        x = act(x) if i < len(p) - 1 else x
    return x
def init(key, sizes):
    ks = jax.random.split(key, len(sizes))
    return [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b))
            for k, a, b in zip(ks, sizes[:-1], sizes[1:])]
def model(x):
    p = numpyro.param("dec", init(jax.random.PRNGKey(1), [50, 400, 784]))
    with numpyro.plate("data", x.shape[0]):
        z = numpyro.sample("z", dist.Normal(jnp.zeros((x.shape[0], 50)), 1).to_event(1))
        numpyro.sample("x", dist.Bernoulli(logits=mlp(p, z, jax.nn.softplus)).to_event(1), obs=x)
def guide(x):
    p = numpyro.param("enc", init(jax.random.PRNGKey(2), [784, 400, 100]))
    out = mlp(p, x, jax.nn.softplus)
    with numpyro.plate("data", x.shape[0]):
        numpyro.sample("z", dist.Normal(out[:, :50], jnp.exp(0.5 * out[:, 50:])).to_event(1))
svi = SVI(model, guide, optax.adam(1e-3), Trace_ELBO())
data, rng = load("mnist", {data_dir!r}), np.random.default_rng(0)
state = jax.jit(svi.init)(jax.random.PRNGKey(0), jnp.zeros((128, 784)))
update = jax.jit(svi.update)
times = []
n = {max_steps}
for epoch in range({epochs}):
    x = data.train_epoch(rng)[rng.permutation(60000)][: 468 * 128].reshape(468, 128, 784)
    if n < 468:
        state, loss = update(state, jnp.asarray(x[-1]))
        loss.block_until_ready()
    t0 = time.perf_counter()
    for xb in x[:n]:
        state, loss = update(state, jnp.asarray(xb))
    loss.block_until_ready()
    times.append((time.perf_counter() - t0) * 468 / n)
print(times[1:] if len(times) > 1 else times)
"""
    import os

    env = dict(os.environ)
    if threads == 1:
        env["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    times = json.loads(out.stdout.strip().splitlines()[-1])
    return statistics.median(times)


def speed(out: Path, backends, posteriors, steps: int, rounds: int, data_dir) -> dict:
    """Seconds per 60,000-image epoch from ``steps`` timed SVI steps per configuration, the
    configurations interleaved ``rounds`` times in one process (so they share the machine's load),
    plus the plain NumPyro VAE in a subprocess before and after. Medians over rounds."""
    from . import VAEConfig, make_vae
    from .data import load
    from .train import epoch_batches

    data = load("mnist", data_dir)
    rng = np.random.default_rng(0)
    vaes = {(b, p): make_vae(b, VAEConfig(posterior=p), data.side) for b in backends for p in posteriors}
    batches = epoch_batches(data, rng, VAEConfig().batch_size)[: steps + 5]
    for vae in vaes.values():
        vae.warmup(batches[0])
        vae.train_epoch(batches[:5])
    times: dict = {f"{b}-{p}": [] for b, p in vaes}
    times["plain-numpyro-vae"] = []
    for _ in range(rounds):
        times["plain-numpyro-vae"].append(plain_numpyro_vae_seconds(1, 1, steps * 100 // 128, data_dir))
        for (b, p), vae in vaes.items():
            t0 = time.perf_counter()
            vae.train_epoch(batches[5:])
            dt = time.perf_counter() - t0
            times[f"{b}-{p}"].append(dt / (steps * batches.shape[1]) * 60000)
    result = {k: {"seconds_per_epoch": statistics.median(v), "all": v} for k, v in times.items()}
    result["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    result["steps"] = steps
    (out / "speed.json").write_text(json.dumps(result, indent=2))
    return result


def _fmt(values: list[float], digits: int = 2) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def _guide_label(m: dict) -> str:
    """``hand``, or ``auto`` with where it applies the encoder's loc/scale (runs made before
    ``--auto-affine`` existed applied them last)."""
    cfg = m.get("config", {})
    guide = m.get("guide", cfg.get("guide", "hand"))
    return guide if guide == "hand" else f"{guide}, affine {cfg.get('auto_affine', 'last')}"


def table(out: Path) -> str:
    runs = [json.loads(p.read_text()) for p in sorted(out.glob("*/metrics.json"))]
    groups: dict = {}
    for m in runs:
        guide = _guide_label(m)
        groups.setdefault((m["backend"], m["posterior"], guide, m["epochs"], m["test_images"]), []).append(m)
    lines = ["| backend | posterior | guide | epochs | seeds | test images | test ELBO | log p(x) (IS) "
             "| s/epoch |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (backend, posterior, guide, epochs, n), ms in sorted(groups.items()):
        lines.append(
            f"| {backend} | {posterior} | {guide} | {epochs} | {len(ms)} | {n} "
            f"| {_fmt([m['test_elbo'] for m in ms])} | {_fmt([m['test_log_likelihood'] for m in ms])} "
            f"| {_fmt([m['seconds_per_epoch'] for m in ms], 1)} |"
        )
    sp = out / "speed.json"
    if sp.exists():
        s = json.loads(sp.read_text())
        lines.append(f"\nSpeed, interleaved in one process ({s['steps']} steps each, median of "
                     f"{len(s['plain-numpyro-vae']['all'])} rounds, {s['when']}), s/epoch of 60k images: "
                     + ", ".join(f"{k} {v['seconds_per_epoch']:.1f}" for k, v in s.items()
                                 if isinstance(v, dict)) + ".")
    ref = out / "reference.json"
    if ref.exists():
        r = json.loads(ref.read_text())
        lines.append(f"\nPlain NumPyro VAE (examples/vae.py architecture), same machine: "
                     f"{r['seconds_per_epoch']:.1f} s/epoch (measured {r['when']}).")
    if runs:
        m = runs[0]
        cfg = {k: v for k, v in m["config"].items() if k not in ("posterior", "seed", "guide", "auto_affine")}
        lines.append(f"\nData: {m['dataset']} ({m['data_source']}); IS with {m['is_samples']} "
                     f"samples; config {json.dumps(cfg)}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m models.vae.benchmark", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/vae")
    p.add_argument("--backends", nargs="+", default=["numpyro", "pyro"])
    p.add_argument("--posteriors", nargs="+", default=["iaf", "diagonal"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--arch", default="mlp")
    p.add_argument("--is-samples", type=int, default=128)
    p.add_argument("--eval-limit", type=int, default=None, help="IS on the first N test images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reference", action="store_true", help="also time a plain NumPyro VAE")
    p.add_argument("--reference-epochs", type=int, default=3)
    p.add_argument("--table-only", action="store_true")
    p.add_argument("--speed", action="store_true",
                   help="only time SVI steps of every configuration, interleaved (speed.json)")
    p.add_argument("--speed-steps", type=int, default=150)
    p.add_argument("--speed-rounds", type=int, default=3)
    p.add_argument("--force", action="store_true", help="rerun runs that have metrics.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.speed:
        if args.threads == 1:  # as `python -m models.vae --threads 1` does, before JAX starts
            import os

            import torch

            torch.set_num_threads(1)
            os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        speed(out, args.backends, args.posteriors, args.speed_steps, args.speed_rounds, args.data_dir)
    elif not args.table_only:
        if args.reference:
            s = plain_numpyro_vae_seconds(args.reference_epochs, args.threads, data_dir=args.data_dir)
            (out / "reference.json").write_text(json.dumps(
                {"seconds_per_epoch": s, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}))
            print(f"plain NumPyro VAE: {s:.2f} s/epoch", flush=True)
        for backend in args.backends:
            for seed in args.seeds:
                for posterior in args.posteriors:
                    run_one(out, backend, posterior, seed, args)
    text = table(out)
    (out / "README.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
