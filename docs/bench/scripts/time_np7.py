import sys, time, statistics, jax, jax.numpy as jnp, numpyro
from numpyro.infer import SVI, Trace_ELBO, autoguide
import numpyro_iaf, numpyro_iaf.nn as nnmod
from models.api import bind
from models.linear_gaussian import linear_gaussian_model, linear_gaussian_data
D = int(sys.argv[1]); N = 200
model = bind(linear_gaussian_model, "numpyro")
y = jnp.asarray(linear_gaussian_data(D, 0.1), dtype=jnp.float32)
impls = {
 "dg": lambda x, w: jax.lax.dot_general(x, w, (((x.ndim - 1,), (1,)), ((), ()))),
 "matT": lambda x, w: x @ w.T,
 "wx": lambda x, w: jnp.moveaxis(jax.lax.dot_general(w, x, (((1,), (x.ndim - 1,)), ((), ()))), 0, -1),
 "einsum": lambda x, w: jnp.einsum("...i,oi->...o", x, w),
}
run = {}
svi = SVI(model, autoguide.AutoIAFNormal(model), numpyro.optim.Adam(1e-3), Trace_ELBO())
st = svi.init(jax.random.PRNGKey(0), y, 0.1)
f = jax.jit(lambda s, svi=svi: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=N))
jax.block_until_ready(f(st)); run["builtin"] = (f, st)
for k, impl in impls.items():
    nnmod._linear = impl
    svi = SVI(model, numpyro_iaf.AutoIAFNormal(model, num_flows=3, hidden_dims=[D, D], skip=sys.argv[2] == "skip"), numpyro.optim.Adam(1e-3), Trace_ELBO())
    st = svi.init(jax.random.PRNGKey(0), y, 0.1)
    f = jax.jit(lambda s, svi=svi: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=N))
    jax.block_until_ready(f(st)); run[k] = (f, st)
res = {k: [] for k in run}
for r in range(9):
    for k, (f, st) in run.items():
        t = time.process_time(); jax.block_until_ready(f(st)); res[k].append((time.process_time()-t)/N*1e3)
b = statistics.median(res["builtin"])
for k, v in res.items(): print(D, sys.argv[2], k, round(statistics.median(v), 4), "ratio", round(statistics.median(v)/b, 2))
