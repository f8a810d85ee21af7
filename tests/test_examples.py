"""Every script in ``examples/`` runs at its ``--smoke`` size and prints measured numbers.

The scripts run in this process (``runpy``), one after another, so they share the imports and
JAX's cache of compiled operations; each is a separate test for ``--durations``. XLA's
optimization passes are off while they run: a smoke run checks that a script works, not its
speed, and most of its time is compilation.
"""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


@pytest.fixture(autouse=True, scope="module")
def _fast_compilation():
    import jax

    before = jax.config.values["jax_disable_most_optimizations"]
    jax.config.update("jax_disable_most_optimizations", True)
    yield
    jax.config.update("jax_disable_most_optimizations", before)


def test_examples_exist_and_are_in_the_docs():
    assert len(EXAMPLES) >= 5
    gallery = (ROOT / "docs" / "examples" / "index.md").read_text()
    for path in EXAMPLES:
        assert path.stem in gallery, f"{path.name} is not listed in docs/examples/index.md"
        assert "--smoke" in path.read_text(), f"{path.name} has no --smoke size for the test suite"


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [str(path), "--smoke"])
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert re.search(r"\d+\.\d+", out), f"{path.name} printed no measured number:\n{out}"
