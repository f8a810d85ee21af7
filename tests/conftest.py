"""Shared fixtures: every test that takes ``backend`` runs once under Pyro and once under NumPyro.

JAX's x64 flag stays off for the session (the autoguide tests run in float32, like users);
float64 checks enter ``backend.float64()``, a local ``jax.enable_x64(True)`` context in JAX and
``torch.set_default_dtype(torch.float64)`` in PyTorch.
"""

from __future__ import annotations

import os
import sys

import pytest

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
