import sys, jax, jax.numpy as jnp, numpyro, numpy as np
from numpyro.infer import SVI, Trace_ELBO, autoguide
import numpyro_iaf
from models.api import bind
from models.linear_gaussian import linear_gaussian_model, linear_gaussian_data, linear_gaussian_reference
D = int(sys.argv[1]); S = int(sys.argv[2]); steps = 2000; lr = float(sys.argv[3]) if len(sys.argv) > 3 else 1e-2
model = bind(linear_gaussian_model, "numpyro")
y = jnp.asarray(linear_gaussian_data(D, 0.1), dtype=jnp.float32)
logZ = float(linear_gaussian_reference(D, 0.1).log_evidence)
variants = {
 "diag": lambda: autoguide.AutoDiagonalNormal(model),
 "builtin": lambda: autoguide.AutoIAFNormal(model),
 "cur": lambda: numpyro_iaf.AutoIAFNormal(model),
 "f1": lambda: numpyro_iaf.AutoIAFNormal(model, num_flows=1),
 "noskip": lambda: numpyro_iaf.AutoIAFNormal(model, skip=False),
 "s1": lambda: numpyro_iaf.AutoIAFNormal(model, init_scale=1.0),
 "g3": lambda: numpyro_iaf.AutoIAFNormal(model, gate_bias=3.0),
 "g1": lambda: numpyro_iaf.AutoIAFNormal(model, gate_bias=1.0),
}
sel = sys.argv[4].split(",") if len(sys.argv) > 4 else list(variants)
for name in sel:
    g = variants[name]()
    svi = SVI(model, g, numpyro.optim.Adam(lr), Trace_ELBO())
    run = jax.jit(lambda s: jax.lax.scan(lambda s, _: svi.update(s, y, 0.1), s, None, length=steps))
    ev = jax.jit(lambda p, k: Trace_ELBO(num_particles=1000).loss(k, p, model, g, y, 0.1))
    gaps = []
    for seed in range(S):
        st = svi.init(jax.random.PRNGKey(seed), y, 0.1)
        st, _ = run(st)
        gaps.append(logZ + float(ev(svi.get_params(st), jax.random.PRNGKey(seed + 1))))
    print(D, name, round(np.mean(gaps), 4), "+-", round(np.std(gaps) / np.sqrt(S), 4), flush=True)
