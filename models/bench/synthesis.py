"""Synthesis speed: the ResNet VAE's one top-down pass vs a naively sampled PixelCNN, one run.

    python -m models.bench.synthesis --out results/synthesis --pixelcnn results/pixelcnn

Both models at the MNIST size (28x28, one channel), parameter counts asserted within
``--tolerance`` (the PixelCNN's width is matched to the VAE's count unless a checkpoint fixes
it); both samplers jitted, compiled ahead of time (compile seconds reported apart) and warmed
up; for each batch size the two are timed in turns, ``--repeats`` times, and images/second is
``batch / median(seconds per call)``. Both return binary images: the VAE's Bernoulli means
are thresholded against one uniform draw per pixel.

The PixelCNN's loop runs one identical full forward pass per pixel, so when all 784 steps would
take longer than ``--max-seconds`` per call, the first ``K`` steps are timed and scaled by
``784 / K`` (the table says which). Sampling cost does not depend on the weights' values: the
VAE uses its initial weights; the PixelCNN the checkpoint's (its test nats are that model's).
Writes ``<out>/synthesis.md`` and ``<out>/synthesis.json`` and copies the Markdown to
``docs/synthesis.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from models.bench.machine import cpu_name

__all__ = ["vae_param_count", "pixelcnn_for", "time_call", "run", "render", "main"]

DOCS = Path(__file__).resolve().parents[1] / "docs" / "synthesis.md"


def vae_param_count(preset: str, seed: int = 0) -> int:
    """Parameters of the ResNet VAE (inference and generative networks) of ``preset``."""
    from models.resnet_vae import ResNetVAEConfig, init_params, param_count

    return param_count(init_params(ResNetVAEConfig.preset(preset), seed))


def pixelcnn_for(target: int, checkpoint: str | Path | None, channels: int | None, blocks: int | None,
                 seed: int = 0):
    """``(params, cfg, metrics | None)``: the checkpoint's, else a fresh net of about ``target`` params."""
    from models.pixelcnn import PRESETS, channels_for_params, init_params, load_checkpoint

    if checkpoint is not None:
        params, cfg, metrics = load_checkpoint(checkpoint)
        return params, cfg, metrics
    cfg = PRESETS["mnist"] if blocks is None else replace(PRESETS["mnist"], blocks=blocks)
    cfg = replace(cfg, channels=channels or channels_for_params(target, cfg))
    return init_params(cfg, seed), cfg, None


def time_call(fn, *args, min_seconds: float = 0.5) -> float:
    """Seconds per call of ``fn(*args)`` (results blocked on), averaged over >= ``min_seconds``."""
    n, t0 = 0, time.perf_counter()
    while True:
        jax.block_until_ready(fn(*args))
        n += 1
        t = time.perf_counter() - t0
        if t >= min_seconds:
            return t / n


def _compile(fn, *args) -> tuple:
    t0 = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - t0


def _flops(fn, *args) -> float | None:
    """XLA's estimate of the floating-point operations of one call of ``fn(*args)``."""
    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return None if not cost or "flops" not in cost else float(cost["flops"])


def _vae_sampler(cfg, n: int):
    from models.resnet_vae import sample_images

    def sample(params, key):
        k1, k2 = jax.random.split(key)
        probs = sample_images(params, cfg, k1, n)
        return (jax.random.uniform(k2, probs.shape) < probs).astype(probs.dtype)

    return sample


def _pixelcnn_sampler(cfg, n: int, steps: int):
    from models.pixelcnn import sample_images

    return lambda params, key: sample_images(params, cfg, key, n, steps=steps)


