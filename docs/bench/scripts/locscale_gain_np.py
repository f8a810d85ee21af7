"""Ours with slower loc/scale: loc = loc0 + c * raw_loc, scale = softplus(u0 + c * raw_u) (raw start 0)."""
import sys, jax, jax.numpy as jnp, numpyro, numpy as np
import numpyro.distributions as dist
from numpyro.distributions.transforms import AffineTransform
from numpyro.infer import SVI, Trace_ELBO, autoguide
import numpyro_iaf, numpyro_iaf.autoguide as ag
from models.api import bind
from models.linear_gaussian import linear_gaussian_model, linear_gaussian_data, linear_gaussian_reference
D, S, budget = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lr, P, steps = {"hot": (1e-2, 1, 2000), "gentle": (3e-3, 8, 5000)}[budget]
model = bind(linear_gaussian_model, "numpyro")
y = jnp.asarray(linear_gaussian_data(D, 0.1), dtype=jnp.float32)
logZ = float(linear_gaussian_reference(D, 0.1).log_evidence)
class Slow(numpyro_iaf.AutoIAFNormal):
    c = 1.0
    def _get_posterior(self):
        fp = numpyro.param(f"{self.prefix}_flow")
        if fp is None:
            fp = numpyro.param(f"{self.prefix}_flow", self._flow.init_params(numpyro.prng_key()))
        shrink = ag.initial_contraction(self.num_flows, self.gated, self.gate_bias)
        rl = numpyro.param(f"{self.prefix}_rawloc", jnp.zeros(self.latent_dim))
        ru = numpyro.param(f"{self.prefix}_rawscale", jnp.zeros(self.latent_dim))
        u0 = jnp.log(jnp.expm1(self._init_scale / shrink))
        loc = self._init_latent + self.c * rl
        scale = jax.nn.softplus(u0 + self.c * ru)
        return dist.TransformedDistribution(self.get_base_dist(), [self._flow.with_params(fp), AffineTransform(loc, scale)])
for c in map(float, sys.argv[4].split(",")):
    g = Slow(model); g.c = c
    svi = SVI(model, g, numpyro.optim.Adam(lr), Trace_ELBO(num_particles=P))
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=steps))
    ev = jax.jit(lambda p, k: Trace_ELBO(num_particles=1000).loss(k, p, model, g, y, 0.1))
    gaps = []
    for seed in range(S):
        st, _ = run(svi.init(jax.random.PRNGKey(seed), y, 0.1))
        gaps.append(logZ + float(ev(svi.get_params(st), jax.random.PRNGKey(seed + 1))))
    print(D, budget, "c", c, round(np.mean(gaps), 4), "+-", round(np.std(gaps) / np.sqrt(S), 4), [round(x, 3) for x in gaps], flush=True)
