"""One result file from the CPU training runs of the ResNet VAE (IAF and diagonal at equal steps).

    python -m models.bench.resnet_vae_cpu_report \
        --runs results/resnet_vae/cpu_iaf results/resnet_vae/cpu_diag --command "..." --note "..."

Each run folder is a ``python -m models.resnet_vae --out DIR --figures`` folder (``metrics.json``,
``log.txt``, ``samples.png``). Writes ``docs/bench/resnet_vae_cpu.json`` (what ``docs/generate.py``
renders as the table ``cpu_resnet_vae`` and the values ``cpu/RUN/FIELD``), copies each run's log
and metrics (not its weights) to ``models/resnet_vae/runs/cpu/<run>/`` beside ``RESULTS.md``, draws
both learning curves into ``docs/figures/resnet_vae_cpu_curve.png`` and copies the first run's
prior samples to ``docs/figures/resnet_vae_cpu_samples.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
from pathlib import Path

from models.bench.device_report import KEEP, figure
from models.bench.machine import cpu_name

ROOT = Path(__file__).resolve().parents[2]


def cpu_machine() -> dict:
    """CPU model and core count of this machine (the runs' machine when run where they ran)."""
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "system": f"{platform.system()} {platform.machine()}"}


def collect(runs: list[Path], command: str, note: str) -> dict:
    out = {}
    for run in runs:
        m = json.loads((run / "metrics.json").read_text())
        name = run.name.removeprefix("cpu_")
        out[name] = {k: m[k] for k in KEEP} | {
            "loss": m["history"]["loss"], "step": m["history"]["step"],
            "resumed_at": m["history"].get("resumed_at", []), "backend": m["backend"]}
    return {"machine": cpu_machine(), "runs": out, "command": command, "note": note}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", nargs="+", type=Path, required=True)
    p.add_argument("--command", required=True, help="the command that made the runs (shown on the page)")
    p.add_argument("--note", default="", help="machine load and anything else the table should say")
    p.add_argument("--out", type=Path, default=ROOT / "docs/bench/resnet_vae_cpu.json")
    p.add_argument("--figure", type=Path, default=ROOT / "docs/figures/resnet_vae_cpu_curve.png")
    p.add_argument("--samples", type=Path, default=ROOT / "docs/figures/resnet_vae_cpu_samples.png")
    p.add_argument("--copy-to", type=Path, default=ROOT / "models/resnet_vae/runs/cpu")
    args = p.parse_args(argv)
    data = collect(args.runs, args.command, args.note)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    figure(data, args.figure, title="ResNet VAE on dynamically binarized MNIST, 2-core CPU (NumPyro)",
           ylim=(95, 140))
    shutil.copyfile(args.runs[0] / "samples.png", args.samples)
    for run in args.runs:
        dest = args.copy_to / run.name.removeprefix("cpu_")
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("log.txt", "metrics.json"):
            shutil.copyfile(run / name, dest / name)
    print(f"wrote {args.out}, {args.figure}, {args.samples} and {args.copy_to}/*/")


if __name__ == "__main__":
    main()
