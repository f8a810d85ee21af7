"""The ResNet VAE's training step, ours against a plain loop with the same network, both backends.

    python -m models.bench.resnet_vae_step --out results/resnet_vae_step     # then
    python docs/generate.py --resnet-vae-step results/resnet_vae_step        # into docs/bench/

Sizes: the ``mnist`` preset at ``models/resnet_vae/RESULTS.md``'s run (hidden 24, zdim 8, IAF
width 32, batch 32, free bits 0.1), dynamically binarized MNIST (``../shared/data``), weights
data-initialised once and given to all four: ours (``NumPyroResNetVAE``, ``PyroResNetVAE``,
``train_epoch`` as ``python -m models.resnet_vae`` runs it) and the plain baselines of
:mod:`models.resnet_vae.plain` (JAX + optax, a compiled step per minibatch; PyTorch + torch.optim).
Timing: :func:`models.vae.benchmark.speed_rows` (each round runs ``--steps`` minibatches of every
one in turn, order rotating; wall and this process's CPU time per step); the ratio ours / plain
is taken per round and its median reported.

FLOPs per step: PyTorch's ``FlopCounterMode`` over one step (convolutions and matrix products,
forward and backward) and XLA's cost analysis of the compiled step (every op). The yardstick
"convs only": every convolution of a step (the same shapes, strides and padding, recorded from
the network), forward and both backward products, alone in one compiled program (JAX) or one
autograd call (PyTorch), timed interleaved with the steps (one call per minibatch); its GFLOP/s
is what this machine does on exactly these convolutions, the step's conv GFLOP/s is how close the step comes.
Writes ``<out>/resnet_vae_step.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

__all__ = ["config", "conv_calls", "run", "main"]

JSON = "resnet_vae_step.json"


def config(args):
    from models.resnet_vae import ResNetVAEConfig

    return ResNetVAEConfig.preset(args.preset, hidden=args.hidden, zdim=args.zdim, iaf_hidden=args.iaf_hidden,
                                  batch_size=args.batch_size, free_bits=args.free_bits)


def conv_calls(cfg, params: dict) -> list[tuple]:
    """``[(kind, x_shape, w_shape, stride, padding, output_padding)]`` of one forward pass of the
    objective (:func:`models.resnet_vae.plain.plain_terms`, PyTorch), in call order."""
    import torch

    from models.resnet_vae.plain import PlainTorchResNetVAE, noise_shapes, plain_terms

    plain = PlainTorchResNetVAE(cfg, params)
    F, calls = plain.net.F, []

    def conv(x, w, b, stride, padding):
        calls.append(("conv", tuple(x.shape), tuple(w.shape), stride, padding, 0))
        return F0.conv(x, w, b, stride, padding)

    def conv_t(x, w, b, stride, padding, op):
        calls.append(("conv_t", tuple(x.shape), tuple(w.shape), stride, padding, op))
        return F0.conv_t(x, w, b, stride, padding, op)

    F0 = F
    plain.net.F = SimpleNamespace(**{**vars(F), "conv": conv, "conv_t": conv_t})
    B = cfg.batch_size
    with torch.no_grad():
        eps = [torch.randn(s) for s in noise_shapes(cfg, B)]
        plain_terms(plain.net, plain.p, torch.rand(B, cfg.pixels), eps)
    return calls


class TorchConvs:
    """The convolutions of :func:`conv_calls` alone: ``train_epoch(batches)`` runs them forward and
    backward (input and weight gradients) once per minibatch, like a step."""

    backend = "convs-torch"

    def __init__(self, calls):
        import torch
        import torch.nn.functional as tf

        g = torch.Generator().manual_seed(0)
        self.args = []
        for kind, xs, ws, stride, pad, op in calls:
            x = torch.randn(xs, generator=g).requires_grad_()
            w = torch.randn(ws, generator=g).requires_grad_()
            self.args.append((kind, x, w, stride, pad, op))
        self.conv, self.conv_t = tf.conv2d, tf.conv_transpose2d

    def once(self):
        total = 0.0
        for kind, x, w, stride, pad, op in self.args:
            if kind == "conv":
                y = self.conv(x, w, None, stride, pad)
            else:
                y = self.conv_t(x, w, None, stride, pad, op)
            total = total + y.square().sum()
        total.backward()
        return total

    def warmup(self, xb) -> float:
        return 0.0

    def train_epoch(self, batches, progress=None) -> float:
        for _ in range(len(batches)):
            loss = self.once().item()
        return loss


class JaxConvs:
    """As :class:`TorchConvs` in JAX: the jitted gradient of the convolutions' sum of squares
    (input and weight gradients) once per minibatch."""

    backend = "convs-jax"

    def __init__(self, calls):
        import jax

        from models.vae.ops import jax_ops

        F = jax_ops()
        keys = jax.random.split(jax.random.PRNGKey(0), 2 * len(calls))
        self.xs = [jax.random.normal(keys[2 * k], c[1]) for k, c in enumerate(calls)]
        self.ws = [jax.random.normal(keys[2 * k + 1], c[2]) for k, c in enumerate(calls)]

        def loss(xs, ws):
            total = 0.0
            for (kind, _, w_shape, stride, pad, op), x, w in zip(calls, xs, ws):
                b = jax.numpy.zeros(w_shape[1 if kind == "conv_t" else 0])
                y = F.conv(x, w, b, stride, pad) if kind == "conv" else F.conv_t(x, w, b, stride, pad, op)
                total = total + (y * y).sum()
            return total

        self.grad = jax.jit(jax.grad(loss, argnums=(0, 1)))

    def warmup(self, xb) -> float:
        jax_tree_block(self.grad(self.xs, self.ws))  # compiles (the jit's own cache)
        return 0.0

    def train_epoch(self, batches, progress=None) -> float:
        for _ in range(len(batches)):
            gx, gw = self.grad(self.xs, self.ws)
        return float(sum(g.sum() for g in gw) + sum(g.sum() for g in gx))


def jax_tree_block(tree) -> None:
    import jax

    jax.block_until_ready(tree)


def torch_flops(fn) -> dict:
    """``{"total", "conv"}``: FLOPs ``FlopCounterMode`` counts in ``fn()`` (forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    counts = counter.get_flop_counts()["Global"]
    conv = sum(v for k, v in counts.items() if "convolution" in str(k))
    return {"total": int(sum(counts.values())), "conv": int(conv)}


def xla_flops(compiled) -> float:
    ca = compiled.cost_analysis()
    ca = ca[0] if isinstance(ca, list) else ca
    return float(ca["flops"])


def run(args) -> dict:
    import jax
    import torch

    from models.resnet_vae import data_init, init_params, make_resnet_vae
    from models.resnet_vae.data import load
    from models.resnet_vae.plain import PLAIN
    from models.vae.benchmark import speed_rows
    from models.vae.train import epoch_batches

    cfg = config(args)
    data = load("mnist", args.data_dir)
    rng = np.random.default_rng(cfg.seed)
    params = data_init(cfg, init_params(cfg, cfg.seed), data.train[rng.permutation(len(data.train))[:256]],
                       cfg.seed)
    batches = epoch_batches(data, rng, cfg.batch_size)[: 2 * args.steps]
    vaes = {}
    for b in args.backends:
        vaes[f"ours-{b}"] = make_resnet_vae(b, cfg, params=params)
        vaes[f"plain-{b}"] = PLAIN[b](cfg, params)
    calls = conv_calls(cfg, params)
    if "pyro" in args.backends:
        vaes["convs-torch"] = TorchConvs(calls)
    if "numpyro" in args.backends:
        vaes["convs-jax"] = JaxConvs(calls)
    flops: dict = {}
    xb = batches[0]
    if "pyro" in args.backends:
        xt = torch.as_tensor(xb)
        ours = vaes["ours-pyro"]  # counted on Trace_ELBO: the graph its JitTrace_ELBO step traces
        flops["ours-pyro"] = torch_flops(
            lambda: ours.elbo.differentiable_loss(ours.model, ours.guide, xt).backward())
        ours.optim.zero_grad()
        flops["plain-pyro"] = torch_flops(lambda: vaes["plain-pyro"].step(xt))
        flops["convs-torch"] = torch_flops(vaes["convs-torch"].once)
    if "numpyro" in args.backends:
        t0 = time.perf_counter()
        ours, plain = vaes["ours-numpyro"], vaes["plain-numpyro"]
        ours.warmup(xb)  # compiles the step speed_rows runs
        flops["ours-numpyro"] = {"xla": xla_flops(ours._compiled.compiled)}
        plain.warmup(xb)
        flops["plain-numpyro"] = {"xla": xla_flops(plain._compiled)}
        convs = vaes["convs-jax"]
        flops["convs-jax"] = {"xla": xla_flops(convs.grad.lower(convs.xs, convs.ws).compile())}
        print(f"XLA cost analyses: {time.perf_counter() - t0:.0f} s", flush=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    times, cpu = speed_rows(vaes, batches, args.steps, args.rounds)
    rows = []
    conv_flops = flops.get("plain-pyro", {}).get("conv")
    for b in args.backends:
        ours, plain = times[f"ours-{b}"], times[f"plain-{b}"]
        ref = "convs-torch" if b == "pyro" else "convs-jax"
        ratios = [o / q for o, q in zip(ours, plain)]
        row = {"backend": b, "ours_s_per_step": statistics.median(ours),
               "plain_s_per_step": statistics.median(plain),
               "ratio": statistics.median(ratios), "ratios": ratios, "ours_all": ours, "plain_all": plain,
               "cpu_ratio": statistics.median(o / q for o, q in zip(cpu[f"ours-{b}"], cpu[f"plain-{b}"])),
               "ours_cpu_s_per_step": statistics.median(cpu[f"ours-{b}"]),
               "plain_cpu_s_per_step": statistics.median(cpu[f"plain-{b}"]),
               "convs_s_per_step": statistics.median(times[ref]), "convs_all": times[ref],
               "flops_ours": flops[f"ours-{b}"], "flops_plain": flops[f"plain-{b}"],
               "flops_convs": flops[ref]}
        rows.append(row)
    return {"rows": rows, "conv_flops_per_step": conv_flops, "steps": args.steps, "rounds": args.rounds,
            "config": cfg.to_dict(), "dataset": data.name, "conv_calls": [list(c) for c in calls],
            "machine": f"{os.cpu_count()}-core {platform.machine()} CPU, 1 thread per framework",
            "load_before": list(load_before), "load_after": list(os.getloadavg()),
            "timed_seconds": time.perf_counter() - t0,
            "versions": {"jax": jax.__version__, "torch": torch.__version__},
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": "python -m models.bench.resnet_vae_step " + " ".join(sys.argv[1:])}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m models.bench.resnet_vae_step",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", default="results/resnet_vae_step")
    p.add_argument("--backends", nargs="+", default=["numpyro", "pyro"], choices=["numpyro", "pyro"])
    p.add_argument("--preset", default="mnist")
    p.add_argument("--hidden", type=int, default=24)
    p.add_argument("--zdim", type=int, default=8)
    p.add_argument("--iaf-hidden", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--free-bits", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=10, help="timed minibatches per round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--data-dir", default=None, help="folder with mnist.npz (default ../shared/data)")
    args = p.parse_args(argv)
    os.environ["XLA_FLAGS"] = ("--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 "
                               + os.environ.get("XLA_FLAGS", ""))  # before JAX starts
    import torch

    torch.set_num_threads(1)
    result = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / JSON).write_text(json.dumps(result, indent=1) + "\n")
    for r in result["rows"]:
        print(f"{r['backend']}: ours {r['ours_s_per_step'] * 1e3:.1f} ms/step, plain "
              f"{r['plain_s_per_step'] * 1e3:.1f}, ratio {r['ratio']:.2f}x (CPU {r['cpu_ratio']:.2f}x), "
              f"convs only {r['convs_s_per_step'] * 1e3:.1f}")
    return result


if __name__ == "__main__":
    main()
