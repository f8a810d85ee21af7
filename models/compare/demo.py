"""A small guide comparison (about 3 minutes on 2 CPU cores): ``make demo``.

    python -m models.compare.demo --out results/demo

Models and their data:
  * ``linear_gaussian`` (D = 50): y simulated from the model itself (``default_rng(0)``,
    A = 0.1 * tril(ones)); exact posterior and log evidence.
  * ``banana`` (b = 0.1, sigma = 10): a 2-D target density, no data; exact moments, log Z = 0.
  * ``eight_schools``: the embedded SAT-coaching effects of Rubin (1981), centered
    parametrization; reference from NUTS (``models/targets/references/eight_schools.json``).
Guides: NumPyro's AutoDiagonalNormal and AutoIAFNormal, and ours (``numpyro_iaf.AutoIAFNormal``),
1000 steps of Adam(1e-2), one seed, in NumPyro; plus Pyro on the banana. Everything else as in
``python -m models.compare`` (which this calls).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from models.compare.harness import run
from models.compare.report import markdown_table, write_report

MODELS = "linear_gaussian:D=50,banana,eight_schools"
GUIDES = "diagonal,iaf_builtin,iaf"
DATA = {
    "linear_gaussian_D50": "simulated: y = A x + noise, x ~ N(0, I_50), default_rng(0)",
    "banana": "none (2-D target density, b = 0.1, sigma = 10)",
    "eight_schools": "embedded: Rubin (1981) SAT coaching, 8 schools",
}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results/demo")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, default=1)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    t0 = time.perf_counter()
    common = dict(guides=GUIDES, steps=args.steps, seeds=args.seeds, eval_samples=1000)
    rows = run(MODELS, backend="numpyro", out=out, **common)
    rows += run("banana", backend="pyro", out=out / "pyro", **common)
    settings = {"steps": args.steps, "lr": 0.01, "particles": 1, "seeds": args.seeds,
                "eval_samples": 1000, "init": "median"}
    md, js = write_report(rows, out, settings)  # both backends in one report
    print("\n" + markdown_table(rows) + "\n")
    print("Data: " + "; ".join(f"{k}: {v}" for k, v in DATA.items()))
    print(f"Report: {md} and {js}")
    print(f"Plots: {', '.join(sorted(str(p) for p in out.glob('*.png')))}, "
          f"{', '.join(sorted(str(p) for p in (out / 'pyro').glob('*.png')))}")
    print(f"Took {time.perf_counter() - t0:.0f} s")
    return rows


if __name__ == "__main__":
    main()
