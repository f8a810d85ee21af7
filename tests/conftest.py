"""Shared fixtures: every test that takes ``backend`` runs once under Pyro and once under NumPyro.

JAX's x64 flag stays off for the session (the autoguide tests run in float32, like users);
float64 checks enter ``backend.float64()``, a local ``jax.enable_x64(True)`` context in JAX and
``torch.set_default_dtype(torch.float64)`` in PyTorch.
"""

from __future__ import annotations

import os
import sys

import pytest

# Tests run many tiny programs once each (NumPyro traces op by op while setting a guide up), so
# XLA's compile time dominates their run time: the cheapest LLVM pipeline cuts the suite's CPU
# time by about a quarter (measured on the shapes and D=100 fit tests) and changes no result.
# Set before jax is imported; a user's own XLA_FLAGS come after these and win.
_FAST_COMPILE = "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
os.environ["XLA_FLAGS"] = f"{_FAST_COMPILE} {os.environ.get('XLA_FLAGS', '')}".strip()

sys.path.insert(0, os.path.dirname(__file__))

from backends import BACKENDS  # noqa: E402


def pytest_configure(config):
    import torch

    # one intra-op thread: torch's OpenMP workers otherwise fight JAX's threads on 2 cores
    torch.set_num_threads(1)


#: Cases of backend-parametrized tests that run in ``make test-slow`` only (``-m slow``), each with
#: why: the default suite must stay within 6 minutes on 2 cores; what these guard is also guarded
#: by a cheaper case in the default suite (the other backend, or a smaller size).
SLOW_CASES = {
    # budget-level fits (2000 steps at D=100); D=10 stays in the default suite
    "tests/test_autoguide.py::test_iaf_within_diagonal_gap_at_hot_defaults[pyro-100]": "D=100 fit",
    "tests/test_autoguide.py::test_iaf_within_diagonal_gap_at_hot_defaults[numpyro-100]": "D=100 fit",
    # three fits of 600 steps; the Pyro case (jit, tracegraph, particles) stays
    "tests/test_autoguide.py::test_several_particles_and_other_losses[numpyro]": "three fits",
    # NumPyro sets up LKJ / Wishart op by op (10-20 s of compilation each); Pyro's stay
    "tests/test_conformance.py::test_fits_every_model_the_builtin_fits[numpyro-corr_cholesky]": "LKJ set-up",
    "tests/test_conformance.py::test_fits_every_model_the_builtin_fits[numpyro-corr_matrix]": "LKJ set-up",
    "tests/test_conformance.py::test_fits_every_model_the_builtin_fits[numpyro-positive_definite]": "Wishart",
    "tests/test_conformance.py::test_amortized_global_part_accepts_the_same_kinds[numpyro]": "set-up",
    # 100 steps of 100 particles with the STL gradient (compilation); the Pyro case stays, and
    # test_autoguide.py's shapes test checks NumPyro's quantile shapes and order
    "tests/test_generic_autoguide.py::test_quantiles[numpyro]": "STL fit",
    # NumPyro's own reparametrizer, set up op by op; the Pyro case stays
    "tests/test_generic_autoguide.py::test_sphere_reparam_ok[numpyro]": "set-up",
}


@pytest.hookimpl(tryfirst=True)  # before ``-m 'not slow'`` deselects
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.nodeid in SLOW_CASES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(params=sorted(BACKENDS), ids=lambda name: name)
def backend(request):
    adapter = BACKENDS[request.param]()
    if request.param == "pyro":
        import pyro

        pyro.clear_param_store()
        pyro.enable_validation(True)
        pyro.set_rng_seed(0)
    return adapter
