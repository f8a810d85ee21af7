"""``python -m models.pixelcnn``: train the PixelCNN by maximum likelihood; report test nats.

Example (the benchmark's checkpoint; width matched to the ResNet VAE's parameter count):
    python -m models.pixelcnn --dataset mnist --match-vae mnist --minutes 18 --out results/pixelcnn
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import replace

import numpy as np

from models.vae.data import DATASETS, load

from .net import PRESETS, channels_for_params, init_params, param_count
from .train import evaluate, fit, marginal_nats, save_checkpoint


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m models.pixelcnn", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=DATASETS, default="mnist")
    p.add_argument("--data-dir", default=None, help="folder with mnist.npz (default ../shared/data)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="network shape (default: mnist for 28x28 data, tiny for digits)")
    p.add_argument("--channels", type=int, default=None, help="feature maps (overrides the preset)")
    p.add_argument("--blocks", type=int, default=None, help="residual blocks (overrides the preset)")
    p.add_argument("--match-params", type=int, default=None,
                   help="choose --channels so the parameter count is nearest this number")
    p.add_argument("--match-vae", default=None, metavar="PRESET",
                   help="like --match-params, with the count of models.resnet_vae's PRESET config")
    p.add_argument("--minutes", type=float, default=None, help="training wall-time budget")
    p.add_argument("--steps", type=int, default=None, help="training step budget")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-images", type=int, default=1000,
                   help="test NLL on the first N test images (0: all)")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--out", default="results/pixelcnn")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    if args.minutes is None and args.steps is None:
        parser().error("give a training budget: --minutes M and/or --steps N")
    data = load(args.dataset, args.data_dir)
    cfg = PRESETS[args.preset or ("mnist" if data.side == 28 else "tiny")]
    cfg = replace(cfg, side=data.side, **{k: v for k, v in (("channels", args.channels),
                                                                ("blocks", args.blocks)) if v})
    target = args.match_params
    if args.match_vae:
        from models.resnet_vae import ResNetVAEConfig
        from models.resnet_vae import init_params as vae_init_params
        from models.resnet_vae import param_count as vae_param_count

        target = vae_param_count(vae_init_params(ResNetVAEConfig.preset(args.match_vae), 0))
    if target:
        cfg = replace(cfg, channels=channels_for_params(target, cfg))
    n = param_count(init_params(cfg))
    print(f"{data.describe()}\nPixelCNN {cfg}: {n:,} parameters"
          + (f", target {target:,}" if target else ""), flush=True)
    params, history = fit(cfg, data, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          seconds=None if args.minutes is None else 60 * args.minutes,
                          seed=args.seed, log_every=args.log_every)
    x = data.test if not args.eval_images else data.test[: args.eval_images]
    t0 = time.perf_counter()
    metrics = evaluate(params, cfg, x)
    metrics.update(eval_seconds=time.perf_counter() - t0, marginal_nats=marginal_nats(data, x),
                   dataset=data.name, params=n, steps=len(history["loss"]), images_seen=history["images"],
                   train_seconds=history["train_seconds"], compile_seconds=history["compile_seconds"],
                   final_train_loss=float(np.mean(history["loss"][-50:])), batch_size=args.batch_size,
                   lr=args.lr, seed=args.seed, loss_history=history["loss"],
                   command="python -m models.pixelcnn " + shlex.join(sys.argv[1:] if argv is None else argv))
    save_checkpoint(args.out, params, cfg, metrics)
    print(f"test NLL {metrics['test_nats']:.2f} +- {metrics['test_nats_se']:.2f} nats/image on "
          f"{metrics['test_images']} test images (independent pixels: {metrics['marginal_nats']:.2f}); "
          f"{metrics['steps']} steps, {metrics['train_seconds']:.0f} s; saved to {args.out}", flush=True)
    return metrics


if __name__ == "__main__":
    main()
