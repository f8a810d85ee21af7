"""The figure of docs/guide/flow.md: what each gated IAF step does to a fitted 2-D posterior.

    python docs/figures/flow_steps.py     # writes docs/figures/flow_steps.png (about 20 s on a CPU)

NumPyro ``AutoIAFNormal`` (defaults: 2 gated steps with skip term) fitted for 3000 steps of
Adam(1e-2) to a banana: a ~ N(0, 1), b ~ N(a^2, 0.5^2). Panels: eps ~ N(0, I); after step 1;
after step 2 (the flow's output u); z = loc + scale * u beside exact draws of the target.
"""

from pathlib import Path

import jax
import matplotlib
import numpy as np
import numpyro
import numpyro.distributions as dist

from numpyro_iaf import IAF, AutoIAFNormal, fit

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def banana():
    a = numpyro.sample("a", dist.Normal(0.0, 1.0))
    numpyro.sample("b", dist.Normal(a**2, 0.5))


def main() -> None:
    guide = AutoIAFNormal(banana, num_flows=2, gated=True)  # the paper's gated step, two of them
    result = fit(banana, guide, num_steps=3000, seed=0, progress_bar=False)
    steps = result.params["auto_flow"]
    eps = jax.random.normal(jax.random.PRNGKey(1), (2000, 2))
    u1 = IAF(2, num_flows=1).with_params(steps[:1])(eps)          # the guide's flow has the defaults
    u2 = IAF(2).with_params(steps)(eps)
    z = result.params["auto_loc"] + result.params["auto_scale"] * u2
    a = np.random.default_rng(0).normal(size=2000)
    exact = np.stack([a, a**2 + 0.5 * np.random.default_rng(1).normal(size=2000)], -1)

    panels = [("eps ~ N(0, I)", eps), ("after gated step 1", u1), ("after step 2 (order reversed)", u2),
              ("z = loc + scale * u  (grey: exact)", z)]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.3))
    colour = np.asarray(eps[:, 0])
    for ax, (title, pts) in zip(axes, panels):
        if title.startswith("z"):
            ax.scatter(exact[:, 0], exact[:, 1], s=2, c="0.8")
        pts = np.asarray(pts)
        ax.scatter(pts[:, 0], pts[:, 1], s=2, c=colour, cmap="viridis")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("dim 1 (a)")
    axes[0].set_ylabel("dim 2 (b)")
    fig.tight_layout()
    out = Path(__file__).with_suffix(".png")
    fig.savefig(out, dpi=90)
    elbo = -np.mean(result.losses[-200:])
    print(f"wrote {out}; ELBO (mean of the last 200 steps) {elbo:.3f} (log Z = 0)")


if __name__ == "__main__":
    main()
