"""Write every measured figure of the docs and the README from the benchmark result files.

    python docs/generate.py                        # rewrite the generated parts (``make figures``)
    python docs/generate.py --check                # exit 1, listing each disagreement (the tests)
    python docs/generate.py --compare results/compare_all3 --cells results/bench --stl-cost results/stl_cost

The result files live in ``docs/bench/``: ``cells.json`` and ``timing.json`` (written by
``python -m models.bench.autoguide``), ``compare.json`` (a ``report.json`` of ``python -m
models.compare``), ``stl_cost.json`` (``python -m models.bench.stl_cost``), ``amortized.json``
(the slow exact-evidence test of ``tests/test_amortized.py`` run with ``IAF_BENCH_OUT=DIR``) and
``resnet_vae_step.json`` (``python -m models.bench.resnet_vae_step``; ``--resnet-vae-step DIR``
takes a new run's file whole) and
``large_data.json`` (``python -m models.bench.large_data``, which also rewrites its page).
``--compare``, ``--cells``, ``--stl-cost`` and ``--amortized``
first merge a new run's files into them: a row of the new run replaces the row of the same model,
backend and guide (cell: backend, budget, D, guide, seed).

A page marks what is generated, and nothing else is touched:

    <!-- generated: compare_elbo numpyro -->          a table: NAME and its arguments
    ...                                               (rewritten)
    <!-- end generated -->
    <!--v gap/pyro/hot/100/iaf-->1.30<!--/v-->        one value in running text

HTML comments are invisible on the built site and on GitHub. ``docs/bench/bench.md`` (included
by ``benchmarks/autoguide.md``) is rewritten whole from ``cells.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "docs" / "bench"
PAGES = ("README.md", "docs/**/*.md", "models/**/RESULTS.md")
BLOCK = re.compile(r"(<!-- generated: ([a-z][\w-]*)((?: [\w/.+-]+)*) -->\n)(.*?)(<!-- end generated -->)",
                   re.S)
VALUE = re.compile(r"(<!--v ([a-z][\w/.+-]*)-->)(.*?)(<!--/v-->)")
NAMES = {"pyro": "Pyro", "numpyro": "NumPyro", "diagonal": "diagonal", "lowrank": "low-rank",
         "multivariate": "full-rank", "iaf_builtin": "built-in IAF", "iaf": "ours",
         "iaf_gated": "previous default (2 gated, no stl)", "iaf_nostl": "1 affine, no stl",
         "iaf_median": "ours, median of 15 (before)", "iaf_uniform": "ours, init_to_uniform"}
#: columns of the defaults table (docs/bench/defaults.json, ``python docs/bench/merge_defaults.py``)
DEFAULTS_GUIDES = ("diagonal", "multivariate", "iaf_builtin", "iaf", "iaf_median", "iaf_uniform", "iaf_gated",
                   "iaf_nostl")
COMPARE_GUIDES = ("diagonal", "lowrank", "multivariate", "iaf_builtin", "iaf")


# ---- the result files ---------------------------------------------------------------------------


def _load(name: str) -> dict:
    return json.loads((BENCH / name).read_text())


def compare_rows() -> list[dict]:
    return _load("compare.json")["rows"]


def compare_row(backend: str, model: str, guide: str) -> dict:
    for r in compare_rows():
        if (r["backend"], r["model"], r["guide"]) == (backend, model, guide):
            return r
    raise KeyError(f"docs/bench/compare.json has no row {model} / {backend} / {guide}")


def gaps(backend: str, budget: str, D: int, guide: str) -> list[float | None]:
    cells = [c for c in _load("cells.json").values()
             if (c["backend"], c["budget"], c["D"], c["guide"]) == (backend, budget, D, guide)]
    if not cells:
        raise KeyError(f"docs/bench/cells.json has no cell {backend} / {budget} / D={D} / {guide}")
    return [c["gap"] for c in sorted(cells, key=lambda c: c["seed"])]


# ---- formats ------------------------------------------------------------------------------------


def fmt_gap(x: float) -> str:
    """1.30, 0.019, 0.0014, 990.53, 2.3e12: two decimals, two significant digits below 0.1."""
    if x >= 1e5:
        mantissa, exponent = f"{x:.1e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    if abs(x) < 0.1:
        return f"{x:.2g}"
    return f"{x:.2f}"


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def _diverged(r: dict) -> bool:
    return bool(r.get("diverged_seeds")) or not _finite(r["elbo_mean"])


# ---- values in running text ---------------------------------------------------------------------


def value(key: str) -> str:
    """``gap/BACKEND/BUDGET/D/GUIDE``: mean gap over seeds; ``seeds/...``: their count;
    ``elbo|khat/BACKEND/MODEL/GUIDE``; ``diverged/BACKEND/GUIDE``: models with a diverged seed;
    ``best/BACKEND/GUIDE[/A+B]``: models where GUIDE's ELBO is the best (of all guides, or of
    GUIDE, A and B); ``khat_above/BACKEND/GUIDE/T``: models where its k-hat exceeds T;
    ``models``: models in the comparison; ``stl/BACKEND/D/PARTICLES``: the STL step's cost;
    ``amortized/BACKEND/PATTERN/FIELD``: a field of the amortized guide's checks (``gap``: ELBO - log Z);
    ``gpu/RUN/FIELD[/DIGITS]``: a field of a lent-GPU ResNet VAE run; ``cpu/RUN/FIELD[/DIGITS]``: of a
    CPU one."""
    kind, *args = key.split("/")
    if kind in ("gap", "seeds"):
        backend, budget, D, guide = args
        g = gaps(backend, budget, int(D), guide)
        return str(len(g)) if kind == "seeds" else fmt_gap(sum(g) / len(g))
    if kind == "elbo":
        return f"{compare_row(*args)['elbo_mean']:.2f}"
    if kind == "khat":
        return f"{compare_row(*args)['khat']:.2f}"
    if kind == "diverged":
        backend, guide = args
        rows = [r for r in compare_rows() if (r["backend"], r["guide"]) == (backend, guide)]
        return str(sum(map(_diverged, rows)))
    if kind == "best":  # best/BACKEND/GUIDE[/OTHER+OTHER]: models where GUIDE has the best ELBO
        backend, guide, *among = args
        return str(sum(_best(backend, m, among[0].split("+") + [guide] if among else None) == guide
                       for m in dict.fromkeys(r["model"] for r in compare_rows())))
    if kind == "khat_above":  # khat_above/BACKEND/GUIDE/THRESHOLD: converged models with k-hat above it
        backend, guide, threshold = args
        return str(sum(not _diverged(r) and _finite(r["khat"]) and r["khat"] > float(threshold)
                       for r in compare_rows() if (r["backend"], r["guide"]) == (backend, guide)))
    if kind == "models":
        return str(len({r["model"] for r in compare_rows()}))
    if kind == "amortized":  # amortized/BACKEND/PATTERN/gap|gap_autonormal
        backend, pattern, field = args
        rows = _load("amortized.json")["rows"]
        row = next(r for r in rows if (r["backend"], r["pattern"]) == (backend, pattern))
        return f"{row[field]:.0f}" if abs(row[field]) >= 100 else f"{row[field]:.2f}"
    if kind == "ld":  # ld/MODEL/BACKEND|nuts/[locals_]FIELD: a row of the large-data run (large_data.json)
        model, who, field = args
        rows = [r for r in _load("large_data.json")["rows"] if r["model"] == model]
        nuts = next(r for r in rows if r["method"] == "nuts")
        row = nuts if who == "nuts" else next(r for r in rows if r["method"] == "vi" and r["backend"] == who)
        part = "locals" if field.startswith("locals_") else "globals"
        acc, field = row["accuracy"][part], field.removeprefix("locals_")
        setup = (row.get("init_s") or 0) + (row.get("compile_s") or 0) if row is not nuts else 0
        values = {"both": acc["both_pass"], "means": acc["mean_pass"], "sds": acc["sd_pass"],
                  "coords": acc["coords"], "seconds": f"{row['seconds']:.0f}",
                  "worst_mean": f"{acc['max_abs_err']:.2f}", "worst_sd": f"{100 * acc['max_sd_dev']:.0f}%",
                  "wall_ratio": f"{(row.get('run_s') or row['seconds']) / nuts['seconds']:.3f}",
                  "all_ratio": f"{((row.get('run_s') or row['seconds']) + setup) / nuts['seconds']:.3f}"}
        return str(values[field])
    if kind in ("stl", "stlold"):  # stl[old]/BACKEND/D/PARTICLES: the STL step's cost over the plain step's
        backend, D, particles = args
        source = "stl_cost.json" if kind == "stl" else "stl_cost_previous.json"
        row = next(r for r in _load(source)["rows"]
                   if (r["backend"], r["D"], r["particles"]) == (backend, int(D), int(particles)))
        return f"{row['ratio']:.2f}x"
    if kind == "pdb":  # pdb/BACKEND/COUNT: a count of models.compare.posteriordb_report.counts
        backend, name = args
        rep, data = _pdb()
        return str(rep.counts(data, backend)[name])
    if kind == "qt":  # qt/BACKEND/SUITE/COUNT: models.compare.quality_time.counts over one suite
        sys.path.insert(0, str(ROOT))
        from models.compare.quality_time import counts

        backend, suite, name = args
        pdb = _pdb_names()
        rows = [r for r in _load("quality_time.json")["rows"]
                if (suite == "posteriordb") == (r["model"] in pdb)]
        return str(counts(rows, backend)[name])
    if kind == "stlpays":  # stlpays/BACKEND/COUNT: stl_pays_counts
        backend, name = args
        x = stl_pays_counts(backend)[name]
        return f"{x:.2f}x" if name.startswith("cost") else str(x)
    if kind in ("gpu", "cpu"):  # gpu|cpu/RUN/FIELD[/DIGITS]: a field of a ResNet VAE training run
        run, field, *digits = args
        x = _load("gpu.json" if kind == "gpu" else "resnet_vae_cpu.json")["runs"][run][field]
        return f"{x:.{int(digits[0]) if digits else 2}f}"
    raise KeyError(f"unknown value {key!r}")


def _best(backend: str, model: str, guides: list[str] | None = None) -> str | None:
    """The guide with the highest ELBO on ``model`` among ``guides`` (all when None), diverged ones out."""
    ok = {r["guide"]: r["elbo_mean"] for r in compare_rows()
          if (r["backend"], r["model"]) == (backend, model) and not _diverged(r)
          and (guides is None or r["guide"] in guides)}
    return max(ok, key=ok.get) if ok else None


# ---- tables -------------------------------------------------------------------------------------


def table_autoguide_headline() -> str:
    """Gap at D=100, hot budget: diagonal, built-in IAF, ours, per backend."""
    lines = ["| D = 100 | diagonal normal | built-in IAF | ours |", "|---|---|---|---|"]
    for b in ("pyro", "numpyro"):
        cells = [fmt_gap(_mean(gaps(b, "hot", 100, g))) for g in ("diagonal", "iaf_builtin", "iaf")]
        lines.append(f"| {NAMES[b]} | {cells[0]} | {cells[1]} | **{cells[2]}** |")
    return "\n".join(lines)


def table_autoguide_by_dimension() -> str:
    """Gap per budget and D, both backends: diagonal, built-in IAF, ours (mean over seeds)."""
    lines = ["| backend | budget | D | diagonal | built-in IAF | ours |", "|---|---|---|---|---|---|"]
    for b in ("pyro", "numpyro"):
        for budget in ("hot", "gentle"):
            for D in (10, 100, 1000):
                try:
                    cells = {g: gaps(b, budget, D, g) for g in ("diagonal", "iaf_builtin", "iaf")}
                except KeyError:
                    continue
                means = {g: _mean(v) for g, v in cells.items()}
                text = {g: fmt_gap(m) + (" (1 seed)" if len(cells[g]) == 1 else "") for g, m in means.items()}
                best = min(means, key=means.get)
                text[best] = f"**{text[best]}**"
                lines.append(f"| {NAMES[b]} | {budget} | {D} | {text['diagonal']} | {text['iaf_builtin']} "
                             f"| {text['iaf']} |")
    return "\n".join(lines)


def table_autoguide_previous() -> str:
    """The previous default (``iaf_gated``) against today's (``iaf``), per cell and backend."""
    lines = ["| cell (gap, nats, mean over seeds) | Pyro: previous | Pyro: today | NumPyro: previous "
             "| NumPyro: today |", "|---|---|---|---|---|"]
    for budget, D in (("hot", 10), ("hot", 100), ("gentle", 100), ("hot", 1000), ("gentle", 1000)):
        row = [f"{budget}, D={D}"]
        for b in ("pyro", "numpyro"):
            try:
                old, new = gaps(b, budget, D, "iaf_gated"), gaps(b, budget, D, "iaf")
            except KeyError:
                row += ["-", "-"]
                continue
            row += [f"{fmt_gap(_mean(old))} ({len(old)} seeds)", f"{fmt_gap(_mean(new))} ({len(new)} seeds)"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def table_defaults(backend: str) -> str:
    """Today's default, the previous one and the candidates beside the built-ins (defaults.json)."""
    return table_compare_elbo(backend, _load("defaults.json")["rows"], DEFAULTS_GUIDES)


def table_compare_elbo(backend: str, all_rows: list[dict] | None = None,
                       order: tuple[str, ...] = COMPARE_GUIDES) -> str:
    """Final ELBO per model (mean over seeds; best in bold; "diverged (k/n)")."""
    rows = [r for r in (compare_rows() if all_rows is None else all_rows) if r["backend"] == backend]
    guides = [g for g in order if any(r["guide"] == g for r in rows)]
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = ["| model | " + " | ".join(NAMES[g] for g in guides) + " |", "|---" * (len(guides) + 1) + "|"]
    for m in models:
        by = {r["guide"]: r for r in rows if r["model"] == m}
        ok = {g: by[g]["elbo_mean"] for g in guides if g in by and not _diverged(by[g])}
        best = max(ok, key=ok.get) if ok else None
        cells = []
        for g in guides:
            r = by.get(g)
            if r is None:
                cells.append("-")
            elif _diverged(r):
                cells.append(f"diverged ({r.get('diverged_seeds') or r.get('seeds')}/{r.get('seeds')})")
            else:
                n = r.get("seeds", 1)
                text = f"{r['elbo_mean']:.2f}" + ("" if n == 3 else f" ({n} seed{'s' * (n > 1)})")
                cells.append(f"**{text}**" if g == best else text)
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_compare_khat(backend: str) -> str:
    """PSIS k-hat (worst seed) of every guide that converged, one backend."""
    rows = [r for r in compare_rows() if r["backend"] == backend]
    guides = [g for g in COMPARE_GUIDES if any(r["guide"] == g for r in rows)]
    lines = ["| model | " + " | ".join(NAMES[g] for g in guides) + " |", "|---" * (len(guides) + 1) + "|"]
    for m in dict.fromkeys(r["model"] for r in rows):
        cells = []
        for g in guides:
            r = next((r for r in rows if (r["model"], r["guide"]) == (m, g)), None)
            bad = r is None or _diverged(r) or not _finite(r["khat"])
            cells.append("-" if bad else f"{r['khat']:.2f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_compare_full() -> str:
    """The comparison report's full table (``models.compare.report.markdown_table``)."""
    sys.path.insert(0, str(ROOT))
    from models.compare.report import markdown_table, read_rows

    return markdown_table(read_rows(BENCH / "compare.json"))


def table_stl_cost() -> str:
    """Plain vs path-derivative step of the same flow (``python -m models.bench.stl_cost``)."""
    d = _load("stl_cost.json")
    lines = ["| backend | particles | D | ms/step plain | ms/step `stl=True` | ratio | target |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for r in sorted(d["rows"], key=lambda r: (r["backend"] != "numpyro", r["particles"], r["D"])):
        target = 1.3 if r["D"] <= 128 else 2.0 if r["D"] == 512 else None
        met = "" if target is None else f"<= {target}x: {'met' if r['ratio'] <= target else '**not met**'}"
        lines.append(f"| {NAMES[r['backend']]} | {r['particles']} | {r['D']} | {r['ms_plain']:.2f} "
                     f"| {r['ms_stl']:.2f} | {r['ratio']:.2f}x | {met} |")
    st = d["settings"]
    blocks = "".join(f", {NAMES[b]} solve blocks of {n}" for b, n in st.get("solve_block", {}).items())
    lines.append(f"\n{st['machine']}, {st['date']}, commit {st['commit']}{blocks}, load "
                 f"{st['load_at_start']} at the start, {st['load_at_end']} at the end ({st['label']}). "
                 f"Command: `{st['command']}`.")
    return "\n".join(lines)


def table_resnet_vae_step() -> str:
    """Ours vs the plain step of the ResNet VAE (``python -m models.bench.resnet_vae_step``)."""
    d = _load("resnet_vae_step.json")
    conv = d["conv_flops_per_step"]
    # the convs-only program's FLOPs by PyTorch's counter, for both backends (the same convolutions)
    ref_flops = next((r["flops_convs"]["conv"] for r in d["rows"] if r["backend"] == "pyro"), None)
    lines = [f"| backend | ours ms/step | plain ms/step | ours / plain, wall (median of {d['rounds']} "
             "rounds; range) | ours / plain, CPU time | GFLOP per step, ours / plain | convs only, ms "
             "| conv GFLOP/s: ours / plain / convs only |", "|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        key = "total" if r["backend"] == "pyro" else "xla"
        conv_ref = ref_flops or r["flops_convs"]["xla"]
        lo, hi = min(r["ratios"]), max(r["ratios"])
        lines.append(
            f"| {NAMES[r['backend']]} | {r['ours_s_per_step'] * 1e3:.1f} | {r['plain_s_per_step'] * 1e3:.1f} "
            f"| **{r['ratio']:.2f}x** ({lo:.2f}-{hi:.2f}) | {r['cpu_ratio']:.2f}x "
            f"| {r['flops_ours'][key] / 1e9:.2f} / {r['flops_plain'][key] / 1e9:.2f} "
            f"| {r['convs_s_per_step'] * 1e3:.1f} | {conv / r['ours_s_per_step'] / 1e9:.1f} / "
            f"{conv / r['plain_s_per_step'] / 1e9:.1f} / {conv_ref / r['convs_s_per_step'] / 1e9:.1f} |")
    c = d["config"]
    load = d["load_before"][0], d["load_after"][0]
    lines.append(
        f"\n{d['machine']}, load average {load[0]:.1f} before / {load[1]:.1f} after, {d['when']} "
        f"(jax {d['versions']['jax']}, torch {d['versions']['torch']}); {d['dataset']}, batch "
        f"{c['batch_size']}, hidden {c['hidden']}, zdim {c['zdim']}, IAF width {c['iaf_hidden']}, "
        f"free bits {c['free_bits']}; {d['steps']} timed steps per round. Convolutions and matrix "
        f"products per step (PyTorch's counter, forward and backward): {conv / 1e9:.2f} GFLOP in "
        f"convolutions (convs only: {(ref_flops or 0) / 1e9:.2f}, input gradients of every one). "
        f"Command: `{d['command']}`.")
    return "\n".join(lines)


def table_large_data() -> str:
    """The large-data benchmark's table (``models.bench.large_data_report.table``)."""
    sys.path.insert(0, str(ROOT))
    from models.bench.large_data_report import table

    return table(_load("large_data.json"))


def table_large_data_stability() -> str:
    """Plain-``SVI`` fits of the large logistic regression by step size and ``stl``
    (``models.bench.large_data_stability``)."""
    from models.bench.large_data_report import table_stability

    return table_stability(_load("large_data_stability.json"))


def table_large_data_schedules(rows: str) -> str:
    """Fit schedules of the large logistic regression at ``rows`` rows
    (``models.bench.large_data --schedules --rows ROWS``)."""
    sys.path.insert(0, str(ROOT))
    from models.bench.large_data_report import table_schedules

    return table_schedules(_load(f"large_data_schedules_{rows}.json"))


def _resnet_vae_rows(runs: dict) -> list[str]:
    """Table lines of ResNet VAE training runs (the ``metrics.json`` of ``python -m models.resnet_vae``)."""
    lines = ["| run | posterior | parameters | steps (batch) | epochs | train min | test ELBO | "
             "test log p(x) (IS) |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in runs.items():
        c = r["config"]
        post = f"IAF ({c['flows']} step)" if c["flows"] else "diagonal"
        lines.append(
            f"| `{name}` (depth {c['depth']}x{c['stages']}, hidden {c['hidden']}, zdim {c['zdim']}) | {post} "
            f"| {r['params']:,} | {r['steps']:,} ({c['batch_size']}) | {r['epochs']:.1f} "
            f"| {r['train_seconds'] / 60:.1f} | {r['test_elbo']:.2f} ± {r['test_elbo_se']:.2f} "
            f"| **{r['test_log_likelihood']:.2f}** ± {r['test_log_likelihood_se']:.2f} |")
    return lines


def table_gpu_resnet_vae() -> str:
    """The lent-GPU runs of the ResNet VAE (``docs/bench/gpu.json``, ``models.bench.device_report``)."""
    d = _load("gpu.json")
    m = d["machine"]
    lines = _resnet_vae_rows(d["runs"])
    r0 = next(iter(d["runs"].values()))
    lines.append(
        f"\n{m['gpu']} ({m['memory_mib']} MiB, driver {m['driver']}), jax {m['versions']['jax']}, numpyro "
        f"{m['versions']['numpyro']}; {m['started']} to {m['ended']}; {d['note']}. Test set: all "
        f"{r0['test_images']:,} images, IS with {r0['is_samples']} draws, ± one standard error over images. "
        f"Command: `{d['command']}`.")
    return "\n".join(lines)


def table_posteriordb_fit() -> str:
    """Ours under ``fit`` on every posteriordb posterior, both backends side by side
    (``docs/bench/posteriordb_fit_<backend>.json``, ``python -m models.posteriordb.fit_check``)."""
    runs = {b: {r["posterior"]: r for r in _load(f"posteriordb_fit_{b}.json")["rows"]}
            for b in ("numpyro", "pyro") if (BENCH / f"posteriordb_fit_{b}.json").exists()}
    names = sorted(set().union(*runs.values()))

    def cell(r: dict | None) -> str:
        if r is None:
            return "not run"
        return f"{r['elbo']:.2f}" if r["finite"] else f"**failed**: {r['error'] or 'non-finite ELBO'}"

    lines = ["| posterior | " + " | ".join(f"{NAMES[b]} ELBO under `fit`" for b in runs) + " |",
             "|---|" + "---:|" * len(runs)]
    lines += [f"| `{n}` | " + " | ".join(cell(rows.get(n)) for rows in runs.values()) + " |" for n in names]
    counts = "; ".join(f"{NAMES[b]}: finite on {sum(r['finite'] for r in rows.values())} of {len(rows)} "
                       f"({sum(r['seconds'] for r in rows.values()) / 60:.0f} min in all)"
                       for b, rows in runs.items())
    lines.append(f"\n{counts}. `AutoIAFNormal(model)` at every default, `fit(..., num_steps=2000, seed=0)`, "
                 "then the ELBO from 1000 draws; a failure is `fit`'s `NonFiniteLossError` or any "
                 "other error.")
    return "\n".join(lines)


def _err(x: float) -> str:
    return f"{x:.3f}" if _finite(x) else "NaN"


def table_accuracy_posteriordb(name: str = "accuracy_posteriordb_numpyro.json") -> str:
    """The accuracy recipe on the posteriordb posteriors (``docs/bench/<name>``,
    ``python -m models.compare.accuracy --suite posteriordb``) beside NumPyro NUTS's wall time on
    the same machine (``posteriordb_nuts_time.json``, ``python -m models.posteriordb.check``)."""
    import statistics

    acc = _load(name)
    backend = acc["settings"]["backend"]
    nuts_run = _load("posteriordb_nuts_time.json") if (BENCH / "posteriordb_nuts_time.json").exists() else {}
    nuts = {r["posterior"]: r for r in nuts_run.get("rows", [])}
    lines = ["| posterior | D | mean err | sd err | pass? | fit s | NUTS s | fit / NUTS |",
             "|---|---:|---:|---:|---|---:|---:|---:|"]
    ratios = []
    for r in acc["rows"]:
        n = nuts.get(r["model"])
        timing = "- | -"
        if n:
            ratios.append(r["fit_s"] / n["seconds"])
            timing = f"{n['seconds']:.1f} | {ratios[-1]:.2f}"
        lines.append(f"| `{r['model']}` | {r['D']} | {_err(r['mean_err'])} | {_err(r['sd_err'])} "
                     f"| {'**yes**' if r['pass'] else 'no'} | {r['fit_s']:.1f} | {timing} |")
    st, rec = acc["settings"], acc["settings"]["recipe"]
    passed = sum(r["pass"] for r in acc["rows"])
    text = f"\n**{passed} of {len(acc['rows'])} pass** (mean err <= 0.1 and sd err <= 0.1)."
    if ratios:
        text += (f" Fit / NUTS: median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-"
                 f"{max(ratios):.2f}; the fit is the faster on {sum(x <= 1 for x in ratios)} of "
                 f"{len(ratios)}.")
    start = f"init_to_{rec['init']}" if rec.get("init") else "the guide's default"
    text += (f" {NAMES[backend]}, {rec['particles']} particles, {rec['steps']} steps, Adam {rec['lr']} -> "
             f"{rec['final_lr']}, start {start}, "
             f"seed {st['seed']}, {st['draws']} draws scored; {st['machine']}, load "
             f"{st['load_start']} at the start, {st.get('load_end', '?')} at the end. \"fit s\": `fit` "
             "with its compilation.")
    if nuts:
        first, meta = next(iter(nuts.values())), nuts_run.get("meta", {})
        text += (f" \"NUTS s\": NumPyro NUTS, one chain of {first['warmup']} warm-up + {first['draws']} "
                 f"draws in float64 (the translation check's code), compilation included; "
                 f"{meta.get('date', '')}, load {meta.get('load', '?')}.")
    return "\n".join(lines + [text])


def table_cpu_resnet_vae() -> str:
    """The CPU training runs of the ResNet VAE (``docs/bench/resnet_vae_cpu.json``,
    ``models.bench.resnet_vae_cpu_report``)."""
    d = _load("resnet_vae_cpu.json")
    m = d["machine"]
    lines = _resnet_vae_rows(d["runs"])
    r0 = next(iter(d["runs"].values()))
    resumed = ", ".join(f"`{n}` at step {', '.join(map(str, r['resumed_at']))}"
                        for n, r in d["runs"].items() if r["resumed_at"])
    lines.append(
        f"\n{m['cpu']} ({m['cores']} cores, {m['system']}), {NAMES[r0['backend']]}; {d['note']}. "
        f"Killed and resumed with the same command: {resumed or 'none'}. Test set: "
        f"{r0['test_images']:,} images, IS with {r0['is_samples']} draws, ± one standard error over images; "
        f"train min: training time without compilation, summed over the resumed sessions. "
        f"Command: `{d['command']}`.")
    return "\n".join(lines)


def table_gpu_smoke() -> str:
    """``models.bench.smoke_accelerator`` on the lent GPU (``docs/bench/gpu.json``)."""
    sys.path.insert(0, str(ROOT))
    from models.bench.smoke_accelerator import table

    return table(_load("gpu.json")["smoke"])


def table_gpu_resnet_vae_step() -> str:
    """``models.bench.resnet_vae_step`` (NumPyro) on the lent GPU (``docs/bench/gpu.json``)."""
    s = _load("gpu.json")["resnet_vae_step"]
    lines = ["| backend | ours ms/step | plain ms/step | ours / plain (median of rounds; range) "
             "| convs only, ms |",
             "|---|---:|---:|---|---:|"]
    for r in s["rows"]:
        lines.append(f"| {NAMES[r['backend']]} | {r['ours_s_per_step'] * 1e3:.2f} "
                     f"| {r['plain_s_per_step'] * 1e3:.2f} "
                     f"| **{r['ratio']:.2f}x** ({min(r['ratios']):.2f}-{max(r['ratios']):.2f}) "
                     f"| {r['convs_s_per_step'] * 1e3:.2f} |")
    c = s["config"]
    lines.append(f"\n{s['when']}, {s['rounds']} rounds of {s['steps']} steps, batch {c['batch_size']}, "
                 f"hidden "
                 f"{c['hidden']}, zdim {c['zdim']}, IAF width {c['iaf_hidden']}. Command: `{s['command']}`.")
    return "\n".join(lines)


def _pdb(name: str = "posteriordb_guides.json"):
    sys.path.insert(0, str(ROOT))
    from models.compare import posteriordb_report

    return posteriordb_report, _load(name)


def _elbo_cell(r: dict | None, best: bool) -> str:
    if r is None:
        return "not run"
    seeds = r["elbo_seeds"] or []
    bad = sum(not _finite(e) for e in seeds)
    if not seeds or bad == len(seeds):
        return f"NaN ({bad}/{len(seeds)} diverged)" if not r.get("error") else "error"
    x = r["elbo_mean"] if bad == 0 else sum(e for e in seeds if _finite(e)) / (len(seeds) - bad)
    text = f"{x:.4g}" if abs(x) >= 1e5 else f"{x:.2f}"
    text = f"**{text}**" if best else text
    return text + (f" ({bad}/{len(seeds)} diverged)" if bad else "")


def _errs(r: dict | None) -> str:
    ok = r is not None and _finite(r["mean_z_err"])
    return f"{r['mean_z_err']:.2f} / {r['sd_z_err']:.2f}" if ok else "-"


def table_posteriordb_guides(backend: str, name: str = "posteriordb_guides.json") -> str:
    """Per posterior: the guides' ELBO (mean over seeds; best bold) and the moment errors, from
    ``docs/bench/<name>`` (a ``models.compare.posteriordb_report`` file; the guides it holds)."""
    rep, data = _pdb(name)
    nuts = {r["posterior"]: r for r in _load("posteriordb_nuts.json")["rows"]}
    held = {r["guide"] for r in data["rows"] if r["backend"] == backend}
    guides = [g for g in rep.GUIDES if g in held]
    lines = ["| posterior | D | " + " | ".join(NAMES[g] for g in guides)
             + " | mean err / sd err: ours | full-rank | NUTS check (s) |",
             "|---|---:|" + "---:|" * len(guides) + "---|---|---:|"]
    for model, cells in sorted(rep.by_model(data, backend).items()):
        best = rep.best_guide(cells)
        D = next((r["latent_dim"] for r in cells.values() if r.get("latent_dim")), "")

        n = nuts.get(model)
        mark = " *" if model in rep.NON_GAUSSIAN else ""
        elbos = " | ".join(_elbo_cell(cells.get(g), g == best) for g in guides)
        secs = f"{n['seconds']:.0f}" if n else "-"
        lines.append(f"| `{model}`{mark} | {D} | {elbos} | {_errs(cells.get('iaf'))} "
                     f"| {_errs(cells.get('multivariate'))} | {secs} |")
    runs = "; ".join(f"{r.get('steps')} steps, {r.get('seeds')} seeds, lr {r.get('lr')}, "
                     f"{r.get('particles')} particle, init {r.get('init') or 'each guide default'}, "
                     f"{r.get('machine', '')}, "
                     f"{r.get('date', '')}" for r in data["runs"] if backend in r.get("backends", [backend]))
    lines.append(f"\n`*`: not Gaussian-shaped (the moonshot's set). Runs: {runs}.")
    return "\n".join(lines)


def table_quality_time(backend: str, suite: str = "all") -> str:
    """Time for ours to reach each rival's final ELBO (``models.compare.quality_time``)."""
    d = _load("quality_time.json")
    pdb = _pdb_names()
    lines = ["| model | rival | rival's ELBO | rival s | ours s to reach it | ours / rival | ours' ELBO |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in d["rows"]:
        if r["backend"] != backend or (suite == "posteriordb") != (r["model"] in pdb):
            continue
        if r["target"] is None:
            lines.append(f"| `{r['model']}` | {NAMES[r['rival']]} | diverged | - | 0 | - | "
                         f"{_num(r['ours_final'])} |")
            continue
        ours = "not reached" if r["ours_s"] is None else f"{r['ours_s']:.3f}"
        ratio = "-" if r["ours_s"] is None or not r["rival_s"] else f"{r['ours_s'] / r['rival_s']:.2f}"
        ratio = f"**{ratio}**" if r["no_slower"] else ratio
        lines.append(f"| `{r['model']}` | {NAMES[r['rival']]} | {_num(r['target'])} | {r['rival_s']:.3f} "
                     f"| {ours} | {ratio} | {_num(r['ours_final'])} |")
    return "\n".join(lines)


def _reached_final(r: dict) -> bool:
    """A ``quality_time`` row whose guide ended at least at its rival's final ELBO."""
    return r["target"] is not None and r["ours_final"] is not None and r["ours_final"] >= r["target"]


def table_stl_pays(backend: str) -> str:
    """The default (path-derivative ``stl``) against the same flow without it, per model by latent
    dimension (``docs/bench/stl_pays.json``: ``models.compare.quality_time --rivals iaf_nostl``)."""
    rows = sorted((r for r in _load("stl_pays.json")["rows"] if r["backend"] == backend),
                  key=lambda r: (r["latent_dim"], r["model"]))
    if not rows:
        return f"Not run yet for {NAMES[backend]}."
    lines = ["| model | D | ms/step, `stl` / without | ELBO without `stl` | ELBO with `stl` | "
             "time with `stl` to reach it / time without |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        cost = r["ours_ms_per_step"] / r["rival_ms_per_step"]
        reach = ("not reached" if r["ours_s"] is None or not r["rival_s"]
                 else f"{r['ours_s'] / r['rival_s']:.2f}")
        reach = f"**{reach}**" if r["no_slower"] else reach
        ours = f"**{_num(r['ours_final'])}**" if _reached_final(r) else _num(r["ours_final"])
        lines.append(f"| `{r['model']}` | {r['latent_dim']} | {cost:.2f} | {_num(r['target'])} | {ours} "
                     f"| {reach} |")
    return "\n".join(lines)


#: the latent dimension from which ``stl_pays_counts`` counts a model as large
STL_LARGE_DIM = 16


def stl_pays_counts(backend: str) -> dict[str, float]:
    """Counts over ``stl_pays.json``: models, ``stl``'s ELBO at least the plain one's (``ge``),
    and no later (``no_slower``); the median step cost ratio (``cost``)."""
    import statistics

    rows = [r for r in _load("stl_pays.json")["rows"] if r["backend"] == backend]
    large = [r for r in rows if r["latent_dim"] >= STL_LARGE_DIM]
    costs = [r["ours_ms_per_step"] / r["rival_ms_per_step"] for r in rows]
    return {"models": len(rows), "ge": sum(map(_reached_final, rows)),
            "no_slower": sum(r["no_slower"] for r in rows),
            "cost": statistics.median(costs), "cost_max": max(costs),
            "max_dim": max(r["latent_dim"] for r in rows), "large_models": len(large),
            "large_ge": sum(map(_reached_final, large)),
            "large_no_slower": sum(r["no_slower"] for r in large)}


def _pdb_names() -> set[str]:
    """The 45 posteriordb names (the rows of the NUTS check)."""
    return {r["posterior"] for r in _load("posteriordb_nuts.json")["rows"]}


def _num(x) -> str:
    if x is None or not _finite(x):
        return "NaN"
    return f"{x:.4g}" if abs(x) >= 1e5 else f"{x:.2f}"


def _mean(xs: list[float | None]) -> float:
    return float("nan") if any(x is None for x in xs) else sum(xs) / len(xs)


def table_fit_guard(*names: str) -> str:
    """Today's ``fit`` (gradient clipping, skipped non-finite steps) against the previous one, per
    model, from ``docs/bench/<name>`` (``python -m models.bench.fit_guard``)."""
    rows: list[dict] = []
    config = None
    for name in names:
        if (BENCH / name).exists():
            data = _load(name)
            config = config or data["config"]
            rows += data["rows"]
    if not rows:
        return "Not run yet: " + ", ".join(f"`docs/bench/{n}`" for n in names) + " is missing."
    models = list(dict.fromkeys(r["model"] for r in rows))

    def elbo(run: dict) -> float | None:
        return run["elbo"] if run["error"] is None and _finite(run["elbo"]) else None

    lines = ["| model | seeds | steps clipped (mean) | steps skipped | ELBO, today's `fit` | "
             "ELBO, previous `fit` | today - previous |", "|---|---:|---:|---:|---:|---:|---:|"]
    same = worse = 0
    for model in models:
        runs = [r for r in rows if r["model"] == model]
        today = [elbo(r["guarded"]) for r in runs]
        before = [elbo(r["previous"]) if r["previous"] else elbo(r["guarded"]) for r in runs]
        errors = [r["previous"]["error"] for r in runs if r["previous"] and r["previous"]["error"]]
        clipped = [r["guarded"]["clipped"] or 0 for r in runs]
        skipped = sum(r["guarded"]["skipped"] or 0 for r in runs)
        a, b = _mean(today), _mean(before)
        if not any(r["previous"] for r in runs):
            same += 1
            diff = "same runs"
        elif _finite(a) and _finite(b):
            diff = f"{a - b:+.2f}"
            if a < b - max(1.0, 0.01 * abs(b)):
                worse += 1
                diff = f"**{diff}**"
        else:
            diff = "-"
        raised = f"raised `NonFiniteLossError` in {len(errors)} of {len(runs)}"
        prev = f"{b:.2f}" if _finite(b) else (raised if errors else "not finite")
        now = f"{a:.2f}" if _finite(a) else "not finite"
        mean_clipped = sum(clipped) / len(runs)
        lines.append(f"| `{model}` | {len(runs)} | {mean_clipped:.1f} | {skipped} | {now} | {prev} "
                     f"| {diff} |")
    lr = f"Adam {config['lr']:g}" + (f" decaying to {config['final_lr']:g}" if config["final_lr"] else "")
    lines.append(f"\n{len(models)} model(s), {config['particles']} particle(s), {config['steps']} steps, "
                 f"{lr}, ELBO from {config['draws']} draws, mean over seeds. {same} of {len(models)} had no "
                 f"step clipped or skipped in any seed (the same runs as before); today's `fit` is below the "
                 f"previous one by more "
                 f"than noise (1 nat or 1%) on {worse}.")
    return "\n".join(lines)


def table_accuracy_change(before: str, after: str) -> str:
    """The posteriors whose result under the accuracy recipe changed between two runs of
    ``models.compare.accuracy`` (``docs/bench/<before>`` and ``<after>``), and the counts."""
    old = {r["model"]: r for r in _load(before)["rows"]}
    new = {r["model"]: r for r in _load(after)["rows"]}
    lines = ["| posterior | before: mean err / sd err | pass? | after: mean err / sd err | pass? |",
             "|---|---:|---|---:|---|"]
    for name, r in new.items():
        o = old.get(name)
        if o is None or (o["pass"], o["note"]) == (r["pass"], r["note"]):
            continue
        cells = []
        for x in (o, r):
            errs = f"{_err(x['mean_err'])} / {_err(x['sd_err'])}" + (" (diverged)" if x["note"] else "")
            cells += [errs, "**yes**" if x["pass"] else "no"]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    count = (f"\nBefore: {sum(r['pass'] for r in old.values())} of {len(old)} pass, "
             f"{sum(bool(r['note']) for r in old.values())} diverged; after: "
             f"{sum(r['pass'] for r in new.values())} of {len(new)} pass, "
             f"{sum(bool(r['note']) for r in new.values())} diverged.")
    return "\n".join(lines) + "\n" + count


TABLES: dict[str, Callable[..., str]] = {
    "autoguide_headline": table_autoguide_headline,
    "autoguide_by_dimension": table_autoguide_by_dimension,
    "autoguide_previous": table_autoguide_previous,
    "compare_elbo": table_compare_elbo,
    "defaults": table_defaults,
    "compare_khat": table_compare_khat,
    "compare_full": table_compare_full,
    "stl_cost": table_stl_cost,
    "resnet_vae_step": table_resnet_vae_step,
    "large_data": table_large_data,
    "large_data_schedules": table_large_data_schedules,
    "large_data_stability": table_large_data_stability,
    "gpu_resnet_vae": table_gpu_resnet_vae,
    "cpu_resnet_vae": table_cpu_resnet_vae,
    "posteriordb_fit": table_posteriordb_fit,
    "fit_guard": table_fit_guard,
    "accuracy_change": table_accuracy_change,
    "accuracy_posteriordb": table_accuracy_posteriordb,
    "posteriordb_guides": table_posteriordb_guides,
    "quality_time": table_quality_time,
    "stl_pays": table_stl_pays,
    "gpu_smoke": table_gpu_smoke,
    "gpu_resnet_vae_step": table_gpu_resnet_vae_step,
}


# ---- rewriting ----------------------------------------------------------------------------------


def render(text: str, where: str, problems: list[str]) -> str:
    """``text`` with every generated block and value rewritten; disagreements go to ``problems``."""

    def block(m: re.Match) -> str:
        name, args = m.group(2), m.group(3).split()
        new = TABLES[name](*args).rstrip("\n") + "\n"
        if new != m.group(4):
            problems.append(f"{where}: table {name} {' '.join(args)} differs from its result file")
        return m.group(1) + new + m.group(5)

    def inline(m: re.Match) -> str:
        new = value(m.group(2))
        if new != m.group(3):
            problems.append(f"{where}: {m.group(2)} says {m.group(3)!r}, its result file gives {new!r}")
        return m.group(1) + new + m.group(4)

    return VALUE.sub(inline, BLOCK.sub(block, text))


def bench_md() -> str:
    """``docs/bench/bench.md`` from ``cells.json`` and ``timing.json`` (the bench command's writer)."""
    sys.path.insert(0, str(ROOT))
    from models.bench.autoguide import write_tables

    old = (BENCH / "bench.md").read_text()
    machine = re.match(r"Machine: (.*?)\. Gap", old).group(1)
    tmp = BENCH / ".bench.md.new"
    try:
        write_tables(_load("cells.json"), tmp, machine)
        return tmp.read_text()
    finally:
        tmp.unlink(missing_ok=True)


def pages() -> list[Path]:
    found = [p for pattern in PAGES for p in ROOT.glob(pattern) if "_build" not in p.parts]
    return sorted(set(found))


def generate(check: bool = False) -> list[str]:
    """Rewrite (or, with ``check``, only compare) every page; returns the disagreements."""
    problems: list[str] = []
    for path in pages():
        text = path.read_text()
        new = render(text, str(path.relative_to(ROOT)), problems)
        if new != text and not check:
            path.write_text(new)
    new = bench_md()
    if new != (BENCH / "bench.md").read_text():
        problems.append("docs/bench/bench.md differs from docs/bench/cells.json")
        if not check:
            (BENCH / "bench.md").write_text(new)
    return problems


# ---- merging a new run --------------------------------------------------------------------------


def merge_compare(run: Path) -> int:
    """Rows of ``run/report.json`` replace those of the same model, backend and guide."""
    new = json.loads((run / "report.json").read_text())
    data = _load("compare.json")
    key = lambda r: (r["model"], r["backend"], r["guide"])  # noqa: E731
    for r in new["rows"]:
        r["source"] = str(run)
    fresh = {key(r) for r in new["rows"]}
    data["rows"] = [r for r in data["rows"] if key(r) not in fresh] + new["rows"]
    data.setdefault("runs", {})[str(run)] = new.get("settings", {})
    (BENCH / "compare.json").write_text(json.dumps(data, indent=1) + "\n")
    return len(new["rows"])


def merge_cells(run: Path) -> int:
    cells = _load("cells.json")
    new = json.loads((run / "cells.json").read_text())
    cells.update(new)
    (BENCH / "cells.json").write_text(json.dumps(cells, indent=1))
    if (run / "timing.json").exists():
        timing = _load("timing.json")
        timing.update(json.loads((run / "timing.json").read_text()))
        (BENCH / "timing.json").write_text(json.dumps(timing, indent=1))
    return len(new)


def merge_stl_cost(run: Path) -> int:
    data = _load("stl_cost.json")
    new = json.loads((run / "stl_cost.json").read_text())
    fresh = {(r["backend"], r["D"]) for r in new["rows"]}
    if all((r["backend"], r["D"]) in fresh for r in data["rows"]):  # every row new: its settings too
        data["settings"] = new["settings"]
    data["rows"] = [r for r in data["rows"] if (r["backend"], r["D"]) not in fresh] + new["rows"]
    (BENCH / "stl_cost.json").write_text(json.dumps(data, indent=1) + "\n")
    return len(new["rows"])


def merge_amortized(run: Path) -> int:
    """``run/amortized_*.json`` (the slow exact-evidence test with ``IAF_BENCH_OUT=run``)."""
    data = _load("amortized.json")
    new = [json.loads(p.read_text()) for p in sorted(run.glob("amortized_*.json"))]
    fresh = {(r["backend"], r["pattern"]) for r in new}
    data["rows"] = [r for r in data["rows"] if (r["backend"], r["pattern"]) not in fresh] + new
    (BENCH / "amortized.json").write_text(json.dumps(data, indent=1) + "\n")
    return len(new)


def merge_resnet_vae_step(run: Path) -> int:
    """``run/resnet_vae_step.json`` (``python -m models.bench.resnet_vae_step``) replaces ours."""
    data = json.loads((run / "resnet_vae_step.json").read_text())
    (BENCH / "resnet_vae_step.json").write_text(json.dumps(data, indent=1) + "\n")
    return len(data["rows"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 on a disagreement")
    parser.add_argument("--compare", default="", help="DIR[,DIR]: merge DIR/report.json into compare.json")
    parser.add_argument("--cells", default="", help="DIR[,DIR]: merge DIR/cells.json (and timing.json)")
    parser.add_argument("--stl-cost", default="", help="DIR[,DIR]: merge DIR/stl_cost.json")
    parser.add_argument("--amortized", default="", help="DIR: merge DIR/amortized_*.json")
    parser.add_argument("--resnet-vae-step", default="", help="DIR: take DIR/resnet_vae_step.json")
    args = parser.parse_args(argv)
    for option, merge in ((args.compare, merge_compare), (args.cells, merge_cells),
                          (args.stl_cost, merge_stl_cost), (args.amortized, merge_amortized),
                          (args.resnet_vae_step, merge_resnet_vae_step)):
        for run in filter(None, option.split(",")):
            print(f"merged {merge(Path(run))} rows of {run}")
    problems = generate(check=args.check)
    print("\n".join(problems) if problems else "every generated figure agrees with docs/bench/")
    if args.check:
        return 1 if problems else 0
    print(f"rewrote {len(problems)} generated parts" if problems else "nothing to rewrite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
