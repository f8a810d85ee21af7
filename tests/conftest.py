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


@pytest.fixture(params=sorted(BACKENDS), ids=lambda name: name)
def backend(request):
    adapter = BACKENDS[request.param]()
    if request.param == "pyro":
        import pyro

        pyro.clear_param_store()
        pyro.enable_validation(True)
        pyro.set_rng_seed(0)
    return adapter
