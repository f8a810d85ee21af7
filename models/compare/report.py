"""The comparison report: rows (one per model x guide x backend) to Markdown and JSON, and plots.

    row = summarize(results, model=..., guide=..., backend=..., spec=spec)
    write_report(rows, out_dir, settings)      # report.md, report.json
    plot_elbo(path, traces, log_evidence)      # ELBO traces per guide
    plot_marginals(path, draws, spec)          # 2-D marginals of z[0], z[1] vs the reference

A row's numbers are NaN where they cannot be computed: every seed diverged (``diverged_step``
set), the cell raised (``error`` set), or the model has no reference.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from models.compare.evidence import log_evidence_is, moment_errors, psis_khat

ROW_KEYS = ("model", "guide", "backend", "elbo_mean", "elbo_sd", "logZ_is", "logZ_se", "khat",
            "mean_z_err", "sd_z_err", "ms_per_step", "total_s", "diverged_step")
NAN = float("nan")


def nan_row(model: str, guide: str, backend: str, **extra) -> dict:
    row = dict.fromkeys(ROW_KEYS, NAN)
    row.update(model=model, guide=guide, backend=backend, diverged_step=None, error=None)
    row.update(extra)
    return row


def summarize(results: list, *, model: str, guide: str, backend: str, spec=None) -> dict:
    """One row from the per-seed ``CellResult``s of a cell (NaN seeds left out of the means).

    ELBO: mean of ``log w`` per seed, then mean and sd over seeds; IS log Z and k-hat per seed,
    then the mean (SE of the mean) and the worst k-hat; moment errors: mean over seeds; ms/step:
    median; total_s: sum. ``diverged_step``: the first divergence of any seed.
    """
    ref = None if spec is None else spec.reference
    row = nan_row(model, guide, backend, seeds=len(results), diverged_seeds=0,
                  log_evidence_ref=None if ref is None else ref.log_evidence,
                  reference=None if ref is None else ref.source)
    per_seed = []
    for r in results:
        s = {"elbo": NAN, "logZ_is": NAN, "logZ_se": NAN, "khat": NAN, "mean_z_err": NAN,
             "sd_z_err": NAN, "diverged_step": r.diverged_step}
        if r.log_w is not None:
            s["elbo"] = float(np.mean(r.log_w))
            s["logZ_is"], s["logZ_se"] = log_evidence_is(r.log_w)
            s["khat"] = psis_khat(r.log_w)
            if ref is not None:
                s["mean_z_err"], s["sd_z_err"] = moment_errors(r.z, ref.mean, ref.sd)
        per_seed.append(s)
    diverged = [s["diverged_step"] for s in per_seed if s["diverged_step"] is not None]
    row["diverged_seeds"] = len(diverged)
    row["diverged_step"] = min(diverged) if diverged else None
    ok = [s for s in per_seed if math.isfinite(s["elbo"])]
    if ok:
        elbos = np.array([s["elbo"] for s in ok])
        row["elbo_mean"] = float(elbos.mean())
        row["elbo_sd"] = float(elbos.std(ddof=1)) if len(ok) > 1 else NAN
        row["logZ_is"] = float(np.mean([s["logZ_is"] for s in ok]))
        row["logZ_se"] = float(np.sqrt(np.sum([s["logZ_se"] ** 2 for s in ok])) / len(ok))
        row["khat"] = float(np.max([s["khat"] for s in ok]))
        row["mean_z_err"] = float(np.mean([s["mean_z_err"] for s in ok]))
        row["sd_z_err"] = float(np.mean([s["sd_z_err"] for s in ok]))
    ms = [r.ms_per_step for r in results if math.isfinite(r.ms_per_step)]
    row["ms_per_step"] = float(np.median(ms)) if ms else NAN
    row["total_s"] = float(sum(r.total_s for r in results))
    row["per_seed"] = per_seed
    return row


# ---- writers -----------------------------------------------------------------------------------


def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None  # NaN/Inf -> null (strict JSON)
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    return x


def read_rows(path: Path) -> list[dict]:
    """Rows of a ``report.json`` with null numbers back as NaN."""
    rows = json.loads(Path(path).read_text())["rows"]
    return [{k: (NAN if v is None and k in ROW_KEYS[3:-1] else v) for k, v in r.items()}
            for r in rows]


def _fmt(x, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "NaN"
    return f"{x:.3g}" if abs(x) >= 1e5 else f"{x:.{digits}f}"


def markdown_table(rows: list[dict]) -> str:
    head = ("| model | backend | guide | ELBO | log Z (IS) | log Z (ref) | k-hat | mean err | sd err "
            "| ms/step | total s | note |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        elbo = _fmt(r["elbo_mean"]) + ("" if _isnan(r["elbo_sd"]) else f" ± {_fmt(r['elbo_sd'])}")
        logz = _fmt(r["logZ_is"]) + ("" if _isnan(r["logZ_se"]) else f" ± {_fmt(r['logZ_se'])}")
        note = []
        if r.get("diverged_step") is not None:
            note.append(f"diverged at step {r['diverged_step']}"
                        f" ({r.get('diverged_seeds', 1)}/{r.get('seeds', 1)} seeds)")
        if r.get("error"):
            note.append("error: " + str(r["error"]).replace("|", "/").replace("\n", " ")[:120])
        ref_z = "n/a" if r.get("log_evidence_ref") is None else _fmt(r["log_evidence_ref"])
        lines.append(
            f"| {r['model']} | {r['backend']} | {r['guide']} | {elbo} | {logz} "
            f"| {ref_z} | {_fmt(r['khat'])} | {_fmt(r['mean_z_err'], 3)} "
            f"| {_fmt(r['sd_z_err'], 3)} | {_fmt(r['ms_per_step'], 3)} | {_fmt(r['total_s'], 1)} "
            f"| {'; '.join(note)} |")
    return "\n".join(lines)


def _isnan(x) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


LEGEND = (
    "ELBO: mean of log p(x, z) - log q(z) over the evaluation draws, mean ± sd over seeds. "
    "log Z (IS): log mean exp of the same weights ± delta-method SE (averaged over seeds); "
    "log Z (ref): exact, where known (n/a: NUTS reference). k-hat: PSIS Pareto shape of the "
    "weights (worst seed; < 0.5 good, > 0.7 unreliable). mean err / sd err: RMS over the "
    "unconstrained coordinates of (mean_q - mean_ref) / sd_ref and of sd_q / sd_ref - 1. "
    "ms/step: compiled steps only; total s: fit + evaluation (+ compilation) summed over "
    "seeds. NaN: diverged, error, or no reference."
)


def write_report(rows: list[dict], out: Path, settings: dict | None = None) -> tuple[Path, Path]:
    """``out/report.md`` (settings, legend, table) and ``out/report.json``
    (``{"settings": ..., "rows": [...]}``, NaN as null)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(settings or {})
    md = ["# Guide comparison", ""]
    if settings:
        md += ["Settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()), ""]
    md += [markdown_table(rows), "", LEGEND, ""]
    md_path, json_path = out / "report.md", out / "report.json"
    md_path.write_text("\n".join(md))
    json_path.write_text(json.dumps(_json_safe({"settings": settings, "rows": rows}), indent=1) + "\n")
    return md_path, json_path


def merge_reports(dirs, out: Path) -> tuple[Path, Path]:
    """One report in ``out`` from the ``report.json`` of several runs (e.g. one per backend);
    the settings of each run are listed by directory."""
    rows, settings = [], {}
    for d in dirs:
        raw = json.loads((Path(d) / "report.json").read_text())
        rows += read_rows(Path(d) / "report.json")
        settings[str(d)] = "(" + ", ".join(f"{k}={v}" for k, v in raw["settings"].items()) + ")"
    return write_report(rows, out, settings)


def keep_other_backends(old: dict, rows: list[dict], runs: list[dict]) -> tuple[list[dict], list[dict]]:
    """``(rows, runs)`` of a rerun plus those of the result file ``old`` (``{"rows", "runs"}``)
    whose backend the rerun has no row of: rerunning one backend replaces only its own rows.
    A run of ``old`` without ``backends`` is NumPyro's (the files written before the field)."""
    mine = {r["backend"] for r in rows}
    kept_rows = [r for r in old["rows"] if r["backend"] not in mine]
    kept_runs = [r for r in old["runs"] if not mine & set(r.get("backends", ["numpyro"]))]
    return kept_rows + rows, kept_runs + runs


# ---- plots -------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_elbo(path: Path, traces: dict[str, list[np.ndarray]], log_evidence: float | None = None,
              title: str = "") -> Path:
    """ELBO (= -loss) per step, smoothed over ``steps / 50``, one colour per guide, one line
    per seed; the exact log evidence as a dashed line where known."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    lows, highs = [], []
    for i, (guide, seeds) in enumerate(traces.items()):
        for j, losses in enumerate(seeds):
            elbo = -np.asarray(losses, np.float64)
            elbo = elbo[np.isfinite(elbo)]
            if elbo.size == 0:
                continue
            w = max(1, elbo.size // 50)
            smooth = np.convolve(elbo, np.ones(w) / w, mode="valid")
            ax.plot(np.arange(smooth.size) + w, smooth, color=f"C{i}", lw=1,
                    label=guide if j == 0 else None)
            tail = smooth[smooth.size // 2:]
            lows.append(np.percentile(tail, 5))
            highs.append(smooth.max())
    if log_evidence is not None:
        ax.axhline(log_evidence, color="k", ls="--", lw=1, label="log Z (exact)")
        highs.append(log_evidence)
    if lows:  # a guide far below the others (unstable) may leave the axes: the table has it
        hi, mid = max(highs), float(np.median(lows))
        lo = max(min(lows), mid - 2 * (hi - mid))
        pad = 0.15 * (hi - lo) + 1e-3
        ax.set_ylim(lo - pad, hi + pad)
    ax.set(xlabel="step", ylabel="ELBO (smoothed)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def coordinate_names(sites) -> list[str]:
    """Names of the flat unconstrained coordinates, e.g. ``["mu", "tau", "theta[0]", ...]``."""
    names = []
    for name, shape in sites:
        n = int(np.prod(shape, dtype=int))
        names += [name] if shape == () else [f"{name}[{i}]" for i in range(n)]
    return names


def plot_marginals(path: Path, draws: dict[str, np.ndarray], spec, reference_draws=None,
                   title: str = "", max_points: int = 1000) -> Path:
    """One panel per guide: its draws of ``(z[0], z[1])`` (unconstrained) over the reference:
    exact draws (grey) where given, else the 1, 2, 3 sd ellipses of the reference mean and cov."""
    plt = _pyplot()
    ref = spec.reference
    names = coordinate_names(spec.sites)
    n = max(1, len(draws))
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.6), squeeze=False, sharex=True, sharey=True)
    box = []
    if reference_draws is not None:
        rd = np.asarray(reference_draws)[:, :2]
        box.append(np.percentile(rd, [0.5, 99.5], axis=0))
    elif ref is not None:
        box.append(np.stack([ref.mean[:2] - 4 * ref.sd[:2], ref.mean[:2] + 4 * ref.sd[:2]]))
    for i, (guide, z) in enumerate(draws.items()):
        ax = axes[0, i]
        if reference_draws is not None:
            ax.scatter(rd[:max_points, 0], rd[:max_points, 1], s=2, c="0.6", label="exact")
        elif ref is not None:
            _ellipses(ax, ref)
        if z is not None and len(z):
            z = np.asarray(z)[:max_points, :2]
            ax.scatter(z[:, 0], z[:, 1], s=2, color=f"C{i}", alpha=0.6, label=guide)
            box.append(np.percentile(z, [1, 99], axis=0))
        ax.set(title=guide, xlabel=names[0], ylabel=names[1] if i == 0 else None)
    if box:  # the reference's box, widened by the guides' draws up to one box width each way
        lo, hi = np.min([b[0] for b in box], 0), np.max([b[1] for b in box], 0)
        if reference_draws is not None or ref is not None:
            width = box[0][1] - box[0][0]
            lo, hi = np.maximum(lo, box[0][0] - width), np.minimum(hi, box[0][1] + width)
        pad = 0.05 * (hi - lo) + 1e-6
        lo, hi = lo - pad, hi + pad
        axes[0, 0].set_xlim(lo[0], hi[0])
        axes[0, 0].set_ylim(lo[1], hi[1])
        for i, (guide, z) in enumerate(draws.items()):
            if z is not None and len(z):
                z = np.asarray(z)[:max_points, :2]
                out = int(np.sum(np.any((z < lo) | (z > hi), axis=1)))
                if out:
                    axes[0, i].set_title(f"{guide} ({out}/{len(z)} outside)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _ellipses(ax, ref) -> None:
    cov = ref.cov[:2, :2] if ref.cov is not None else np.diag(ref.sd[:2] ** 2)
    vals, vecs = np.linalg.eigh(cov)
    t = np.linspace(0, 2 * np.pi, 100)
    circle = np.stack([np.cos(t), np.sin(t)])
    for k in (1, 2, 3):
        pts = ref.mean[:2, None] + vecs @ (k * np.sqrt(np.maximum(vals, 0))[:, None] * circle)
        ax.plot(pts[0], pts[1], color="k", lw=0.8, alpha=0.7, label="reference" if k == 1 else None)
