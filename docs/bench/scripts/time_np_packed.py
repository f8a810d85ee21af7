import sys, time, statistics, jax, jax.numpy as jnp, numpyro
from jax.flatten_util import ravel_pytree
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import AffineTransform
from numpyro.infer import SVI, Trace_ELBO, autoguide
import numpyro_iaf, numpyro_iaf.autoguide as ag
from models.api import bind
from models.linear_gaussian import linear_gaussian_model, linear_gaussian_data
D = int(sys.argv[1]); N = 200
model = bind(linear_gaussian_model, "numpyro")
y = jnp.asarray(linear_gaussian_data(D, 0.1), dtype=jnp.float32)
BAR = lambda x: x
class Packed(numpyro_iaf.AutoIAFNormal):
    def _get_posterior(self):
        flat, unravel = ravel_pytree(self._flow.params)
        fp = numpyro.param(f"{self.prefix}_flow")
        if fp is None:
            fp = numpyro.param(f"{self.prefix}_flow", ravel_pytree(self._flow.init_params(numpyro.prng_key()))[0])
        shrink = ag.initial_contraction(self.num_flows, self.gated, self.gate_bias)
        loc = numpyro.param(f"{self.prefix}_loc", self._init_latent)
        scale = numpyro.param(f"{self.prefix}_scale", jnp.full(self.latent_dim, self._init_scale / shrink), constraint=constraints.softplus_positive)
        return dist.TransformedDistribution(self.get_base_dist(), [self._flow.with_params(BAR(unravel(fp))), AffineTransform(loc, scale)])
def mk(guide):
    svi = SVI(model, guide, numpyro.optim.Adam(1e-3), Trace_ELBO())
    st = svi.init(jax.random.PRNGKey(0), y, 0.1)
    f = jax.jit(lambda s, svi=svi: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=N))
    jax.block_until_ready(f(st)); return f, st
run = {}
run["builtin"] = mk(autoguide.AutoIAFNormal(model))
run["skip"] = mk(numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D]))
run["noskip"] = mk(numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D], skip=False))
run["pskip"] = mk(Packed(model, num_flows=3, hidden_dims=[D, D]))
run["pnoskip"] = mk(Packed(model, num_flows=3, hidden_dims=[D, D], skip=False))
BAR = jax.lax.optimization_barrier
run["bskip"] = mk(Packed(model, num_flows=3, hidden_dims=[D, D]))
run["bnoskip"] = mk(Packed(model, num_flows=3, hidden_dims=[D, D], skip=False))
run["bdefault"] = mk(Packed(model))
BAR = lambda x: x
run["pdefault"] = mk(Packed(model))
run["default"] = mk(numpyro_iaf.AutoIAFNormal(model))
res = {k: [] for k in run}
for r in range(9):
    for k, (f, st) in run.items():
        t = time.process_time(); jax.block_until_ready(f(st)); res[k].append((time.process_time()-t)/N*1e3)
b = statistics.median(res["builtin"])
for k, v in res.items(): print(D, k, round(statistics.median(v), 4), "ratio", round(statistics.median(v)/b, 2))