def _pixelcnn_steps(params, cfg, n: int, max_seconds: float, fixed: int | None) -> tuple[int, float]:
    """Pixel steps to time at batch ``n`` (all ``P`` if they fit ``max_seconds``) and the probe's s/step."""
    from models.pixelcnn import logits

    f = jax.jit(lambda p, x: logits(p, cfg, x))
    x = jnp.zeros((n, cfg.pixels))
    jax.block_until_ready(f(params, x))
    per_step = time_call(f, params, x, min_seconds=0.3)
    if fixed is not None:
        return min(fixed, cfg.pixels), per_step
    return int(min(cfg.pixels, max(8, max_seconds // per_step))), per_step


def run(vae_preset: str = "mnist", pixelcnn: str | Path | None = None, channels: int | None = None,
        blocks: int | None = None, batch_sizes=(1, 64), repeats: int = 3, tolerance: float = 0.2,
        max_seconds: float = 30.0, pixel_steps: int | None = None, vae_metrics: str | Path | None = None,
        seed: int = 0, log=print) -> dict:
    """Time both samplers; returns the numbers :func:`render` writes."""
    from models.pixelcnn import param_count as pc_count
    from models.resnet_vae import ResNetVAEConfig, init_params, param_count

    load_start = os.getloadavg()
    vae_metrics_d = None
    if vae_metrics is not None:
        with open(vae_metrics) as f:
            vae_metrics_d = json.load(f)
    if vae_metrics_d and "config" in vae_metrics_d:  # time the network whose nats we report
        vcfg = ResNetVAEConfig(**vae_metrics_d["config"])
        vae_preset = f"{vae_preset}, sizes of {Path(vae_metrics).parent.name}"
    else:
        vcfg = ResNetVAEConfig.preset(vae_preset)
    if (vcfg.side, vcfg.channels) != (28, 1):
        raise ValueError(f"--vae-preset {vae_preset!r} is {vcfg.channels}x{vcfg.side}x{vcfg.side}; the "
                         "benchmark compares at the MNIST size (28x28, 1 channel): use mnist or paper_mnist")
    vparams = jax.tree.map(jnp.asarray, init_params(vcfg, seed))
    n_vae = param_count(vparams)
    pparams, pcfg, pmetrics = pixelcnn_for(n_vae, pixelcnn, channels, blocks, seed)
    pparams = jax.tree.map(jnp.asarray, pparams)
    n_pc = pc_count(pparams)
    log(f"ResNet VAE ({vae_preset}): {n_vae:,} parameters; PixelCNN {pcfg}: {n_pc:,} parameters "
        f"({n_pc / n_vae - 1:+.1%})")
    if pcfg.side != 28:
        raise ValueError(f"the PixelCNN checkpoint is for {pcfg.side}x{pcfg.side} images; train one on mnist")
    if abs(n_pc / n_vae - 1) > tolerance:
        raise ValueError(
            f"parameter counts differ by {n_pc / n_vae - 1:+.1%} (> {tolerance:.0%}): PixelCNN {n_pc:,} vs "
            f"ResNet VAE {n_vae:,}; retrain with `python -m models.pixelcnn --match-vae {vae_preset}` "
            "or drop --pixelcnn to use a matched untrained net")
    key = jax.random.key(seed)
    from models.pixelcnn import logits

    vae_flops = _flops(_vae_sampler(vcfg, 1), vparams, key)
    step_flops = _flops(lambda p, x: logits(p, pcfg, x), pparams, jnp.zeros((1, pcfg.pixels)))
    pc_flops = None if step_flops is None else step_flops * pcfg.pixels
    rows = []
    for n in batch_sizes:
        steps, probe = _pixelcnn_steps(pparams, pcfg, n, max_seconds, pixel_steps)
        vae_fn, vae_compile = _compile(_vae_sampler(vcfg, n), vparams, key)
        pc_fn, pc_compile = _compile(_pixelcnn_sampler(pcfg, n, steps), pparams, key)
        out_v, out_p = vae_fn(vparams, key), pc_fn(pparams, key)  # warm-up
        for name, out in (("VAE", out_v), ("PixelCNN", out_p)):
            vals = np.unique(np.asarray(out))
            assert out.shape == (n, 1, 28, 28) and set(vals) <= {0.0, 1.0}, (name, out.shape, vals)
        tv, tp = [], []
        for r in range(repeats):
            tv.append(time_call(vae_fn, vparams, jax.random.fold_in(key, r), min_seconds=1.0))
            tp.append(time_call(pc_fn, pparams, jax.random.fold_in(key, r), min_seconds=0.0))
        scale = pcfg.pixels / steps
        v_ips, p_ips = n / statistics.median(tv), n / (statistics.median(tp) * scale)
        rows.append(dict(batch=n, vae_images_per_s=v_ips, pixelcnn_images_per_s=p_ips, ratio=v_ips / p_ips,
                         vae_compile_s=vae_compile, pixelcnn_compile_s=pc_compile, pixel_steps=steps,
                         vae_seconds=tv, pixelcnn_seconds=tp, pixelcnn_forward_probe_s=probe))
        log(f"batch {n}: VAE {v_ips:,.1f} images/s, PixelCNN {p_ips:.4g} images/s "
            f"({steps} of {pcfg.pixels} pixel steps timed), {v_ips / p_ips:,.0f}x faster; "
            f"compile {vae_compile:.1f} s / {pc_compile:.1f} s")
    check = _prefix_check(pparams, pcfg, rows, repeats, key, log)
    vae_nats = vae_note = None
    if vae_metrics_d is not None:
        m = vae_metrics_d
        vae_nats = m.get("test_nats", -m["test_log_likelihood"] if "test_log_likelihood" in m else None)
        vae_note = {k: m[k] for k in ("test_images", "is_samples", "test_elbo", "test_log_likelihood_se")
                    if k in m}
    return dict(
        vae=dict(preset=vae_preset, config=vcfg.to_dict(), params=n_vae, test_nats=vae_nats, flops=vae_flops,
                 metrics=None if vae_metrics is None else str(vae_metrics), metrics_summary=vae_note),
        pixelcnn=dict(config=pcfg.to_dict(), params=n_pc, flops=pc_flops,
                      checkpoint=None if pixelcnn is None else str(pixelcnn),
                      test_nats=None if pmetrics is None else pmetrics["test_nats"],
                      test_nats_se=None if pmetrics is None else pmetrics["test_nats_se"],
                      test_images=None if pmetrics is None else pmetrics["test_images"],
                      train_steps=None if pmetrics is None else pmetrics["steps"],
                      marginal_nats=None if pmetrics is None else pmetrics.get("marginal_nats")),
        rows=rows, repeats=repeats, max_seconds=max_seconds, prefix_check=check,
        machine=dict(cpu=cpu_name(), cores=os.cpu_count(), jax=jax.__version__,
                     device=str(jax.devices()[0].device_kind), platform=jax.default_backend(),
                     load_start=load_start, load_end=os.getloadavg()),
    )


def _prefix_check(params, cfg, rows, repeats, key, log) -> dict | None:
    """At the smallest batch timed in full: the first ``P // 8`` steps scaled by 8 vs all ``P`` steps."""
    full = [r for r in rows if r["pixel_steps"] == cfg.pixels]
    if not full:
        return None
    r = min(full, key=lambda r: r["batch"])
    k = cfg.pixels // 8
    fn, _ = _compile(_pixelcnn_sampler(cfg, r["batch"], k), params, key)
    jax.block_until_ready(fn(params, key))
    t = [time_call(fn, params, jax.random.fold_in(key, i), min_seconds=0.0) for i in range(repeats)]
    scaled, measured = statistics.median(t) * cfg.pixels / k, statistics.median(r["pixelcnn_seconds"])
    log(f"prefix check at batch {r['batch']}: {k} steps x{cfg.pixels / k:.0f} = {scaled:.2f} s vs "
        f"{measured:.2f} s for all {cfg.pixels}")
    return dict(batch=r["batch"], steps=k, scaled_s=scaled, full_s=measured, seconds=t)


def _nats(d: dict) -> str:
    if d.get("test_nats") is None:
        return "not measured here"
    se = f" ± {d['test_nats_se']:.2f}" if d.get("test_nats_se") else ""
    return f"{d['test_nats']:.2f}{se}"


def _gflop(d: dict) -> str:
    return "n/a" if d.get("flops") is None else f"{d['flops'] / 1e9:.3g}"


def render(res: dict, command: str) -> str:
    """The Markdown table and its notes."""
    v, p, m = res["vae"], res["pixelcnn"], res["machine"]
    pc, vc = p["config"], v["config"]
    lines = [
        "# Synthesis speed: ResNet VAE vs naively sampled PixelCNN",
        "",
        f"Command: `{command}`. One run, one machine: {m['cpu']}, {m['cores']} cores, JAX {m['jax']} on "
        f"{m['platform']} ({m['device']}); load average {m['load_start'][0]:.1f} at the start, "
        f"{m['load_end'][0]:.1f} at the end (other jobs shared the cores; both models timed in turns).",
        "",
        "| model | parameters | GFLOP per image (XLA estimate) | test NLL (nats, MNIST) |",
        "| --- | ---: | ---: | --- |",
        f"| ResNet VAE (`{v['preset']}`: hidden {vc['hidden']}, zdim {vc['zdim']}, {vc['stages']} stages of "
        f"depth {vc['depth']}, IAF {vc['flows']}) | {v['params']:,} | {_gflop(v)} | {_nats(v)} |",
        f"| PixelCNN ({pc['channels']} channels, {pc['blocks']} residual blocks, {pc['first_kernel']}x"
        f"{pc['first_kernel']} mask-A input) | {p['params']:,} ({p['params'] / v['params'] - 1:+.1%}) | "
        f"{_gflop(p)} | {_nats(p)} |",
        "",
        "| batch | ResNet VAE images/s | PixelCNN images/s | PixelCNN s/image | VAE vs PixelCNN | "
        "compile s (VAE / PixelCNN) | PixelCNN pixel steps timed |",
        "| ---: | ---: | ---: | ---: | --- | --- | --- |",
    ]
    for r in res["rows"]:
        k, P = r["pixel_steps"], pc["side"] ** 2
        timed = f"{P} of {P}" if k == P else f"{k} of {P}, scaled x{P / k:.1f}"
        lines.append(
            f"| {r['batch']} | {r['vae_images_per_s']:,.1f} | {r['pixelcnn_images_per_s']:.4g} | "
            f"{1 / r['pixelcnn_images_per_s']:.3g} | **{r['ratio']:,.0f}x faster** | "
            f"{r['vae_compile_s']:.1f} / {r['pixelcnn_compile_s']:.1f} | {timed} |")
    nats_note = ""
    if p.get("test_nats") is not None:
        nats_note = (f" The PixelCNN's test NLL is on {p['test_images']:,} dynamically binarized MNIST test "
                     f"images after {p['train_steps']} Adam steps (`python -m models.pixelcnn`; independent "
                     f"pixels with the training means give {p['marginal_nats']:.1f} nats).")
    if v.get("test_nats") is not None:
        ms = v.get("metrics_summary") or {}
        nats_note += (f" The ResNet VAE's test NLL is minus its importance-sampled log p(x) "
                      f"({ms.get('is_samples', '?')} samples) on {ms.get('test_images', '?')} test images, "
                      f"from `{v['metrics']}` (`python -m models.resnet_vae`).")
    lines += [
        "",
        f"Images/s is the batch over the median of {res['repeats']} timed calls (after compilation and "
        "one warm-up call); both samplers are jitted and return binary images (the VAE's Bernoulli means "
        "thresholded against one uniform per pixel). The PixelCNN runs one full forward pass per pixel "
        "inside `jax.lax.fori_loop` (the paper's naive sampling); every step costs the same, so where all "
        f"784 steps would take over {res['max_seconds']:.0f} s a call, the first K steps are timed and "
        "scaled by 784/K. Weights: sampling cost does not depend on their values; the VAE is timed with "
        "its initial weights, the PixelCNN with " + ("its trained checkpoint's." if p["checkpoint"] else
                                                     "its initial weights.") + nats_note
        + " GFLOP per image: XLA's cost analysis of the VAE sampler at batch 1, and of one PixelCNN "
        "forward pass at batch 1 times 784.",
        "",
        *([f"Check of the scaling: at batch {c['batch']}, the first {c['steps']} pixel steps scaled by "
           f"{784 // c['steps']} give {c['scaled_s']:.2f} s per call vs {c['full_s']:.2f} s for all 784 "
           "(medians)."] if (c := res.get("prefix_check")) else []),
        "",
        "The paper (Kingma et al. 2016, one Titan X GPU): about 0.05 s per image for its ResNet VAE vs "
        "52 s per image for a naively sampled PixelCNN, ~1000x.",
        "",
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m models.bench.synthesis", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default="results/synthesis")
    p.add_argument("--vae-preset", default="mnist", help="models.resnet_vae preset (28x28x1)")
    p.add_argument("--vae-metrics", default=None, help="metrics.json of a ResNet VAE run (its test nats)")
    p.add_argument("--pixelcnn", default=None, metavar="DIR",
                   help="PixelCNN checkpoint folder (python -m models.pixelcnn --out DIR); default: a fresh "
                        "net with the VAE's parameter count")
    p.add_argument("--pixelcnn-channels", type=int, default=None, help="width of a fresh PixelCNN")
    p.add_argument("--pixelcnn-blocks", type=int, default=None, help="residual blocks of a fresh PixelCNN")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--tolerance", type=float, default=0.2, help="allowed relative parameter-count gap")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="longest PixelCNN call: beyond it a prefix of the pixel loop is timed and scaled")
    p.add_argument("--pixel-steps", type=int, default=None, help="time exactly this many pixel steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-docs", action="store_true", help=f"do not copy the table to {DOCS}")
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    command = "python -m models.bench.synthesis " + shlex.join(sys.argv[1:] if argv is None else argv)
    res = run(args.vae_preset, args.pixelcnn, args.pixelcnn_channels, args.pixelcnn_blocks,
              tuple(args.batch_sizes), args.repeats, args.tolerance, args.max_seconds, args.pixel_steps,
              args.vae_metrics, args.seed, log=lambda s: print(s, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "synthesis.md").write_text(render(res, command))
    with open(out / "synthesis.json", "w") as f:
        json.dump({"command": command, **res}, f, indent=2)
        f.write("\n")
    if not args.no_docs:
        DOCS.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out / "synthesis.md", DOCS)
    print((out / "synthesis.md").read_text())
    return res


if __name__ == "__main__":
    main()
