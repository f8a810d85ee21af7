"""Eight schools in Pyro with ``AutoIAFNormal``: fit, then read the posterior.

    python examples/eight_schools_pyro.py            # 3000 steps, about a minute on one CPU core
    python examples/eight_schools_pyro.py --smoke    # 100 steps (what the test suite runs)

The non-centred eight schools model (Rubin 1981); NUTS gives E[mu] ~ 4.4 and E[tau] ~ 3.6.
"""

import argparse

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Predictive, Trace_ELBO

from pyro_iaf import AutoIAFNormal, fit

y = torch.tensor([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
sigma = torch.tensor([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def model(sigma, y=None):
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", len(sigma)):
        theta_raw = pyro.sample("theta_raw", dist.Normal(0.0, 1.0))
        pyro.deterministic("theta", mu + tau * theta_raw)
        pyro.sample("y", dist.Normal(mu + tau * theta_raw, sigma), obs=y)


def main(smoke: bool = False) -> None:
    torch.set_num_threads(1)                           # a small model: more threads only add overhead
    pyro.clear_param_store()
    torch.manual_seed(0)
    guide = AutoIAFNormal(model)                       # defaults: one affine IAF step, skip term, STL
    steps = 100 if smoke else 3000
    loss = Trace_ELBO(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    result = fit(model, guide, sigma, y, num_steps=steps, loss=loss, seed=0, progress_bar=False)
    last = result.losses[-100:]
    print(f"steps {steps}: ELBO (mean of the last 100 steps) {-sum(last) / len(last):.2f}")

    big = Trace_ELBO(num_particles=1000, vectorize_particles=True, max_plate_nesting=1)
    elbo = big.loss(model, guide, sigma, y)
    print(f"ELBO (1000 draws): {-elbo:.2f}")
    median = guide.median(sigma, y)                    # Monte Carlo, 4000 draws, seed 0
    interval = guide.quantiles([0.05, 0.95], sigma, y)  # {site: [2, ...]}
    for name in ("mu", "tau"):
        low, high = interval[name].tolist()
        print(f"{name:3s}: median {median[name]:.2f}, 90% interval [{low:.2f}, {high:.2f}]")

    draws = Predictive(model, guide=guide, num_samples=2000, return_sites=["theta"], parallel=True)(sigma)
    theta = draws["theta"]
    print("E[theta] by school:", " ".join(f"{v:.1f}" for v in theta.mean(0).tolist()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    main(parser.parse_args().smoke)
