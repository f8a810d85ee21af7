"""Move a fitted guide between backends: fit in NumPyro, use it in Pyro (or the other way).

    python examples/convert_weights.py            # 2000 steps
    python examples/convert_weights.py --smoke    # 100 steps (what the test suite runs)

``export_guide_params`` gives backend-neutral NumPy arrays (by site name); ``import_guide_params``
loads them into the twin guide of the other backend, so both give the same posterior.
"""

import argparse

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as ndist
import pyro
import pyro.distributions as pdist
import torch

import numpyro_iaf
import pyro_iaf

data = np.random.default_rng(0).normal(1.0, 2.0, size=50)


def numpyro_model(y):
    loc = numpyro.sample("loc", ndist.Normal(0.0, 10.0))
    scale = numpyro.sample("scale", ndist.LogNormal(0.0, 1.0))
    with numpyro.plate("data", y.shape[0]):
        numpyro.sample("y", ndist.Normal(loc, scale), obs=y)


def pyro_model(y):
    loc = pyro.sample("loc", pdist.Normal(0.0, 10.0))
    scale = pyro.sample("scale", pdist.LogNormal(0.0, 1.0))
    with pyro.plate("data", y.shape[0]):
        pyro.sample("y", pdist.Normal(loc, scale), obs=y)


def main(smoke: bool = False) -> None:
    steps = 100 if smoke else 2000
    guide = numpyro_iaf.AutoIAFNormal(numpyro_model)
    y_jax = jnp.asarray(data)
    result = numpyro_iaf.fit(numpyro_model, guide, y_jax, num_steps=steps, seed=0, progress_bar=False)
    state = numpyro_iaf.export_guide_params(guide, result.params)   # {"sites", "loc", "scale", "flow"}
    print(f"NumPyro fit, {steps} steps; exported sites {state['sites']}")

    pyro.clear_param_store()
    twin = pyro_iaf.AutoIAFNormal(pyro_model)                        # same defaults, same flow
    y = torch.tensor(data, dtype=torch.float32)
    pyro_iaf.import_guide_params(twin, state, y)
    a = guide.median(result.params)
    b = twin.median(y)
    for name in ("loc", "scale"):
        print(f"median {name:5s}: NumPyro {float(a[name]):.4f}, Pyro {float(b[name]):.4f}")
    print("(medians are Monte Carlo: 4000 draws, each backend with its own random stream)")
    eps = np.random.default_rng(1).normal(size=(5, 2)).astype(np.float32)
    z_numpyro = np.asarray(guide.get_transform(result.params)(jnp.asarray(eps)))  # loc + scale * IAF
    z_pyro = twin.get_transform()(torch.from_numpy(eps)).detach().numpy()
    diff = np.abs(z_numpyro - z_pyro).max()
    print(f"same transform in both backends: max |z_numpyro - z_pyro| = {diff:.1e}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny run for the test suite")
    main(parser.parse_args().smoke)
