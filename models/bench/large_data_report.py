"""The large-data benchmark's summaries, accuracy counts and table (``models.bench.large_data``).

``summarize`` reduces draws to per-site means and sds; ``accuracy`` counts the coordinates within
0.1 reference sd (means) and 10% (sds); ``table`` is the docs page's table, written from the
result JSON by the command and by ``docs/generate.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULT = ROOT / "docs" / "bench" / "large_data.json"
PAGE = ROOT / "docs" / "benchmarks" / "large_data.md"
GLOBALS = {"logistic": ("alpha", "beta"),
           "hier": ("intercept_loc", "intercept_scale", "noise_scale", "slope")}
LOCALS = {"logistic": (), "hier": ("intercepts",)}
NAMES = {"pyro": "Pyro", "numpyro": "NumPyro"}


def summarize(draws: dict, model: str) -> dict:
    """``{"mean": {site: list}, "sd": {site: list}}`` of the draws ``{site: [S, ...]}`` (globals,
    then the locals), flattened per site."""
    out: dict = {"mean": {}, "sd": {}}
    for name in GLOBALS[model] + LOCALS[model]:
        d = np.asarray(draws[name], np.float64).reshape(len(draws[name]), -1)
        out["mean"][name] = d.mean(0).tolist()
        out["sd"][name] = d.std(0, ddof=1).tolist()
    return out


def accuracy(summary: dict, ref: dict) -> dict:
    """Per group of sites (globals, locals): coordinates passing ``|err| <= 0.1`` (posterior sds)
    and ``|sd ratio - 1| <= 0.1``, both, and the worst of each."""
    out = {}
    for model in GLOBALS:
        if set(ref["mean"]) == set(GLOBALS[model] + LOCALS[model]):
            break
    for part, names in (("globals", GLOBALS[model]), ("locals", LOCALS[model])):
        if not names:
            continue
        m, s = (np.concatenate([summary[k][n] for n in names]) for k in ("mean", "sd"))
        rm, rs = (np.concatenate([ref[k][n] for n in names]) for k in ("mean", "sd"))
        err, ratio = (m - rm) / rs, s / rs
        ok_m, ok_s = np.abs(err) <= 0.1, np.abs(ratio - 1) <= 0.1
        out[part] = {"coords": int(err.size), "mean_pass": int(ok_m.sum()), "sd_pass": int(ok_s.sum()),
                     "both_pass": int((ok_m & ok_s).sum()), "max_abs_err": float(np.abs(err).max()),
                     "max_sd_dev": float(np.abs(ratio - 1).max())}
    return out


NAMES = {"pyro": "Pyro", "numpyro": "NumPyro"}


def _passes(acc: dict | None, part: str) -> str:
    a = (acc or {}).get(part)
    if a is None:
        return "-"
    return (f"{a['mean_pass']}/{a['coords']} means, {a['sd_pass']}/{a['coords']} sds "
            f"(worst {a['max_abs_err']:.2f} sd, {100 * a['max_sd_dev']:.0f}%)")


def table(result: dict) -> str:
    """The page's table: one line per model and method, NUTS first, times side by side (VI: the
    steps' wall time, and the set-up plus compilation apart)."""
    lines = [f"Machine: {result['machine']}; run {result['date']}, command `{result['command']}`.",
             f"Load (uptime) at the start: {_load(result['load_start'])}; at the end: "
             f"{_load(result['load_end'])}.", "",
             "| model | method | wall s | set-up + compile s | wall / NUTS | all / NUTS "
             "| where the time goes | globals pass | group effects pass |", "|---" * 9 + "|"]
    for model in dict.fromkeys(r["model"] for r in result["rows"]):
        rows = [r for r in result["rows"] if r["model"] == model]
        nuts = next(r for r in rows if r["method"] == "nuts")
        size = ", ".join(f"{k}={v:,}" for k, v in nuts["config"].items())
        for r in rows:
            if r["method"] == "nuts":
                what = f"NumPyro NUTS, {r['warmup']} + {r['samples']} draws"
                where = (f"{r['leapfrog_per_draw']:.1f} leapfrog steps a draw x {r['grad_ms']:.1f} ms a "
                         f"full-data gradient; {r['divergences']} divergences")
                cells = [f"{r['seconds']:.1f}", "(in wall)", "1", "1"]
            else:
                final = r.get("final") or {}
                first = r["steps"] - final.get("final_steps", 0)
                what = f"{NAMES[r['backend']]} VI, {first} steps of {r['batch']:,}"
                if final:
                    rows = "all" if not final["final_batch"] else f"{final['final_batch']:,}"
                    what += f", then {final['final_steps']} of {rows}"
                if r.get("average_last"):
                    what += f"; the mean of the last {r['average_last']} iterates"
                setup = (r.get("init_s") or 0) + (r.get("compile_s") or 0)
                where = (f"{1e3 * r['run_s'] / r['steps']:.1f} ms a step, of which index draw "
                         f"{r['index_ms']:.2f} ms; {r['epochs']:.0f} epochs")
                total = r["run_s"] + setup
                cells = [f"{r['run_s']:.1f}", f"{setup:.1f}" if setup else "-",
                         f"{r['run_s'] / nuts['seconds']:.3f}", f"{total / nuts['seconds']:.3f}"]
            lines.append(f"| {model} ({size}) | {what} | " + " | ".join(cells) + f" | {where} | "
                         f"{_passes(r['accuracy'], 'globals')} | {_passes(r['accuracy'], 'locals')} |")
    return "\n".join(lines)


