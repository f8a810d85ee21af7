import sys, time, statistics, jax, jax.numpy as jnp, numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO, autoguide
import numpyro_iaf
from models.api import bind
from models.linear_gaussian import linear_gaussian_model, linear_gaussian_data
D = int(sys.argv[1]); N = 200
model = bind(linear_gaussian_model, "numpyro")
y = jnp.asarray(linear_gaussian_data(D, 0.1), dtype=jnp.float32)
class NoAffine(numpyro_iaf.AutoIAFNormal):
    def _get_posterior(self):
        flow_params = numpyro.param(f"{self.prefix}_flow")
        if flow_params is None:
            flow_params = numpyro.param(f"{self.prefix}_flow", self._flow.init_params(numpyro.prng_key()))
        return dist.TransformedDistribution(self.get_base_dist(), [self._flow.with_params(flow_params)])
class BuiltinWithOurFlow(autoguide.AutoIAFNormal):
    def _get_posterior(self):
        if not hasattr(self, "_ourflow"):
            self._ourflow = numpyro_iaf.IAF(self.latent_dim, num_flows=3, hidden_dims=[D, D], skip=False)
        flow_params = numpyro.param(f"{self.prefix}_flow")
        if flow_params is None:
            flow_params = numpyro.param(f"{self.prefix}_flow", self._ourflow.init_params(numpyro.prng_key()))
        return dist.TransformedDistribution(self.get_base_dist(), [self._ourflow.with_params(flow_params)])
class OursWithBuiltinFlow(numpyro_iaf.AutoIAFNormal):
    _get_posterior = autoguide.AutoIAFNormal._get_posterior
    def __init__(self, *a, **k):
        super().__init__(*a, **k); self.nonlinearity = __import__("jax").example_libraries.stax.Elu; self._hidden_dims=[D, D]; self.skip_connections=False
guides = {
 "builtin": lambda: autoguide.AutoIAFNormal(model),
 "ours_bs_noskip": lambda: numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D], skip=False),
 "noaffine_noskip": lambda: NoAffine(model, num_flows=3, hidden_dims=[D, D], skip=False),
 "builtin_ourflow": lambda: BuiltinWithOurFlow(model),
}
run = {}
for k, g in guides.items():
    svi = SVI(model, g(), numpyro.optim.Adam(1e-3), Trace_ELBO())
    st = svi.init(jax.random.PRNGKey(0), y, 0.1)
    f = jax.jit(lambda s, svi=svi: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=N))
    jax.block_until_ready(f(st)); run[k] = (f, st)
res = {k: [] for k in guides}
for r in range(9):
    for k, (f, st) in run.items():
        t = time.process_time(); jax.block_until_ready(f(st)); res[k].append((time.process_time()-t)/N*1e3)
b = statistics.median(res["builtin"])
for k, v in res.items(): print(D, k, round(statistics.median(v), 4), "ratio", round(statistics.median(v)/b, 2))
