"""Training checkpoints that hold only data: ``checkpoint.npz`` (arrays) + ``checkpoint.json``.

Loading never runs code from the files: the arrays are read with ``allow_pickle=False`` and
everything else (configuration, counters, history, RNG states, the optimiser's settings) is
JSON. A nested state (dicts, lists, tuples, NumPy arrays, torch tensors, JSON scalars) is split
by :func:`split_state` into a JSON skeleton, in which each array is ``{"__array__": key}`` (or
``{"__tensor__": key}``), and a flat ``{key: array}``; :func:`join_state` reverses it.

Checkpoints of older versions (``checkpoint.pkl``, a pickle) are refused, never unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

__all__ = ["ARRAYS", "META", "LEGACY", "split_state", "join_state", "write", "read", "exists"]

ARRAYS, META, LEGACY = "checkpoint.npz", "checkpoint.json", "checkpoint.pkl"
FORMAT = 1


def split_state(obj, arrays: dict[str, np.ndarray], prefix: str = "s"):
    """JSON-able skeleton of ``obj``; its arrays go into ``arrays`` under keys from ``prefix``."""
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: split_state(v, arrays, f"{prefix}.{k}") for k, v in obj.items()}
        if all(isinstance(k, int) for k in obj):  # torch optimiser state: {param index: {...}}
            return {"__intkeys__": {str(k): split_state(v, arrays, f"{prefix}.{k}") for k, v in obj.items()}}
        raise TypeError(f"checkpoint: dict keys must be all str or all int at {prefix}; got {list(obj)}")
    if isinstance(obj, tuple | list):
        items = [split_state(v, arrays, f"{prefix}.{i}") for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, np.ndarray | np.generic):
        arrays[prefix] = np.asarray(obj)
        return {"__array__": prefix}
    if type(obj).__module__.startswith("torch"):
        arrays[prefix] = obj.detach().cpu().numpy()
        return {"__tensor__": prefix}
    raise TypeError(f"checkpoint: cannot store {type(obj).__name__} at {prefix} as data")


def join_state(skeleton, arrays):
    """Inverse of :func:`split_state` (``arrays``: a mapping of key -> array)."""
    if isinstance(skeleton, list):
        return [join_state(v, arrays) for v in skeleton]
    if not isinstance(skeleton, dict):
        return skeleton
    if "__array__" in skeleton:
        return np.asarray(arrays[skeleton["__array__"]])
    if "__tensor__" in skeleton:
        import torch

        return torch.from_numpy(np.array(arrays[skeleton["__tensor__"]]))  # a writable copy
    if "__tuple__" in skeleton:
        return tuple(join_state(v, arrays) for v in skeleton["__tuple__"])
    if "__intkeys__" in skeleton:
        return {int(k): join_state(v, arrays) for k, v in skeleton["__intkeys__"].items()}
    return {k: join_state(v, arrays) for k, v in skeleton.items()}


def _replace_atomically(path: Path, write_to) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write_to(tmp)
    os.replace(tmp, path)


def write(folder: Path, state: dict) -> None:
    """``state`` -> ``<folder>/checkpoint.npz`` and ``<folder>/checkpoint.json`` (each atomically)."""
    folder = Path(folder)
    arrays: dict[str, np.ndarray] = {}
    skeleton = split_state(state, arrays)
    token = int.from_bytes(os.urandom(6), "little")  # pairs the two files of one write
    arrays["__token__"] = np.asarray(token)

    def save_npz(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to the name
            np.savez(f, **arrays)

    def save_json(tmp: Path) -> None:
        tmp.write_text(json.dumps({"format": FORMAT, "token": token, "state": skeleton}, indent=1) + "\n")

    _replace_atomically(folder / ARRAYS, save_npz)
    _replace_atomically(folder / META, save_json)


def exists(folder: Path) -> bool:
    return (Path(folder) / META).exists()


def read(folder: Path) -> dict:
    """The ``state`` of :func:`write`; refuses pickled checkpoints of older versions."""
    folder = Path(folder)
    meta, npz, legacy = folder / META, folder / ARRAYS, folder / LEGACY
    if not meta.exists():
        if legacy.exists():
            raise ValueError(
                f"--resume: {legacy} is a checkpoint of an older version (a pickle, which can run "
                "code when loaded, so it is not read). Start a fresh run with another --out, or "
                "resume it with the version that wrote it."
            )
        raise FileNotFoundError(f"--resume: no checkpoint in {folder} (expected {META} and {ARRAYS})")
    info = json.loads(meta.read_text())
    if info.get("format") != FORMAT:
        raise ValueError(f"--resume: {meta} has format {info.get('format')!r}; this version reads "
                         f"{FORMAT}. Start a fresh run with another --out.")
    with np.load(npz, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if int(arrays.pop("__token__", -1)) != info["token"]:
        raise ValueError(f"--resume: {npz} and {meta} are from different saves (interrupted while "
                         "writing?); start a fresh run with another --out")
    return join_state(info["state"], arrays)
