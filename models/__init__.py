"""Benchmark models written once (pyro-api) for Pyro and NumPyro, with exact or NUTS references.

    from models.registry import get_model
    spec = get_model("eight_schools", backend="numpyro")   # or "pyro"
    spec.model(*spec.model_args, **spec.model_kwargs)
    spec.reference.mean, spec.reference.sd                  # flat unconstrained latents, spec.sites

``models.api`` is the backend adapter; ``python -m models.make_references`` remakes the NUTS
summaries in ``models/references/``. Importing this package imports neither torch nor jax.
"""
