"""Run Pyro's or NumPyro's own autoguide tests with our ``AutoIAFNormal`` as ``AutoDiagonalNormal``.

    python -m models.bench.upstream_autoguide pyro    PATH/tests/infer/test_autoguide.py [--builtin]
    python -m models.bench.upstream_autoguide numpyro PATH/test/infer/test_autoguide.py  [--builtin]

``PATH`` is a checkout of the upstream repository (nothing is fetched; a bare mirror can be
unpacked with ``git --git-dir=DIR archive REV tests setup.cfg | tar -x -C PATH`` for Pyro, or
``... archive REV test pyproject.toml ...`` for NumPyro). The test file is copied into a
temporary tree with the ``conftest.py``, ``__init__.py`` and ``common.py`` files between it and
the repository root, and that root's pytest configuration (``setup.cfg`` / ``pyproject.toml``:
upstream's own ``filterwarnings = error`` and, for Pyro, float64 by default). In the copy, the
built-in ``AutoDiagonalNormal`` import is replaced by a subclass of ours under that name, so test
ids, ``auto_class.__name__`` and parameter prefixes read as upstream's. Only the cases whose id
names ``AutoDiagonalNormal`` run (``-k AutoDiagonalNormal``; ``--all``: every test, where the
tests that build ``AutoDiagonalNormal`` in their body or through ``functools.partial`` also
use ours). ``--builtin`` runs the unmodified file, for the baseline. Prints the failing ids,
pytest's summary and ``passed N of M``; pytest arguments after ``--`` are passed on.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAME = "AutoDiagonalNormal"
CONFIG_FILES = ("setup.cfg", "pyproject.toml", "pytest.ini", "tox.ini")
SUPPORT_FILES = ("conftest.py", "__init__.py", "common.py")


def substitute(source: str, backend: str) -> str:
    """``source`` with the ``AutoDiagonalNormal`` import replaced by a subclass of ours."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name == NAME for a in node.names):
            break
    else:
        raise ValueError(f"the test file imports no {NAME} at module level")
    kept = [a for a in node.names if a.name != NAME]
    lines = source.splitlines(keepends=True)
    package = "pyro_iaf" if backend == "pyro" else "numpyro_iaf"
    replacement = (ast.unparse(ast.ImportFrom(node.module, kept, node.level)) + "\n" if kept else "") + (
        f"import {package} as _ours\n\n\n"
        f"class {NAME}(_ours.AutoIAFNormal):\n"
        f'    """{package}.AutoIAFNormal under the built-in\'s name (ids and prefixes as upstream)."""\n\n\n'
    )
    return "".join(lines[: node.lineno - 1]) + replacement + "".join(lines[node.end_lineno :])


def build_tree(test_file: Path, backend: str, builtin: bool, into: Path) -> Path:
    """Copy the test file (substituted unless ``builtin``) and its support files; return its copy."""
    test_file = test_file.resolve()
    root = next((p for p in test_file.parents if any((p / c).exists() for c in CONFIG_FILES)), None)
    if root is None:
        raise ValueError(f"{test_file} is not inside a checkout with {' or '.join(CONFIG_FILES)}")
    for name in CONFIG_FILES:
        if (root / name).exists():
            shutil.copy(root / name, into / name)
    rel = test_file.relative_to(root)
    folder = root
    for part in rel.parts[:-1]:
        folder = folder / part
        (into / folder.relative_to(root)).mkdir(parents=True, exist_ok=True)
        for name in SUPPORT_FILES:
            if (folder / name).exists():
                shutil.copy(folder / name, into / folder.relative_to(root) / name)
    source = test_file.read_text()
    (into / rel).write_text(source if builtin else substitute(source, backend))
    return into / rel


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backend", choices=["pyro", "numpyro"])
    parser.add_argument("test_file", type=Path)
    parser.add_argument("--builtin", action="store_true", help="run the unmodified file (baseline)")
    parser.add_argument(
        "--all", action="store_true", help="every test of the file, not only the AutoDiagonalNormal ids"
    )
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="upstream-autoguide-") as tmp:
        copy = build_tree(args.test_file, args.backend, args.builtin, Path(tmp))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", "-p", "no:xdist"]
        command += [str(copy.relative_to(tmp)), *([] if args.all else ["-k", NAME]), "--color=no"]
        command += args.pytest_args
        run = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
    out = run.stdout + run.stderr
    failed = sorted(set(re.findall(r"^(?:FAILED|ERROR) (\S+)", out, re.M)))
    lines = reversed(out.splitlines())
    summary = next((line for line in lines if re.search(r"\d+ (passed|failed)", line)), "")
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|errors?|xfailed|skipped)", summary)}
    passed = counts.get("passed", 0)
    total = passed + counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
    print("\n".join(failed))
    print(summary)
    which = "built-in" if args.builtin else "ours"
    print(f"{args.backend} ({which} as {NAME}): passed {passed} of {total}")
    if total == 0:
        print(out[-3000:])
    return 0 if total and passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
