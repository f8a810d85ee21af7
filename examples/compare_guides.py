"""Compare guides on your own model: ELBO, importance-sampled log Z and PSIS k-hat, in NumPyro.

    python examples/compare_guides.py            # 3000 steps per guide
    python examples/compare_guides.py --smoke    # 100 steps, two guides (what the test suite runs)

The same numbers as ``python -m models.compare`` (which runs the registered benchmark models),
for a model you write yourself: a sparse regression with a global shrinkage scale (a funnel-like
posterior between ``tau`` and ``beta``). Higher ELBO and log Z are better; k-hat < 0.5 means the
importance weights (and so the guide's tails) are reliable, > 0.7 that the guide misses mass.
"""

import argparse

import arviz
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro import handlers
from numpyro.infer import autoguide
from numpyro.infer.util import log_density
from scipy.special import logsumexp

import numpyro_iaf


def model(X, y):
    tau = numpyro.sample("tau", dist.HalfCauchy(1.0))
    beta = numpyro.sample("beta", dist.Normal(0.0, tau).expand([X.shape[1]]).to_event(1))
    numpyro.sample("y", dist.Normal(X @ beta, 1.0), obs=y)


def log_weights(guide, params, args, num: int, seed: int) -> np.ndarray:
    """log p(x, z) - log q(z) for ``num`` draws z ~ q."""
    def one(key):
        log_q, trace = log_density(handlers.seed(guide, key), args, {}, params)
        latents = {name: site["value"] for name, site in trace.items() if site["type"] == "sample"}
        log_p, _ = log_density(handlers.substitute(model, data=latents), args, {}, {})
        return log_p - log_q
    keys = jax.random.split(jax.random.PRNGKey(seed), num)
    return np.asarray(jax.jit(jax.vmap(one))(keys), dtype=np.float64)


def main(smoke: bool = False) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    y = X @ np.array([2.0, -1.5, 0, 0, 0, 0, 0, 0]) + rng.normal(size=40)
    args = (jnp.asarray(X), jnp.asarray(y))
    steps, draws = (100, 200) if smoke else (3000, 2000)

    guides = {
        "AutoDiagonalNormal": autoguide.AutoDiagonalNormal(model),
        "AutoMultivariateNormal": autoguide.AutoMultivariateNormal(model),
        "AutoIAFNormal (NumPyro)": autoguide.AutoIAFNormal(model),
        "numpyro_iaf.AutoIAFNormal": numpyro_iaf.AutoIAFNormal(model),
    }
    if smoke:
        guides = {k: guides[k] for k in ("AutoDiagonalNormal", "numpyro_iaf.AutoIAFNormal")}
    print(f"{steps} steps of Adam(1e-2), 1 particle, seed 0; {draws} draws score each guide")
    print(f"{'guide':28s} {'ELBO':>9s} {'log Z (IS)':>16s} {'k-hat':>6s}")
    for name, guide in guides.items():
        try:
            result = numpyro_iaf.fit(model, guide, *args, num_steps=steps, seed=0, progress_bar=False)
        except numpyro_iaf.NonFiniteLossError as error:
            print(f"{name:28s} diverged: {error}")
            continue
        log_w = log_weights(guide, result.params, args, draws, seed=1)
        log_z = logsumexp(log_w) - np.log(draws)
        w = np.exp(log_w - log_w.max())
        se = np.sqrt(np.var(w) / draws) / np.mean(w)        # delta-method SE of log Z
        _, khat = arviz.psislw(log_w.copy())
        print(f"{name:28s} {log_w.mean():9.2f} {log_z:9.2f} +- {se:4.2f} {float(khat):6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    main(parser.parse_args().smoke)
