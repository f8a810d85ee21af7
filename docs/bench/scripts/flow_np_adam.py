import sys, time, statistics, jax, jax.numpy as jnp
from numpyro.distributions.flows import InverseAutoregressiveTransform
from numpyro.nn import AutoregressiveNN
import numpyro_iaf
D = int(sys.argv[1]); N = 500
eps = jax.random.normal(jax.random.PRNGKey(0), (D,))
# builtin: 3 transforms of AutoregressiveNN(D, [D, D]) with permutations
import numpy as np
from jax.example_libraries import stax
def builtin_init():
    ps, fns = [], []
    for i in range(3):
        init, apply = AutoregressiveNN(D, [D, D], permutation=jnp.arange(D), skip_connections=False, nonlinearity=stax.Elu)
        _, p = init(jax.random.PRNGKey(i), (D,)); ps.append(p); fns.append(apply)
    def loss(ps, x):
        ld = 0.
        for p, apply in zip(ps, fns):
            t = InverseAutoregressiveTransform(lambda z, p=p, apply=apply: apply(p, z))
            y = t(x); ld = ld + t.log_abs_det_jacobian(x, y); x = y[::-1]
        return jnp.sum(x ** 2) + ld
    return ps, loss
def ours_init(**kw):
    flow = numpyro_iaf.IAF(D, num_flows=3, hidden_dims=[D, D], **kw)
    def loss(ps, x):
        y, ld = flow.with_params(ps).call_with_intermediates(x)
        return jnp.sum(y ** 2) + ld
    return flow.params, loss
variants = {"builtin": builtin_init(), "ours_noskip": ours_init(skip=False), "ours_noskip_affine": ours_init(skip=False, gated=False), "ours": ours_init()}
run = {}
for k, (ps, loss) in variants.items():
    g = jax.grad(loss)
    import optax
    opt = optax.adam(1e-3)
    def body(c, _, g=g):
        p, o, key = c
        key, sub = jax.random.split(key)
        e = jax.random.normal(sub, (D,))
        upd, o = opt.update(g(p, e), o, p)
        return (optax.apply_updates(p, upd), o, key), None
    state = (ps, opt.init(ps), jax.random.PRNGKey(0))
    f = jax.jit(lambda st, body=body: jax.lax.scan(body, st, None, length=N)[0])
    jax.block_until_ready(f(state)); run[k] = (f, state)
res = {k: [] for k in run}
for r in range(7):
    for k, (f, ps) in run.items():
        t = time.process_time(); jax.block_until_ready(f(ps)); res[k].append((time.process_time() - t) / N * 1e3)
b = statistics.median(res["builtin"])
for k, v in res.items(): print(D, k, round(statistics.median(v), 4), round(statistics.median(v) / b, 2))
