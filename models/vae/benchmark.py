"""IAF vs diagonal posterior on MNIST, per backend: runs ``python -m models.vae`` one at a time.

    python -m models.vae.benchmark --epochs 10 --seeds 0 --backends numpyro pyro --out results/vae
    python -m models.vae.benchmark --table-only --out results/vae   # re-collect into README.md

    python -m models.vae.benchmark --speed --data-dir ../shared/data --out results/vae-speed

Every run writes ``<out>/<backend>-<posterior>-s<seed>/metrics.json``; the table (mean +- sd over
seeds, nats per image, negative like the paper) goes to ``<out>/README.md``. ``--speed`` times
our training step against the plain loops of :mod:`models.vae.plain` (same networks), interleaved
in one process, into ``<out>/speed.json`` and ``speed.md``. ``--reference``
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


SPEED_JSON = "speed.json"


def speed_rows(vaes: dict, batches: np.ndarray, steps: int, rounds: int, log=print) -> dict:
    """Per-step seconds of each of ``vaes`` (``{label: vae}``, anything with ``train_epoch``),
    interleaved: each round runs ``steps`` minibatches of every VAE in turn (rotating the order),
    so that all share the machine's load. ``({label: [wall s/step per round]}, {label: [CPU s/step
    of this process per round]})``; CPU time does not count waiting for a core other jobs hold."""
    labels = list(vaes)
    for label in labels:  # compile / warm up on other minibatches than the timed ones
        vaes[label].warmup(batches[0])
        vaes[label].train_epoch(batches[:steps])
    times: dict = {k: [] for k in labels}
    cpu: dict = {k: [] for k in labels}
    for r in range(rounds):
        order = labels[r % len(labels):] + labels[: r % len(labels)]
        for label in order:
            t0, c0 = time.perf_counter(), time.process_time()
            vaes[label].train_epoch(batches[steps : 2 * steps])  # returns a float: waits for the work
            times[label].append((time.perf_counter() - t0) / steps)
            cpu[label].append((time.process_time() - c0) / steps)
        log(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {times[k][-1] * 1e3:.1f}" for k in labels)
            + " ms/step", flush=True)
    return times, cpu


def speed(out: Path, backends, posteriors, steps: int, rounds: int, dataset: str, data_dir, threads: int,
          cfg_overrides: dict | None = None) -> dict:
    """Ours (each backend and posterior) against the plain loops of :mod:`models.vae.plain` with
    the same networks, timed interleaved in this process; writes ``<out>/speed.json``.

    Epochs are subsampled: ``s/epoch = median seconds per step * steps per epoch``; the ratio
    ours / plain is taken per round (both ran back to back) and its median reported."""
    import os
    import platform

    from . import VAEConfig, make_vae
    from .data import load
    from .plain import PLAIN
    from .train import epoch_batches

    try:
        data = load(dataset, data_dir)
    except FileNotFoundError as e:
        print(f"{e}\nfalling back to the 8x8 digits (not MNIST: much smaller images)", flush=True)
        data = load("digits")
    cfgs = {p: VAEConfig(posterior=p, **(cfg_overrides or {})) for p in posteriors}
    batches = epoch_batches(data, np.random.default_rng(0), cfgs[posteriors[0]].batch_size)
    if len(batches) < 2 * steps:
        raise ValueError(f"--speed-steps {steps} needs {2 * steps} minibatches; {data.name} has "
                         f"{len(batches)}: lower --speed-steps")
    vaes = {}
    for b in backends:
        for p in posteriors:
            vaes[f"ours-{b}-{p}"] = make_vae(b, cfgs[p], data.side)
            vaes[f"plain-{b}-{p}"] = PLAIN[b](cfgs[p], data.side)
    load_before = os.getloadavg()[0]
    times, cpu = speed_rows(vaes, batches, steps, rounds)
    per_epoch = len(data.train) // cfgs[posteriors[0]].batch_size
    rows = []
    for b in backends:
        for p in posteriors:
            ours, plain = times[f"ours-{b}-{p}"], times[f"plain-{b}-{p}"]
            ratios = [o / q for o, q in zip(ours, plain)]
            ours_cpu, plain_cpu = cpu[f"ours-{b}-{p}"], cpu[f"plain-{b}-{p}"]
            rows.append({"backend": b, "posterior": p, "ours_s_per_step": statistics.median(ours),
                         "plain_s_per_step": statistics.median(plain), "ratio": statistics.median(ratios),
                         "ratios": ratios, "ours_all": ours, "plain_all": plain,
                         "cpu_ratio": statistics.median(ours_cpu) / statistics.median(plain_cpu),
                         "ours_cpu_s_per_step": statistics.median(ours_cpu),
                         "plain_cpu_s_per_step": statistics.median(plain_cpu)})
    result = {"rows": rows, "steps": steps, "rounds": rounds, "steps_per_epoch": per_epoch,
              "dataset": data.name, "batch_size": cfgs[posteriors[0]].batch_size, "threads": threads,
              "config": {k: v for k, v in cfgs[posteriors[0]].to_dict().items() if k not in ("posterior",)},
              "machine": f"{os.cpu_count()}-core {platform.machine()} CPU",
              "load_before_after": [load_before, os.getloadavg()[0]],
              "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "command": "python -m models.vae.benchmark " + " ".join(sys.argv[1:])}
    (out / SPEED_JSON).write_text(json.dumps(result, indent=2))
    return result


def speed_table(s: dict) -> str:
    """The markdown table of :func:`speed`'s result."""
    n = s["steps_per_epoch"]
    lines = [f"| backend | posterior | ours s/epoch | plain s/epoch | ours steps/s | plain steps/s "
             f"| ours / plain, wall (median of {s['rounds']} rounds; range) | ours / plain, CPU time |",
             "|---|---|---|---|---|---|---|---|"]
    for r in s["rows"]:
        lo, hi = min(r["ratios"]), max(r["ratios"])
        lines.append(f"| {r['backend']} | {r['posterior']} | {r['ours_s_per_step'] * n:.2f} "
                     f"| {r['plain_s_per_step'] * n:.2f} | {1 / r['ours_s_per_step']:.1f} "
                     f"| {1 / r['plain_s_per_step']:.1f} | **{r['ratio']:.2f}x** ({lo:.2f}-{hi:.2f}) "
                     f"| {r['cpu_ratio']:.2f}x |")
    load = s.get("load_before_after")
    lines.append(f"\n{s['machine']}, {s['threads']} thread(s) per framework, {s['when']}"
                 + (f", load average {load[0]:.1f} before / {load[1]:.1f} after" if load else "")
                 + f"; {s['dataset']}, batch {s['batch_size']}, {n} steps per epoch; each cell: "
                 f"{s['steps']} timed steps per round, s/epoch = median s/step x {n}. "
                 f"Command: `{s['command']}`.")
    return "\n".join(lines) + "\n"


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
    sp = out / SPEED_JSON
    if sp.exists() and "rows" in json.loads(sp.read_text()):
        lines.append("\nTraining speed, ours vs a plain loop with the same networks (interleaved):\n")
        lines.append(speed_table(json.loads(sp.read_text())))
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
    p.add_argument("--speed-steps", type=int, default=50, help="timed minibatches per round")
    p.add_argument("--speed-rounds", type=int, default=7)
    p.add_argument("--speed-dataset", default="binarized_mnist",
                   help="--speed data (falls back to digits if missing)")
    p.add_argument("--force", action="store_true", help="rerun runs that have metrics.json")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.speed:
        if args.threads == 1:  # as `python -m models.vae --threads 1` does, before JAX starts
            import os

            os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        import torch

        torch.set_num_threads(args.threads)
        result = speed(out, args.backends, args.posteriors, args.speed_steps, args.speed_rounds,
                       args.speed_dataset, args.data_dir, args.threads, {"arch": args.arch})
        text = speed_table(result)
        (out / "speed.md").write_text(text)
        print(text)
        return
    if not args.table_only:
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
