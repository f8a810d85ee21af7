"""Reading the posterior database (stan-dev/posteriordb subset): posteriors, Stan code, data, draws.

The database lives outside the repository (never committed): ``$POSTERIORDB_PATH`` if set, else
``<repo>/../shared/posteriordb``, else ``/work/shared/posteriordb``.

>>> info = load_posterior_info("eight_schools-eight_schools_noncentered")  # doctest: +SKIP
>>> info["model_name"], info["data_name"]                                # doctest: +SKIP
('eight_schools_noncentered', 'eight_schools')
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PosteriorDBNotFound",
    "available",
    "load_data",
    "load_posterior_info",
    "load_reference_draws",
    "load_stan_code",
    "posteriordb_path",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
_CANDIDATES = (REPO_ROOT.parent / "shared" / "posteriordb", Path("/work/shared/posteriordb"))


class PosteriorDBNotFound(FileNotFoundError):
    """The posterior database is not on this machine."""


def posteriordb_path() -> Path:
    """The database folder (holds ``posteriors/``, ``models/stan/``, ``data/``, ``reference_posteriors/``).

    Raises :class:`PosteriorDBNotFound` naming the places looked at and how to point at a copy.
    """
    env = os.environ.get("POSTERIORDB_PATH")
    candidates = (Path(env),) if env else _CANDIDATES
    for path in candidates:
        if (path / "posteriors").is_dir():
            return path
    looked = ", ".join(str(p) for p in candidates)
    raise PosteriorDBNotFound(
        f"posteriordb not found (looked in {looked}); set POSTERIORDB_PATH to a copy of "
        "stan-dev/posteriordb's posterior_database folder")


def available() -> bool:
    """Whether :func:`posteriordb_path` finds the database."""
    try:
        posteriordb_path()
    except PosteriorDBNotFound:
        return False
    return True


def _read_zipped_json(path: Path) -> Any:
    if not path.exists():
        raise PosteriorDBNotFound(f"{path} is missing from the posterior database")
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read(z.namelist()[0]))


@functools.cache
def load_posterior_info(name: str) -> dict[str, Any]:
    """``posteriors/<name>.json``: ``model_name``, ``data_name``, ``dimensions`` ..."""
    path = posteriordb_path() / "posteriors" / f"{name}.json"
    if not path.exists():
        raise ValueError(f"Unknown posterior {name!r}: {path} does not exist")
    return json.loads(path.read_text())


def load_stan_code(model_name: str) -> str:
    """The Stan program ``models/stan/<model_name>.stan``."""
    return (posteriordb_path() / "models" / "stan" / f"{model_name}.stan").read_text()


@functools.cache
def _data(data_name: str) -> dict[str, Any]:
    return _read_zipped_json(posteriordb_path() / "data" / "data" / f"{data_name}.json.zip")


def load_data(data_name: str) -> dict[str, np.ndarray]:
    """The data set ``data/data/<data_name>.json.zip`` as ``{name: float64 / int64 array}``."""
    out = {}
    for key, value in _data(data_name).items():
        arr = np.asarray(value)
        out[key] = arr.astype(np.int64) if np.issubdtype(arr.dtype, np.integer) else arr.astype(float)
    return out


@functools.cache
def _draws(name: str) -> tuple[list[str], np.ndarray]:
    path = posteriordb_path() / "reference_posteriors" / "draws" / "draws" / f"{name}.json.zip"
    chains = _read_zipped_json(path)
    keys = list(chains[0])
    return keys, np.stack([np.stack([np.asarray(c[k], float) for k in keys], -1) for c in chains])


def load_reference_draws(name: str) -> dict[str, np.ndarray]:
    """Reference draws of ``name`` per Stan parameter, constrained scale, arrays of shape
    ``[chains, draws, *shape]`` (``"beta[1]"``, ``"beta[2]"`` ... joined into ``"beta"``)."""
    keys, arr = _draws(name)
    groups: dict[str, list[tuple[tuple[int, ...], int]]] = {}
    for j, key in enumerate(keys):
        base, _, idx = key.partition("[")
        index = tuple(int(i) - 1 for i in idx.rstrip("]").split(",")) if idx else ()
        groups.setdefault(base, []).append((index, j))
    out = {}
    for base, items in groups.items():
        if items[0][0] == ():
            out[base] = arr[..., items[0][1]]
            continue
        shape = tuple(max(ix[d] for ix, _ in items) + 1 for d in range(len(items[0][0])))
        value = np.empty(arr.shape[:2] + shape)
        for index, j in items:
            value[(...,) + index] = arr[..., j]
        out[base] = value
    return out
