"""Eight schools (Rubin 1981), centered parametrization.

    mu ~ N(0, 5)                       latent "mu", shape []
    tau ~ HalfCauchy(5)                latent "tau", shape [], positive (unconstrained: log tau)
    theta_j ~ N(mu, tau), j < 8        latent "theta", shape [8] (plate "schools")
    y_j ~ N(theta_j, sigma_j)          observed

Reference: NUTS (see ``models/targets/make_references.py``; sampled non-centered, summarized in the
centered coordinates ``(mu, log tau, theta)``).
"""

from __future__ import annotations

import numpy as np

from models.api import dist, pyro
from models.spec import ModelSpec, build_spec, data_digest, load_reference

Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
SITES = (("mu", ()), ("tau", ()), ("theta", (8,)))


def eight_schools_model(sigma, y) -> None:
    """``sigma [J]`` known standard errors, ``y [J]`` observed effects."""
    mu = pyro.sample("mu", dist.Normal(0.0, 5.0))
    tau = pyro.sample("tau", dist.HalfCauchy(5.0))
    with pyro.plate("schools", y.shape[-1]):
        theta = pyro.sample("theta", dist.Normal(mu, tau))
        pyro.sample("y", dist.Normal(theta, sigma), obs=y)


def eight_schools() -> ModelSpec:
    """Spec for the current backend: ``model(sigma, y)``, latents mu, tau, theta [8]."""
    digest = data_digest(SIGMA, Y)
    ref = load_reference("eight_schools", {}, digest)
    return build_spec("eight_schools", eight_schools_model, (SIGMA, Y), {}, SITES, ref, {},
                      digest)
