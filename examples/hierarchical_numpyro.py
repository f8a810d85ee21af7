"""A hierarchical model with one latent per unit, in NumPyro with ``AutoAmortizedIAF`` and minibatches.

    python examples/hierarchical_numpyro.py            # N=2000 units, batches of 100, 4000 steps
    python examples/hierarchical_numpyro.py --smoke    # N=200, 100 steps (what the test suite runs)

y_i ~ N(theta_i, 1), theta_i ~ N(mu, 1), mu ~ N(0, 10): the posterior of mu is exact (y_i ~ N(mu, 2)
marginally), so the example prints the fitted E[mu | y] beside the exact one. An ``AutoIAFNormal``
would need one parameter block per unit (it refuses local latents in a subsampled plate); the
amortized guide's encoder maps each y_i to its theta_i posterior, so its size does not grow with N.
``condition_on_globals=True`` lets each theta_i's posterior mean move with the draw of mu (given mu,
theta_i's posterior mean is (mu + y_i) / 2), and ``average_last`` returns the mean of the last
iterates rather than the last, whose minibatch noise would move E[mu] by a fair part of a sd.
"""

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from numpyro_iaf import AutoAmortizedIAF, fit


def model(y, subsample_size=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))                   # global
    with numpyro.plate("units", y.shape[0], subsample_size=subsample_size) as idx:
        theta = numpyro.sample("theta", dist.Normal(mu, 1.0))           # local: one per unit
        numpyro.sample("y", dist.Normal(theta, 1.0), obs=y[idx])


def main(smoke: bool = False) -> None:
    n, batch, steps = (200, 50, 100) if smoke else (2000, 100, 4000)
    rng = np.random.default_rng(0)
    theta_true = 3.0 + rng.normal(size=n)
    y = jnp.asarray(theta_true + rng.normal(size=n))

    guide = AutoAmortizedIAF(model, condition_on_globals=True)  # encoder input: y_i, found by the guide
    result = fit(model, guide, y, batch, num_steps=steps, seed=0, average_last=steps // 2,
                 progress_bar=False)
    print(f"N={n}, batches of {batch}, {steps} steps: "
          f"loss (mean of the last 100 steps) {np.mean(result.losses[-100:]):.1f}")

    draws = guide.sample_posterior(jax.random.PRNGKey(1), result.params, y, None, sample_shape=(1000,))
    post_prec = 1 / 10.0**2 + n / 2.0                   # exact posterior of mu
    exact_mean, exact_sd = float(y.sum()) / 2.0 / post_prec, post_prec**-0.5
    mu = draws["mu"]
    print(f"E[mu | y]: fitted {float(mu.mean()):.4f} +- {float(mu.std()):.4f} (sd), "
          f"exact {exact_mean:.4f} +- {exact_sd:.4f}")
    rms = float(jnp.sqrt(jnp.mean((draws["theta"].mean(0) - theta_true) ** 2)))
    print(f"theta draws: {tuple(draws['theta'].shape)}; RMS error of E[theta_i | y] vs truth: {rms:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    main(parser.parse_args().smoke)
