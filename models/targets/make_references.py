"""Make the NUTS reference posteriors: ``python -m models.targets.make_references [name ...]``.

For each model in ``registry.NUTS_MODELS`` (default arguments): NumPyro NUTS in float64 on the
written-once model (hierarchical sites sampled non-centered via ``LocScaleReparam(0)``, which
leaves the posterior unchanged), draws mapped to the flat unconstrained latent vector of the
centered model (``spec.sites`` order, ``biject_to(support).inv`` per site), summarized as mean,
sd, quantiles and covariance, with settings, seed and diagnostics (split R-hat, ESS,
divergences) in ``info``; written to ``models/targets/references/<name>.json``.
Funnel, banana, linear_gaussian and brownian_motion have exact references and need no file.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from models.spec import Reference, save_reference
from models.targets.funnel import QUANTILES
from models.targets.registry import NUTS_MODELS, get_model

#: sites sampled non-centered (``LocScaleReparam(0)``) per model
REPARAM = {"eight_schools": ("theta",), "hierarchical_regression": ("intercepts",),
           "hierarchical_logistic": ("theta",)}
DEFAULTS = {"num_chains": 4, "num_warmup": 1000, "num_samples": 2000, "seed": 0,
            "target_accept_prob": 0.9}
#: per-model changes to ``DEFAULTS`` (fewer divergences; SV is the slow one, ~2 min on 2 cores)
OVERRIDES = {
    "hierarchical_regression": {"target_accept_prob": 0.98},
    "stochastic_volatility": {"target_accept_prob": 0.98, "num_samples": 1000},
    "cox_process": {"dense_mass": True},
    "horseshoe_regression": {"target_accept_prob": 0.995},
    "sv_sp500": {"target_accept_prob": 0.95, "dense_mass": True},
    # multimodal (permuted / sign-flipped hidden units): one chain stays in one mode
    "bnn": {"num_chains": 1, "num_samples": 4000, "target_accept_prob": 0.95},
}


def nuts_draws(name: str, num_chains: int, num_warmup: int, num_samples: int, seed: int,
               target_accept_prob: float, dense_mass: bool = False) -> tuple[object, np.ndarray, dict]:
    """Spec (float64), unconstrained draws ``[chains, samples, latent_dim]`` and diagnostics.
    ``dense_mass``: adapt a full mass matrix (strongly correlated posteriors)."""
    import jax
    import numpyro
    from numpyro.distributions.transforms import biject_to
    from numpyro.infer import MCMC, NUTS
    from numpyro.infer.reparam import LocScaleReparam

    from models.api import _prior_trace

    with warnings.catch_warnings():  # "no reference file yet" is why we are here
        warnings.simplefilter("ignore", UserWarning)
        spec = get_model(name, backend="numpyro")
    config = {k: LocScaleReparam(0) for k in REPARAM.get(name, ())}
    kernel = NUTS(numpyro.handlers.reparam(spec.model, config=config),
                  target_accept_prob=target_accept_prob, dense_mass=dense_mass)
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method="parallel" if jax.local_device_count() >= num_chains
                else "sequential", progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), *spec.model_args, extra_fields=("diverging",),
             **spec.model_kwargs)
    samples = mcmc.get_samples(group_by_chain=True)
    sites = _prior_trace(spec)
    flat = []
    for site, _ in spec.sites:
        u = biject_to(sites[site]["fn"].support).inv(samples[site])
        flat.append(np.asarray(u, np.float64).reshape(num_chains, num_samples, -1))
    divergences = int(np.asarray(mcmc.get_extra_fields()["diverging"]).sum())
    return spec, np.concatenate(flat, axis=-1), {"divergences": divergences}


def summarize(draws: np.ndarray) -> tuple[Reference, dict]:
    """Summary of ``draws [chains, samples, D]`` (sites filled in by the caller)."""
    from numpyro.diagnostics import effective_sample_size, split_gelman_rubin

    flat = draws.reshape(-1, draws.shape[-1])
    ess = np.asarray(effective_sample_size(draws))
    r_hat = np.asarray(split_gelman_rubin(draws))
    sd = flat.std(0, ddof=1)
    ref = Reference(
        sites=(),
        mean=flat.mean(0),
        sd=sd,
        cov=np.cov(flat, rowvar=False).reshape(draws.shape[-1], draws.shape[-1]),
        quantiles={q: np.quantile(flat, q, axis=0) for q in QUANTILES},
        source="nuts",
    )
    diag = {
        "max_r_hat": float(r_hat.max()),
        "min_ess": float(ess.min()),
        "ess": [round(float(e)) for e in ess],
        "r_hat": [round(float(r), 4) for r in r_hat],
        "mcse_mean": [float(f"{v:.3g}") for v in sd / np.sqrt(ess)],
    }
    return ref, diag


def make_reference(name: str, **settings) -> Reference:
    import jax
    import numpyro

    settings = {**DEFAULTS, **OVERRIDES.get(name, {}), **settings}
    start = time.perf_counter()
    with jax.enable_x64(True):
        spec, draws, extra = nuts_draws(name, **settings)
    ref, diag = summarize(draws)
    info = {
        "method": "NUTS (NumPyro), float64",
        "numpyro": numpyro.__version__,
        "jax": jax.__version__,
        **settings,
        "reparam": {k: "LocScaleReparam(0)" for k in REPARAM.get(name, ())},
        "runtime_s": round(time.perf_counter() - start, 1),
        **extra,
        **diag,
    }
    ref = Reference(sites=spec.sites, mean=ref.mean, sd=ref.sd, cov=ref.cov,
                    quantiles=ref.quantiles, source="nuts", info=info)
    path = save_reference(name, spec.config, spec.data_digest, ref)
    print(f"{name}: D={spec.latent_dim} {info['runtime_s']}s max_r_hat={diag['max_r_hat']:.3f}"
          f" min_ess={diag['min_ess']:.0f} divergences={extra['divergences']} -> {path}")
    return ref


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"default: all of {', '.join(NUTS_MODELS)}")
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value),
                            help=f"default {value} (see OVERRIDES)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(NUTS_MODELS)
    if unknown:
        parser.error(f"no NUTS reference for {sorted(unknown)}; choose from {NUTS_MODELS}")
    import numpyro

    numpyro.set_host_device_count(args.num_chains or DEFAULTS["num_chains"])  # before JAX starts
    given = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    for name in args.names or NUTS_MODELS:
        make_reference(name, **given)


if __name__ == "__main__":
    main()
