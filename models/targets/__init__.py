"""Benchmark models written once (pyro-api) for Pyro and NumPyro, with exact or NUTS references.

    from models.targets import get_model
    spec = get_model("eight_schools", backend="numpyro")   # or "pyro"
    spec.model(*spec.model_args, **spec.model_kwargs)
    spec.reference.mean, spec.reference.sd                  # flat unconstrained latents, spec.sites

``python -m models.targets.make_references`` remakes the NUTS summaries in
``models/targets/references/``. Importing this package imports neither torch nor jax.
"""

from models.targets.registry import MODELS, NUTS_MODELS, get_model

__all__ = ["MODELS", "NUTS_MODELS", "get_model"]
