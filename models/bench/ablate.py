"""Ablation of AutoIAFNormal's recipe on the linear-Gaussian model (NumPyro, D=100, Adam 1e-2, 2000 steps).

python -m models.bench.ablate

Every row varies the gated recipe the ablation was made on (two gated steps, ``gate_bias=2``, no
path-derivative gradient: ``GATED``), not today's default, so that its documented figures stay
what this command prints.
"""

import jax
import jax.numpy as jnp
from numpyro.infer import Trace_ELBO

import numpyro_iaf
from models.api import bind
from models.targets.linear_gaussian import (
    linear_gaussian_data,
    linear_gaussian_model,
    linear_gaussian_reference,
)

#: the recipe under ablation: the default before 2026-11-30
GATED = {"num_flows": 2, "gated": True, "gate_bias": 2.0, "stl": False}


def main() -> None:
    m = bind(linear_gaussian_model, "numpyro")
    for D in (100,):
        y = jnp.asarray(linear_gaussian_data(D), dtype=jnp.float32)
        logz = linear_gaussian_reference(D).log_evidence
        for name, kw in [
            ("gated recipe (2 flows, skip; the default before 2026-11-30)", {}),
            ("no skip", {"skip": False}),
            ("1 flow", {"num_flows": 1}),
            ("4 flows", {"num_flows": 4}),
            ("affine", {"gated": False}),
        ]:
            g = numpyro_iaf.AutoIAFNormal(m, **{**GATED, **kw})
            r = numpyro_iaf.fit(m, g, y, num_steps=2000, seed=0, progress_bar=False)
            elbo = -float(Trace_ELBO(num_particles=1000).loss(jax.random.PRNGKey(1), r.params, m, g, y))
            print(f"D={D} {name}: gap {logz - elbo:.2f}", flush=True)


if __name__ == "__main__":
    main()
