"""One result file from a lent-GPU session (``models/bench/device_session.sh``), and its figure.

    python -m models.bench.device_report --session DIR [--step FILE] [--smoke FILE] \
        --out docs/bench/gpu.json --figure docs/figures/resnet_vae_gpu_curve.png

``DIR`` is the unpacked ``device.tgz`` of the session (``machine.txt``, ``<run>/metrics.json``,
``<run>.log``, ``smoke/smoke.json``); ``--step`` a ``resnet_vae_step.json`` and ``--smoke`` a
``smoke.json`` measured on the same machine in a later call (they replace the session's own).
Writes the JSON that ``docs/generate.py`` renders (tables ``gpu_smoke``, ``gpu_resnet_vae``,
``gpu_resnet_vae_step``) and the learning curves of the training runs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

RUNS = ("paper_iaf", "mnist_iaf", "mnist_diag")
KEEP = ("test_elbo", "test_elbo_se", "test_log_likelihood", "test_log_likelihood_se", "test_images",
        "is_samples", "params", "epochs", "steps", "train_seconds", "train_wall_seconds",
        "compile_seconds", "eval_seconds", "config")


def machine(session: Path) -> dict:
    """GPU name, memory, driver and the versions line of ``machine.txt``; first and last date."""
    lines = (session / "machine.txt").read_text().splitlines()
    gpu = next(i for i, line in enumerate(lines) if line.startswith("name,"))
    name, memory, driver = (s.strip() for s in lines[gpu + 1].split(","))
    jax, numpyro, torch = lines[gpu + 2].split()[:3]
    return {"gpu": name, "memory_mib": int(memory.split()[0]), "driver": driver, "started": lines[0],
            "ended": lines[-1], "versions": {"jax": jax, "numpyro": numpyro, "torch": torch}}


def collect(session: Path, step: Path | None, smoke: Path | None) -> dict:
    runs = {}
    for name in RUNS:
        m = json.loads((session / name / "metrics.json").read_text())
        curve = {"loss": m["history"]["loss"], "step": m["history"]["step"]}
        runs[name] = {k: m[k] for k in KEEP} | curve
    smoke_rows = json.loads((smoke or session / "smoke" / "smoke.json").read_text())
    out = {"machine": machine(session), "runs": runs, "smoke": smoke_rows,
           "command": "MINUTES=4.5 DATA_DIR=<folder with mnist.npz> bash models/bench/device_session.sh",
           "note": "three training runs and the smoke test shared the one GPU at the same time"}
    if step is not None:
        s = json.loads(step.read_text())
        keep = ("config", "steps", "rounds", "when", "command", "versions")
        out["resnet_vae_step"] = {k: s[k] for k in keep}
        out["resnet_vae_step"]["rows"] = s["rows"]
    return out


def figure(data: dict, path: Path, title: str | None = None, ylim: tuple[float, float] = (90, 140)) -> None:
    """Training loss of every run against steps (dotted: where a run was resumed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for name, r in data["runs"].items():
        c = r["config"]
        label = (f"{name}: {'IAF' if c['flows'] else 'diagonal'}, hidden {c['hidden']}, zdim {c['zdim']} "
                 f"(test log p(x) {r['test_log_likelihood']:.2f})")
        (line,) = ax.plot(r["step"], r["loss"], label=label)
        for step in r.get("resumed_at", []):
            ax.axvline(step, color=line.get_color(), ls=":", lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("training loss (free bits), nats/image")
    ax.set_ylim(*ylim)
    ax.set_title(title or f"ResNet VAE on dynamically binarized MNIST, {data['machine']['gpu']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--session", required=True, type=Path)
    p.add_argument("--step", type=Path, default=None)
    p.add_argument("--smoke", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path("docs/bench/gpu.json"))
    p.add_argument("--figure", type=Path, default=Path("docs/figures/resnet_vae_gpu_curve.png"))
    args = p.parse_args(argv)
    data = collect(args.session, args.step, args.smoke)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    figure(data, args.figure)
    print(f"wrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