def table_schedules(result: dict) -> str:
    """The schedules' table (``python -m models.bench.large_data --schedules``)."""
    lines = ["| subsampled steps (Adam) | then all rows (Adam) | steps' wall s | means pass | sds pass "
             "| worst mean, sd |", "|---|---|---:|---:|---:|---|"]
    for r in result["rows"]:
        a = r["accuracy"]
        sub = f"{r['steps']} ({r['lr'][0]:g} -> {r['lr'][1]:g})"
        full = "-"
        if r["final_steps"]:
            full = f"{r['final_steps']} ({r['final_lr'][0]:g} -> {r['final_lr'][1]:g})"
        if r.get("average_last"):
            full += f"; mean of the last {r['average_last']} iterates"
        worst = f"{a['max_abs_err']:.2f} sd, {100 * a['max_sd_dev']:.0f}%"
        lines.append(f"| {sub} | {full} | {r['run_s']:.1f} | {a['mean_pass']}/{a['coords']} | "
                     f"{a['sd_pass']}/{a['coords']} | {worst} |")
    lines.append(f"\nBatches of {result['batch']:,} rows, one seed, NumPyro; {result['machine']}; run "
                 f"{result['date']}, load at the start {_load(result['load_start'])}, at the end "
                 f"{_load(result['load_end'])}. Command: `{result['command']}`.")
    return "\n".join(lines)


def table_stability(result: dict) -> str:
    """Plain-``SVI`` fits by step size and ``stl`` (``python -m models.bench.large_data_stability``):
    one row per backend and cell, the seeds side by side."""
    lines = ["| backend | Adam step size | `stl` | loss, last 100 steps (per seed) | worst mean error, "
             "posterior sds (per seed) |", "|---|---:|---|---|---|"]
    cells: dict = {}
    for r in result["rows"]:
        cells.setdefault((r["backend"], r["lr"], str(r["stl"])), []).append(r)
    for (backend, lr, stl), rows in cells.items():
        loss = ", ".join(f"NaN at step {r['first_nonfinite_step']}" if r["final_loss"] is None
                         else f"{r['final_loss']:,.0f}" for r in rows)
        worst = ", ".join("-" if r["accuracy"] is None else f"{r['accuracy']['max_abs_err']:.1f}"
                          for r in rows)
        name = "NumPyro" if backend == "numpyro" else "Pyro"
        lines.append(f"| {name} | {lr:g} | {stl} | {loss} | {worst} |")
    lines.append(f"\n{result['steps']} steps of {result['batch']:,} rows, plain `SVI`, one particle; "
                 f"{result['machine']}; run {result['date']}, load at the start "
                 f"{_load(result['load_start'])}, at the end {_load(result['load_end'])}. "
                 f"Command: `{result['command']}`.")
    return "\n".join(lines)


def _load(uptime: str) -> str:
    """The load averages of an ``uptime`` line ("load average: 1.0, 2.0, 3.0" -> "1.0, 2.0, 3.0")."""
    return uptime.split("load average:")[-1].strip()


def table_from_file(path: str | Path = RESULT) -> str:
    return table(json.loads(Path(path).read_text()))


def write_page(page: Path = PAGE) -> None:
    """Rewrite the ``<!-- generated: large_data -->`` block of ``page`` from the result JSON."""
    text = page.read_text()
    block = re.compile(r"(<!-- generated: large_data -->\n)(.*?)(<!-- end generated -->)", re.S)
    page.write_text(block.sub(lambda m: m.group(1) + table_from_file() + "\n" + m.group(3), text))
