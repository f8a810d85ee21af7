"""Step time of ``AutoAmortizedIAF`` against a hand-written amortized guide with the same parts.

    python -m models.bench.amortized [--backend pyro|numpyro|both] [--steps 300] [--repeats 5]

Model: ``mu ~ N(0, 10)``, ``theta_i ~ N(mu, 1)``, ``y_i ~ N(theta_i, 1)``, N = 2000, subsample 100.
The hand-written guide uses the same global :class:`AutoIAFNormal`, the same encoder
(``MLPEncoder``) and the same conditioned IAF, and reads ``y[idx]`` directly; the autoguide finds
its data itself (``mode=args``: read from the arguments; ``mode=trace``: the model is traced at
every step). Prints the median seconds per SVI step over interleaved repeats and the ratio
autoguide / hand-written (the target is <= 1.3).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

N, B = 2000, 100
#: the global part as AutoAmortizedIAF builds it by default (two gated steps, no ``stl``)
GLOBAL_PART = {"num_flows": 2, "gated": True, "stl": False}
#: the local part scored as the hand-written guide scores it (no path-derivative gradient, which
#: ``AutoAmortizedIAF`` uses by default since issue 20; its cost is not in this ratio)
LOCAL_PART = {"stl": False}


def _data() -> np.ndarray:
    rng = np.random.default_rng(0)
    return 3.0 + rng.standard_normal(N) + rng.standard_normal(N)


def bench_pyro(steps: int, repeats: int) -> dict[str, float]:
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro import poutine
    from pyro.distributions.transforms import AffineTransform
    from pyro.infer import SVI, Trace_ELBO
    from pyro.nn import PyroModule

    from pyro_iaf import IAF, AutoAmortizedIAF, AutoIAFNormal
    from pyro_iaf.amortized import MLPEncoder

    torch.set_num_threads(1)
    y = torch.as_tensor(_data(), dtype=torch.float32)

    def model(y, subsample_size=None):
        mu = pyro.sample("mu", dist.Normal(0.0, 10.0))
        with pyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
            theta = pyro.sample("theta", dist.Normal(mu, 1.0))
            pyro.sample("y", dist.Normal(theta, 1.0), obs=y[idx])

    class HandWritten(PyroModule):
        def __init__(self):
            super().__init__("hand")
            self.global_guide = AutoIAFNormal(poutine.block(model, hide=["theta"]), **GLOBAL_PART)
            self.encoder = MLPEncoder(
                1,
                1,
                8,
                (64, 64),
                init_mu=torch.zeros(1),
                init_sigma=0.13,
                x_mean=y.mean(0, keepdim=True),
                x_std=y.std(0, keepdim=True),
            )
            self.flow = IAF(1, context_dim=8)

        def forward(self, y, subsample_size=None):
            self.global_guide(y, subsample_size)
            with pyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
                mu, sigma, h = self.encoder(y[idx, None])
                q = dist.TransformedDistribution(
                    dist.Normal(torch.zeros_like(mu), 1.0).to_event(1),
                    [self.flow.condition(h), AffineTransform(mu, sigma, event_dim=1, cache_size=1)],
                )
                z = pyro.sample("theta_aux", q, infer={"is_auxiliary": True})
                pyro.sample("theta", dist.Delta(z[..., 0]))

    def make(kind):
        pyro.clear_param_store()
        guide = HandWritten() if kind == "hand" else AutoAmortizedIAF(model, **LOCAL_PART)
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO())
        svi.step(y, B)
        if kind == "trace":
            guide._arg_paths = None  # force the per-step model trace
        return svi

    return _interleave(
        {k: make(k) for k in ("hand", "args", "trace")}, lambda svi: svi.step(y, B), steps, repeats, 3
    )


def bench_numpyro(steps: int, repeats: int) -> dict[str, float]:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro import handlers
    from numpyro.distributions.transforms import AffineTransform
    from numpyro.infer import SVI, Trace_ELBO

    from numpyro_iaf import IAF, AutoAmortizedIAF, AutoIAFNormal
    from numpyro_iaf.amortized import MLPEncoder

    y = jnp.asarray(_data(), dtype=jnp.float32)

    def model(y, subsample_size=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
            theta = numpyro.sample("theta", dist.Normal(mu, 1.0))
            numpyro.sample("y", dist.Normal(theta, 1.0), obs=y[idx])

    global_guide = AutoIAFNormal(handlers.block(model, hide=["theta"]), **GLOBAL_PART)
    encoder = MLPEncoder(
        1,
        1,
        8,
        (64, 64),
        init_mu=jnp.zeros(1),
        init_sigma=0.13,
        x_mean=y.mean(0, keepdims=True),
        x_std=y.std(0, keepdims=True),
    )
    flow = IAF(1, context_dim=8)

    def hand(y, subsample_size=None):
        global_guide(y, subsample_size)
        with numpyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
            x = y[idx, None]
            enc = numpyro.param("hand_encoder", encoder.init(jax.random.PRNGKey(0), x))
            fp = numpyro.param("hand_flow", flow.params)
            mu, sigma, h = encoder.apply(enc, x)
            q = dist.TransformedDistribution(
                dist.Normal(jnp.zeros_like(mu), 1.0).to_event(1),
                [flow.with_params(fp).condition(h), AffineTransform(mu, sigma)],
            )
            z = numpyro.sample("theta_aux", q, infer={"is_auxiliary": True})
            numpyro.sample("theta", dist.Delta(z[..., 0]))

    def make(kind):
        guide = hand if kind == "hand" else AutoAmortizedIAF(model, **LOCAL_PART)
        svi = SVI(model, guide, numpyro.optim.Adam(1e-3), Trace_ELBO())
        state = svi.init(jax.random.PRNGKey(0), y, B)
        if kind == "trace":
            guide._arg_paths = None
        run = jax.jit(lambda s: jax.lax.scan(lambda s, _: svi.update(s, y, B), s, None, length=steps))
        jax.block_until_ready(run(state))  # compile
        return run, state

    def one(entry):
        run, state = entry
        jax.block_until_ready(run(state))

    return _interleave({k: make(k) for k in ("hand", "args", "trace")}, one, 1, repeats, 0, per=steps)


def _interleave(cases: dict, step, steps: int, repeats: int, warmup: int, per: int | None = None):
    """Median seconds per step of each case, the cases interleaved (shared machines are noisy)."""
    times: dict[str, list[float]] = {k: [] for k in cases}
    for case in cases.values():
        for _ in range(warmup):
            step(case)
    for _ in range(repeats):
        for name, case in cases.items():
            start = time.perf_counter()
            for _ in range(steps):
                step(case)
            times[name].append((time.perf_counter() - start) / (per or steps))
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["pyro", "numpyro", "both"], default="both")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    opts = parser.parse_args()
    names = ["pyro", "numpyro"] if opts.backend == "both" else [opts.backend]
    for name in names:
        result = (bench_pyro if name == "pyro" else bench_numpyro)(opts.steps, opts.repeats)
        hand = result["hand"]
        print(
            f"{name}: hand-written {hand * 1e3:.3f} ms/step; AutoAmortizedIAF "
            f"mode=args {result['args'] * 1e3:.3f} ms/step (ratio {result['args'] / hand:.2f}), "
            f"mode=trace {result['trace'] * 1e3:.3f} ms/step (ratio {result['trace'] / hand:.2f})"
        )


if __name__ == "__main__":
    main()
