import sys, time, statistics, jax, jax.numpy as jnp, numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import AffineTransform
from numpyro.infer import SVI, Trace_ELBO, autoguide
import numpyro_iaf, numpyro_iaf.nn as nnm, numpyro_iaf.autoguide as ag
from models.api import bind
from models.linear_gaussian import linear_gaussian_model, linear_gaussian_data
D = int(sys.argv[1]); N = 200; SKIP = sys.argv[2] == "skip"
model = bind(linear_gaussian_model, "numpyro")
y = jnp.asarray(linear_gaussian_data(D, 0.1), dtype=jnp.float32)
def mk(guide):
    svi = SVI(model, guide, numpyro.optim.Adam(1e-3), Trace_ELBO())
    st = svi.init(jax.random.PRNGKey(0), y, 0.1)
    f = jax.jit(lambda s, svi=svi: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=N))
    jax.block_until_ready(f(st)); return f, st
orig_ml = nnm._masked_linear
def ml_in(x, w, mask, gain): return nnm._linear(x, jnp.where(mask, w * gain, 0.0))
def ml_nogain(x, w, mask, gain): return nnm._linear(x, jnp.where(mask, w, 0.0))
class LS(numpyro_iaf.AutoIAFNormal):  # loc and scale in one param
    def _get_posterior(self):
        fp = numpyro.param(f"{self.prefix}_flow")
        if fp is None:
            fp = numpyro.param(f"{self.prefix}_flow", self._flow.init_params(numpyro.prng_key()))
        shrink = ag.initial_contraction(self.num_flows, self.gated, self.gate_bias)
        ls = numpyro.param(f"{self.prefix}_ls", jnp.stack([self._init_latent, jnp.full(self.latent_dim, jnp.log(jnp.expm1(self._init_scale / shrink)))]))
        return dist.TransformedDistribution(self.get_base_dist(), [self._flow.with_params(fp), AffineTransform(ls[0], jax.nn.softplus(ls[1]))])
class NoLS(numpyro_iaf.AutoIAFNormal):
    def _get_posterior(self):
        fp = numpyro.param(f"{self.prefix}_flow")
        if fp is None:
            fp = numpyro.param(f"{self.prefix}_flow", self._flow.init_params(numpyro.prng_key()))
        return dist.TransformedDistribution(self.get_base_dist(), [self._flow.with_params(fp)])
run = {}
run["builtin"] = mk(autoguide.AutoIAFNormal(model))
run["cur"] = mk(numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D], skip=SKIP))
run["ls"] = mk(LS(model, num_flows=3, hidden_dims=[D, D], skip=SKIP))
run["nols"] = mk(NoLS(model, num_flows=3, hidden_dims=[D, D], skip=SKIP))
nnm._masked_linear = ml_in
run["gain_in"] = mk(numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D], skip=SKIP))
run["ls_gain_in"] = mk(LS(model, num_flows=3, hidden_dims=[D, D], skip=SKIP))
nnm._masked_linear = ml_nogain
run["nogain"] = mk(numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D], skip=SKIP))
nnm._masked_linear = orig_ml
res = {k: [] for k in run}
for r in range(9):
    for k, (f, st) in run.items():
        t = time.process_time(); jax.block_until_ready(f(st)); res[k].append((time.process_time()-t)/N*1e3)
b = statistics.median(res["builtin"])
for k, v in res.items(): print(D, sys.argv[2], k, round(statistics.median(v), 4), "ratio", round(statistics.median(v)/b, 2))
