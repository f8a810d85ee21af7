"""Fit on a GPU or on several devices: ``numpyro_iaf.parallel.data_parallel_update``.

    python examples/devices_numpyro.py                      # whatever JAX finds (GPUs if installed)
    XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu \\
        python examples/devices_numpyro.py                  # 2 CPU "devices", to try the sharding
    python examples/devices_numpyro.py --smoke              # 50 steps (what the test suite runs)

Bayesian logistic regression on N simulated rows, all rows every step. The batch (leading axis of
the positional arguments) is split over the local devices, the SVI state is replicated, and the
sharded step equals ``jax.jit(svi.update)`` on one device: the example checks that. With several
GPUs the split is what makes it faster; on one device it is plain ``jax.jit``.
"""

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import SVI, Trace_ELBO

from numpyro_iaf import AutoIAFNormal
from numpyro_iaf.parallel import data_parallel_update


def model(X, y):
    w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    b = numpyro.sample("b", dist.Normal(0.0, 5.0))
    with numpyro.plate("data", X.shape[0]):
        numpyro.sample("y", dist.Bernoulli(logits=X @ w + b), obs=y)


def main(smoke: bool = False) -> None:
    devices = jax.devices()
    print(f"{len(devices)} device(s): {', '.join(sorted({d.platform for d in devices}))}")
    n, d, steps = (64 * len(devices), 5, 50) if smoke else (4096 * len(devices), 20, 2000)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ rng.normal(size=d) - 0.5)))).astype(np.float32)
    X, y = jnp.asarray(X), jnp.asarray(y)

    svi = SVI(model, AutoIAFNormal(model), numpyro.optim.Adam(1e-2), Trace_ELBO())
    state0 = svi.init(jax.random.PRNGKey(0), X, y)
    results = {}
    for name, update in (("one device (jax.jit)", jax.jit(svi.update)),
                         (f"sharded over {len(devices)}", data_parallel_update(svi))):
        state, loss = update(state0, X, y)                   # compiles
        jax.block_until_ready(loss)
        start = time.perf_counter()
        for _ in range(steps - 1):
            state, loss = update(state, X, y)
        jax.block_until_ready(loss)
        ms = (time.perf_counter() - start) / (steps - 1) * 1e3
        results[name] = float(loss)
        print(f"{name:22s}: {steps} steps on N={n} rows, {ms:.2f} ms/step, "
              f"final loss {float(loss):.3f}")
    a, b = results.values()
    print(f"sharded vs one device, final loss: |difference| = {abs(a - b):.2e} "
          f"(relative {abs(a - b) / abs(a):.1e})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    main(parser.parse_args().smoke)
