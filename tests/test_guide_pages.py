"""The user guide tells one truth: its code runs, its figures come from the result files, and it
carries no provenance (commit hashes, issue numbers: those belong on the benchmark pages).

- every ``# Pyro`` / ``# NumPyro`` block of ``docs/guide/using.md`` runs, in order, one
  session per backend (the NumPyro session reads a file the Pyro one wrote), and the README's
  quick start runs too (with fewer steps): ``make test-slow``, as they take tens of seconds;
- ``python docs/generate.py --check`` agrees: every generated table and value equals what its
  result file in ``docs/bench/`` gives.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "guide"
GUIDE_PAGES = [*sorted(GUIDE.glob("*.md")), ROOT / "docs" / "index.md", ROOT / "README.md"]
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: a commit hash (7-40 hex digits with a letter and a digit), an issue number, a date or time of
#: day, a machine's load or core count
PROVENANCE = re.compile(
    r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}\b|\bissues? #?\d+|#\d{1,4}\b"
    r"|\b20\d\d-\d\d-\d\d\b|\b\d\d:\d\d UTC\b|\bload (?:average )?~?\d|\b\d+-core\b", re.I)


def python_blocks(path: Path) -> list[str]:
    return FENCE.findall(path.read_text())


def session(blocks: list[str], name: str) -> str:
    """The blocks whose first line is ``# <name>``, as one script."""
    return "\n".join(b for b in blocks if b.splitlines()[0].strip() == f"# {name}")


@pytest.fixture
def page_session(tmp_path, monkeypatch):
    """Run scripts in this process (the frameworks are imported once), in ``tmp_path``, and put
    back what a page may change: torch's default dtype, JAX's x64 flag, Pyro's param store."""
    import jax
    import matplotlib
    import pyro
    import torch

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    pyro.clear_param_store()
    x64 = jax.config.jax_enable_x64
    def run(script: str, where: str) -> str:
        printed: list[str] = []
        namespace = {"print": lambda *a, **k: printed.append(" ".join(map(str, a)))}
        try:
            exec(compile(script, where, "exec"), namespace)
        finally:
            torch.set_default_dtype(torch.float32)
            jax.config.update("jax_enable_x64", x64)
            pyro.clear_param_store()
        return "\n".join(printed)

    yield run
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.slow  # ~30 s of CPU: two frameworks, a dozen fits and their compilations, ArviZ
def test_using_page_runs_in_both_backends(page_session, tmp_path):
    blocks = python_blocks(ROOT / "docs" / "guide" / "using.md")
    assert all(b.splitlines()[0].strip() in ("# Pyro", "# NumPyro") for b in blocks), \
        "every block of using.md starts with '# Pyro' or '# NumPyro'"
    medians = {}
    for name in ("Pyro", "NumPyro"):  # in this order: NumPyro reads the file Pyro exported
        out = page_session(session(blocks, name), f"using.md ({name})")
        p_values = [float(v) for v in re.findall(r"P\(sd\(y_rep\) >= sd\(y\)\) = ([\d.]+)", out)]
        assert p_values and 0.05 < p_values[-1] < 0.95, out
        assert "change" in out and "hdi_3%" in out  # the convergence check, az.summary
        # the medians printed: after the fit, after loading (, and NumPyro's twin of the Pyro guide)
        lines = [line for line in out.splitlines() if re.match(r"\{'mu': (tensor|Array)\([-\d.]+[,)]", line)]
        medians[name] = [[float(v) for v in re.findall(r"'(?:mu|sigma)': (?:tensor|Array)\(([-\d.]+)", line)]
                         for line in lines]
        assert medians[name][0] == medians[name][1], f"{name}: loading changed the median {medians[name]}"
        mu, sigma = medians[name][0]
        assert abs(mu - 3.1) < 0.3 and abs(sigma - 2.1) < 0.3, f"{name}: the fit is off: {medians[name]}"
    twin = medians["NumPyro"][2]
    assert np.allclose(twin, medians["Pyro"][0], atol=0.05), f"the imported Pyro guide: {twin}"
    assert (tmp_path / "posterior.png").stat().st_size > 10_000  # az.plot_posterior drew
    assert (tmp_path / "guide_params.pt").exists() and (tmp_path / "guide_state.pkl").exists()


@pytest.mark.slow  # ~10 s of CPU
def test_readme_quick_start_runs(page_session):
    """Both quick-start blocks, at 200 steps (the check needs 200 losses): they run and print."""
    blocks = [b for b in python_blocks(ROOT / "README.md") if "fit(" in b]
    assert len(blocks) == 2, "the README's quick start has one Pyro and one NumPyro block"
    for i, block in enumerate(blocks):
        out = page_session(re.sub(r"num_steps=\d+", "num_steps=200", block), f"README.md block {i}")
        assert "change" in out, out


@pytest.mark.parametrize("page", GUIDE_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_provenance_in_guide_pages(page):
    text = re.sub(r"<!--.*?-->", "", page.read_text(), flags=re.S)
    found = PROVENANCE.findall(text)
    assert not found, f"{page.name} has commit hashes or issue numbers {found}: move them to a benchmark page"


def _generator():
    spec = importlib.util.spec_from_file_location("docs_generate", ROOT / "docs" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_figures_match_their_result_files():
    problems = _generator().generate(check=True)
    assert not problems, "run `make figures`:\n" + "\n".join(problems)


def test_the_check_catches_a_changed_figure():
    """A figure typed over (or a result file that changed) is reported with its key."""
    gen = _generator()
    problems: list[str] = []
    text = "gap <!--v gap/pyro/hot/100/iaf-->9.99<!--/v--> nats"
    fixed = gen.render(text, "page.md", problems)
    assert problems and "gap/pyro/hot/100/iaf" in problems[0]
    assert fixed == f"gap <!--v gap/pyro/hot/100/iaf-->{gen.value('gap/pyro/hot/100/iaf')}<!--/v--> nats"
