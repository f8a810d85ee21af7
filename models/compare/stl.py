"""Path-derivative ("sticking the landing") ELBO for NumPyro ``AutoContinuous`` guides.

    from models.compare.stl import PathDerivativeELBO
    fit(model, guide, *args, loss=PathDerivativeELBO(num_particles=8))

Roeder, Wu & Duvenaud 2017 (arXiv:1703.09194); Agrawal, Sheldon & Domke 2020 use it for flows.
The ELBO's value is unchanged; its gradient drops the score term ``d/dtheta log q_theta(z)`` at
fixed ``z``, which has mean zero and vanishes (with its variance) when ``q`` equals the
posterior. ``log q`` of the guide's latent ``z`` is evaluated with the parameters under
``stop_gradient``, so it needs the flow's inverse: for an IAF, ``D`` sequential passes of each
MADE per particle (``IAF._inverse``), i.e. each step costs about ``D`` times a plain one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from numpyro.handlers import replay, seed
from numpyro.infer.elbo import ELBO
from numpyro.infer.util import log_density


class PathDerivativeELBO(ELBO):
    """``Trace_ELBO`` with the path-derivative gradient of the guide's auxiliary latent site."""

    def loss_with_mutable_state(self, rng_key, param_map, model, guide, *args, **kwargs):
        def one(key):
            guide_logp, guide_tr = log_density(seed(guide, key), args, kwargs, param_map)
            model_logp, _ = log_density(replay(model, guide_tr), args, kwargs, param_map)
            site = _auxiliary_site(guide_tr)
            z = site["value"]
            live = jnp.sum(site["fn"].log_prob(z, site["intermediates"]))
            frozen = guide.get_posterior(jax.lax.stop_gradient(param_map)).log_prob(z)
            return guide_logp - live + jnp.sum(frozen) - model_logp

        keys = jax.random.split(rng_key, self.num_particles)
        return {"loss": jnp.mean(jax.vmap(one)(keys)), "mutable_state": None}


def _auxiliary_site(trace: dict) -> dict:
    for site in trace.values():
        if site["type"] == "sample" and (site.get("infer") or {}).get("is_auxiliary"):
            return site
    raise ValueError("PathDerivativeELBO needs an AutoContinuous guide (an auxiliary latent site)")
