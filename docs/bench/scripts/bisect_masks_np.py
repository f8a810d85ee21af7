import sys, time, statistics, jax, jax.numpy as jnp, numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO, autoguide
import numpyro_iaf, numpyro_iaf.nn as nnmod
from models.api import bind
from models.linear_gaussian import linear_gaussian_model, linear_gaussian_data
D = int(sys.argv[1]); N = 200
model = bind(linear_gaussian_model, "numpyro")
y = jnp.asarray(linear_gaussian_data(D, 0.1), dtype=jnp.float32)
orig_apply = nnmod.MADE.apply
def nomask_apply(self, params, z, h=None):
    x = z
    for l in range(len(self.hidden_masks)):
        x = jax.nn.elu(nnmod._linear(x, params[f"hidden_weights.{l}"]) + params[f"hidden_biases.{l}"])
    out = nnmod._linear(x, params["output_weight"]) + params["output_bias"]
    return jnp.split(out, 2, axis=-1)
def relu_apply(self, params, z, h=None):
    x = z
    for l, mask in enumerate(self.hidden_masks):
        x = jax.nn.relu(nnmod._linear(x, params[f"hidden_weights.{l}"] * mask) + params[f"hidden_biases.{l}"])
    out = nnmod._linear(x, params["output_weight"] * self.output_mask) + params["output_bias"]
    return jnp.split(out, 2, axis=-1)
import math
def where_apply(self, params, z, h=None):
    x = z
    for l, mask in enumerate(self.hidden_masks):
        w = jnp.where(mask > 0, params[f"hidden_weights.{l}"], 0.0)
        x = jax.nn.elu(nnmod._linear(x, w) * (1 / math.sqrt(w.shape[1])) + params[f"hidden_biases.{l}"])
    w = jnp.where(self.output_mask > 0, params["output_weight"], 0.0)
    out = nnmod._linear(x, w) * (1 / math.sqrt(w.shape[1])) + params["output_bias"]
    return jnp.split(out, 2, axis=-1)
def gainonly_apply(self, params, z, h=None):
    x = z
    for l in range(len(self.hidden_masks)):
        w = params[f"hidden_weights.{l}"]
        x = jax.nn.elu(nnmod._linear(x, w) * (1 / math.sqrt(w.shape[1])) + params[f"hidden_biases.{l}"])
    w = params["output_weight"]
    out = nnmod._linear(x, w) * (1 / math.sqrt(w.shape[1])) + params["output_bias"]
    return jnp.split(out, 2, axis=-1)
def make(apply):
    class G(autoguide.AutoIAFNormal):
        def _get_posterior(self):
            if not hasattr(self, "_ourflow"):
                self._ourflow = numpyro_iaf.IAF(self.latent_dim, num_flows=3, hidden_dims=[D, D], skip=False)
            p = numpyro.param(f"{self.prefix}_flow")
            if p is None:
                p = numpyro.param(f"{self.prefix}_flow", self._ourflow.init_params(numpyro.prng_key()))
            return dist.TransformedDistribution(self.get_base_dist(), [self._ourflow.with_params(p)])
    return G
variants = {"builtin": (autoguide.AutoIAFNormal, orig_apply), "ourflow": (make(orig_apply), orig_apply),
            "nomask": (make(nomask_apply), nomask_apply), "where": (make(where_apply), where_apply), "gainonly": (make(gainonly_apply), gainonly_apply)}
run = {}
for k, (G, apply) in variants.items():
    nnmod.MADE.apply = apply
    svi = SVI(model, G(model), numpyro.optim.Adam(1e-3), Trace_ELBO())
    st = svi.init(jax.random.PRNGKey(0), y, 0.1)
    f = jax.jit(lambda s, svi=svi: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=N))
    jax.block_until_ready(f(st)); run[k] = (f, st)
res = {k: [] for k in run}
for r in range(9):
    for k, (f, st) in run.items():
        t = time.process_time(); jax.block_until_ready(f(st)); res[k].append((time.process_time()-t)/N*1e3)
b = statistics.median(res["builtin"])
for k, v in res.items(): print(D, k, round(statistics.median(v), 4), "ratio", round(statistics.median(v)/b, 2))
