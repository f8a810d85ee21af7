"""``python -m models.resnet_vae``: train and evaluate the ResNet VAE (IAF posterior), Pyro or NumPyro.

Example:
    python -m models.resnet_vae --backend numpyro --dataset mnist --preset mnist --epochs 5 \
        --out results/resnet_vae/x --figures
    # killed? the same command with --resume continues exactly where the checkpoint left off
    python -m models.resnet_vae --backend numpyro --dataset mnist --preset mnist --epochs 5 \
        --out results/resnet_vae/x --figures --resume

``--out DIR`` keeps a checkpoint (``DIR/checkpoint.npz`` + ``checkpoint.json``, see
:mod:`models.resnet_vae.train`) every ``--checkpoint-every`` steps and at the end; ``--resume``
continues from it (``--resume auto``: if there is one, else a fresh start: one command for a job
that may be restarted). ``--epochs``, ``--max-steps`` and ``--minutes`` count the whole run.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from models.vae import checkpoint
from models.vae.__main__ import set_threads

from . import BACKENDS, PRESETS, ResNetVAEConfig, make_resnet_vae, param_count
from .data import DATASETS, channels_of, load
from .train import evaluate_images, train

FIELDS = ("depth", "stages", "zdim", "hidden", "flows", "iaf_hidden", "free_bits", "lr", "batch_size", "seed")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m models.resnet_vae", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--backend", choices=BACKENDS, default="numpyro")
    p.add_argument("--dataset", choices=DATASETS, default="digits")
    p.add_argument("--data-dir", default=None, help="folder with mnist.npz / binarized_mnist.npz")
    p.add_argument("--data-path", default=None,
                   help="cifar10: a .npz (x_train, x_test) or cifar-10-batches-py/")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="sizes to start from (default: tiny for digits, mnist for MNIST, cifar10 for colour)")
    for name in FIELDS:
        p.add_argument("--" + name.replace("_", "-"), type=type(getattr(ResNetVAEConfig(), name)),
                       default=None, help="overrides the preset")
    p.add_argument("--epochs", type=int, default=10, help="epochs in all (across resumes)")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps in all")
    p.add_argument("--minutes", type=float, default=None,
                   help="stop training after this many minutes of training in all (across resumes)")
    p.add_argument("--init-batch", type=int, default=256, help="images for the data-dependent init")
    p.add_argument("--is-samples", type=int, default=128)
    p.add_argument("--eval-limit", type=int, default=None, help="evaluate on the first N test images")
    p.add_argument("--log-every", type=int, default=100, help="steps between progress lines")
    p.add_argument("--out", default=None, help="output folder (metrics.json, the checkpoint, figures)")
    p.add_argument("--checkpoint-every", type=int, default=None,
                   help="steps between checkpoints in --out (default: at each progress line)")
    p.add_argument("--resume", nargs="?", const="yes", choices=("yes", "auto"), default=None,
                   help="continue from --out's checkpoint (refused if the flags differ or there is "
                   "none); 'auto': resume if there is one, else start afresh")
    p.add_argument("--figures", action="store_true",
                   help="also write learning_curve.png and samples.png (64 prior samples) to --out")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for PyTorch / XLA (default: the framework's); 1 is much faster "
                   "on a CPU shared with other jobs")
    return p


def config_for(args, data) -> ResNetVAEConfig:
    colour = channels_of(data) == 3
    preset = args.preset or ("cifar10" if colour else "tiny" if data.side == 8 else "mnist")
    cfg = PRESETS[preset]
    over = {k: getattr(args, k) for k in FIELDS if getattr(args, k) is not None}
    cfg = replace(cfg, side=data.side, channels=channels_of(data),
                  likelihood="logistic" if colour else "bernoulli", **over)
    return cfg


def main(argv=None) -> dict:
    args = parser().parse_args(argv)
    if args.out is None and (args.resume or args.figures):
        raise SystemExit("--resume and --figures need --out (the run's folder)")
    resume = bool(args.resume) and (args.resume == "yes" or checkpoint.exists(args.out))
    if args.out and not resume and checkpoint.exists(args.out):
        raise SystemExit(f"--out {args.out} holds a checkpoint already: add --resume to continue it, "
                         "or pass another --out")
    if args.threads is not None:
        set_threads(args.backend, args.threads)
    data = load(args.dataset, args.data_dir, args.data_path)
    cfg = config_for(args, data)
    print(data.describe(), flush=True)
    if resume:  # the weights come from the checkpoint
        vae = make_resnet_vae(args.backend, cfg)
    else:
        rng = np.random.default_rng(cfg.seed)
        init = data.train_epoch(rng)[rng.permutation(len(data.train))[: args.init_batch]]
        vae = make_resnet_vae(args.backend, cfg, init_batch=init)
    n_params = param_count(vae.export_weights())
    print(f"{args.backend}: {n_params} parameters, config {cfg.to_dict()}", flush=True)
    t0 = time.perf_counter()
    hist = train(vae, data, args.epochs, args.minutes, args.log_every, max_steps=args.max_steps,
                 out=args.out, checkpoint_every=args.checkpoint_every, resume=resume,
                 run={"dataset": args.dataset, "init_batch": args.init_batch})
    train_wall = time.perf_counter() - t0
    x = data.test if args.eval_limit is None else data.test[: args.eval_limit]
    t0 = time.perf_counter()
    metrics = evaluate_images(vae, x, args.is_samples)
    metrics.update(backend=args.backend, dataset=args.dataset, config=cfg.to_dict(), params=n_params,
                   epochs=hist["epochs"], steps=hist["step"][-1] if hist["step"] else 0,
                   train_seconds=hist["seconds"][-1] if hist["seconds"] else 0.0,
                   train_wall_seconds=train_wall, compile_seconds=hist["compile_seconds"],
                   resumed_at=hist["resumed_at"],
                   eval_seconds=time.perf_counter() - t0, history=hist)
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("history", "config")}, indent=1))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metrics.json", "w") as f:
            json.dump(metrics, f, indent=2)
            f.write("\n")
        if args.figures:
            from .figures import save_figures

            for path in save_figures(vae, hist, out):
                print(path, flush=True)
    return metrics


if __name__ == "__main__":
    main()
