"""``python -m models.vae``: train and evaluate the VAE (IAF or diagonal posterior), Pyro or NumPyro.

Example:
    python -m models.vae --backend numpyro --posterior iaf --dataset mnist --epochs 100 --out runs/x
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from . import BACKENDS
from .config import AUTO_AFFINES, GUIDES, OPTIMIZERS, POSTERIORS, VAEConfig
from .data import DATASETS, load
from .nets import ARCHS


def parser() -> argparse.ArgumentParser:
    d = VAEConfig()
    p = argparse.ArgumentParser(prog="python -m models.vae", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS, default="numpyro")
    p.add_argument("--posterior", choices=POSTERIORS, default=d.posterior)
    p.add_argument("--guide", choices=GUIDES, default=d.guide,
                   help="hand: this package's guide; auto: AutoAmortizedIAF from pyro_iaf/numpyro_iaf")
    p.add_argument("--auto-affine", choices=AUTO_AFFINES, default=d.auto_affine,
                   help="--guide auto: encoder's mu, sigma before the IAF (the paper's order) or after")
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: mnist if <data-dir>/mnist.npz exists, else digits")
    p.add_argument("--data-dir", default=None, help="folder with mnist.npz / binarized_mnist.npz "
                   "(default: ../shared/data from the project root)")
    p.add_argument("--arch", choices=ARCHS, default=d.arch)
    p.add_argument("--flows", type=int, default=d.flows, help="IAF steps")
    p.add_argument("--width", type=int, default=d.width, help="MADE hidden units (2 layers)")
    p.add_argument("--hidden", type=int, default=d.hidden, help="mlp encoder/decoder width")
    p.add_argument("--latent-dim", type=int, default=d.latent_dim)
    p.add_argument("--context-dim", type=int, default=d.context_dim)
    p.add_argument("--free-bits", type=float, default=d.free_bits, help="lambda, nats per latent")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=d.optimizer)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--epochs", type=int, default=10, help="total epochs (also with --resume)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--is-samples", type=int, default=128, help="importance samples for log p(x)")
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--out", default=None, help="output folder (default runs/<backend>-<posterior>-...)")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in <out> "
                   "(checkpoint.npz + checkpoint.json)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch / XLA (default: the framework's); 1 is much "
                   "faster on a CPU shared with other jobs")
    p.add_argument("--no-progress", action="store_true")
    return p


def check_auto_guide(backend: str) -> None:
    """``--guide auto`` needs ``AutoAmortizedIAF``; say plainly what is missing."""
    pkg = "pyro_iaf" if backend == "pyro" else "numpyro_iaf"
    try:
        available = hasattr(__import__(pkg, fromlist=["AutoAmortizedIAF"]), "AutoAmortizedIAF")
    except ImportError:
        available = False
    if not available:
        raise NotImplementedError(
            f"--guide auto needs {pkg}.AutoAmortizedIAF, which is not available yet; "
            "use --guide hand (the default) for this package's IAF guide"
        )


def set_threads(backend: str, n: int) -> None:
    if backend == "pyro":
        import torch

        torch.set_num_threads(n)
    elif "jax" in sys.modules:
        print("warning: --threads ignored, JAX is already initialised", file=sys.stderr)
    else:
        flags = os.environ.get("XLA_FLAGS", "")
        if n == 1:
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        else:
            flags += f" intra_op_parallelism_threads={n}"
        os.environ["XLA_FLAGS"] = flags.strip()


def _git_version() -> str | None:
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True,
                             text=True, cwd=Path(__file__).parent, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.threads is not None:
        set_threads(args.backend, args.threads)
    if args.guide == "auto":
        check_auto_guide(args.backend)
        if args.posterior != "iaf":
            raise ValueError("--guide auto is an IAF posterior; drop --posterior diagonal")
    cfg = VAEConfig(arch=args.arch, posterior=args.posterior, latent_dim=args.latent_dim,
                    context_dim=args.context_dim, hidden=args.hidden, flows=args.flows,
                    width=args.width, free_bits=args.free_bits, optimizer=args.optimizer,
                    lr=args.lr, batch_size=args.batch_size, seed=args.seed, guide=args.guide,
                    auto_affine=args.auto_affine)
    data = load(args.dataset, args.data_dir)
    print(f"data: {data.describe()}", flush=True)
    out = Path(args.out or f"runs/{args.backend}-{args.posterior}-{args.arch}-{data.name}-s{args.seed}")
    out.mkdir(parents=True, exist_ok=True)

    from .train import evaluate, fit, save_figures, write_metrics

    vae, history = fit(args.backend, cfg, data, args.epochs, out, args.resume,
                       progress=not args.no_progress, verbose=True)
    x_test = data.test if args.eval_limit is None else data.test[: args.eval_limit]
    t0 = time.perf_counter()
    metrics = evaluate(vae, x_test, args.is_samples, progress=not args.no_progress)
    eval_seconds = time.perf_counter() - t0
    save_figures(vae, data.test, data.side, out, args.seed)
    times = history["epoch_seconds"]
    metrics.update(
        dataset=data.name, data_source=data.source, backend=args.backend, posterior=args.posterior,
        arch=args.arch, guide=args.guide, seed=args.seed, epochs=len(times), is_samples=args.is_samples,
        test_images=len(x_test),
        seconds_per_epoch=statistics.median(times) if times else None,
        compile_seconds=history.get("compile_seconds"),
        epoch_seconds=times, train_loss=history["loss"], eval_seconds=eval_seconds,
        config=cfg.to_dict(), code_version=_git_version(),
    )
    write_metrics(out / "metrics.json", metrics)
    summary = {k: metrics[k] for k in ("test_elbo", "test_log_likelihood", "seconds_per_epoch")}
    print(json.dumps(summary), f"-> {out}/metrics.json", flush=True)
    return metrics


if __name__ == "__main__":
    try:
        main()
    except (NotImplementedError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
