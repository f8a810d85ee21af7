"""``make docs`` works: the Sphinx build is strict (-W --keep-going -n) and every public name has
an API entry in both packages."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Sphinx 9 and MyST warn about their own APIs that Sphinx 11 removes: not ours to fix here.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    from sphinx.cmd.build import build_main

    out = tmp_path_factory.mktemp("html")
    doctrees = tmp_path_factory.mktemp("doctrees")
    argv = ["-b", "html", "-W", "--keep-going", "-n", "-q", "-d", str(doctrees), str(ROOT / "docs"), str(out)]
    assert build_main(argv) == 0, "the strict docs build failed: see the warnings above"
    return out


def test_docs_build_strict(site):
    assert (site / "index.html").is_file()
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file(), "MathJax must ship with the site"
    flow = (site / "guide" / "flow.html").read_text()
    assert "mathjax/tex-chtml.js" in flow and "cdn" not in flow.lower()


@pytest.mark.parametrize("package", ["pyro_iaf", "numpyro_iaf"])
def test_every_public_name_has_an_api_entry(site, package):
    html = (site / "api" / f"{package}.html").read_text()
    ids = set(re.findall(r'id="([\w.]+)"', html))
    missing = [n for n in importlib.import_module(package).__all__ if f"{package}.{n}" not in ids]
    assert not missing, f"no API entry for {missing}"


def test_readme_links_and_length():
    """The README stays short, opens with the two set-up commands, and its links point at files."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150
    intro, opening = text.split("```")[:2]
    commands = [line.split("#")[0].strip() for line in opening.splitlines()[1:]]
    assert [c for c in commands if c] == ["make demo", "make test"], "first block: exactly the two commands"
    sentences = re.sub(r"^#.*$", "", intro, flags=re.M).strip()
    assert 0 < len(sentences) < 400, "a sentence or two on what the library is for, then the commands"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), f"README links to a missing file: {target}"
