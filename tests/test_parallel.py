"""Data-parallel SVI equals single-device SVI: NumPyro over 2 host devices, Pyro over 2 processes.

The device count (``XLA_FLAGS``) and the ``torch.distributed`` process group are process-wide,
so each backend's check runs in its own subprocess (tests/parallel_check.py); both start at
once, when the first test here asks for them, and the tests compare the numbers they save.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

CHECK = Path(__file__).with_name("parallel_check.py")
RTOL = 1e-5  # float32: the all-reduce sums the shards in another order than one device does
TIMEOUT = 300


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{backend: (facts, arrays)}`` from one subprocess per backend (run concurrently)."""
    tmp = tmp_path_factory.mktemp("parallel")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OMP_NUM_THREADS": "1",
           "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = {b: subprocess.Popen([sys.executable, str(CHECK), b, str(tmp / b)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for b in ("numpyro", "pyro")}
    out = {}
    for b, p in procs.items():
        log, _ = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, f"{CHECK.name} {b} failed:\n{log[-4000:]}"
        out[b] = (json.loads((tmp / f"{b}.json").read_text()), dict(np.load(tmp / f"{b}.npz")))
    return out


def _rel(a, b) -> float:
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


def _compare(arrays: dict, ref: str, other: str) -> tuple[int, float, float]:
    """``(number of arrays, max relative difference other vs ref, max relative move from init)``."""
    keys = [k[len(ref) + 1 :] for k in arrays if k.startswith(ref + "/")]
    assert keys and all(f"{other}/{k}" in arrays for k in keys), "runs saved different parameters"
    diff = max(_rel(arrays[f"{ref}/{k}"], arrays[f"{other}/{k}"]) for k in keys)
    moved = max(_rel(arrays[f"init/{k}"], arrays[f"{ref}/{k}"]) for k in keys if f"init/{k}" in arrays)
    return len(keys), diff, moved


def test_numpyro_sharded_step_equals_single_device(runs):
    facts, arrays = runs["numpyro"]
    n, diff, moved = _compare(arrays, "single", "parallel")
    assert n > 10  # losses + encoder, decoder, IAF weights
    assert diff < RTOL
    assert moved > 1e3 * RTOL  # the steps did change the parameters
    # the parallel run used update.lower(...).compile(); a plain call gives the same first step
    assert abs(facts["direct_first_loss"] / arrays["single/loss"][0] - 1) < RTOL


def test_numpyro_batch_is_split_over_two_devices(runs):
    facts, _ = runs["numpyro"]
    assert facts["devices"] == 2
    assert facts["batch_devices"] == 2
    assert facts["shard_rows"] == [4]  # batch 8 -> 4 rows per device
    assert facts["state_replicated"] and facts["state_devices"] == 2


def test_numpyro_indivisible_batch_names_the_fix(runs):
    msg = runs["numpyro"][0]["indivisible_error"]
    assert "batch size 7" in msg and "multiple of 2" in msg and "devices=" in msg


@pytest.mark.parametrize("case", ["regression", "vae"])
def test_pyro_ddp_step_equals_single_process(runs, case):
    """``regression``: global latents, plate scaled to the full data (reduction ``"mean"``),
    compared with plain ``SVI.step`` on the full batch; ``vae``: local latents (``"sum"``),
    compared with one process accumulating the shards' gradients before each Adam step."""
    facts, arrays = runs["pyro"]
    assert facts["world_size"] == 2
    for rank in (0, 1):
        sub = {k: v for k, v in arrays.items() if k.split("/")[1] == case}
        sub = {k.replace(f"/{case}/", "/", 1): v for k, v in sub.items()}
        n, diff, moved = _compare(sub, "single", f"rank{rank}")
        assert n >= 4  # losses, loc, scale, one packed tensor per flow step (more for the VAE)
        assert diff < RTOL
        assert moved > 1e3 * RTOL


def test_pyro_indivisible_batch_names_the_fix(runs):
    msg = runs["pyro"][0]["indivisible_error"]
    assert "batch size 7" in msg and "multiple of 2" in msg


def test_pyro_shard_rows_and_errors():
    import torch

    from pyro_iaf.parallel import DataParallelSVI, shard

    x = torch.arange(12.0).reshape(6, 2)
    assert torch.equal(torch.cat([shard(x, r, 3) for r in range(3)]), x)
    assert shard(x, 2, 3)[0, 0].item() == 8.0
    with pytest.raises(ValueError, match="keyword arguments"):
        shard(torch.tensor(1.0), 0, 2)
    with pytest.raises(ValueError, match="reduction"):
        DataParallelSVI(lambda: None, lambda: None, None, None, reduction="avg")


TINY_ARGS = ["--steps", "2", "--repeats", "1", "--batch-size", "8", "--hidden", "16", "--width", "16"]


def _module(name: str, *args: str, tmp: Path, **env) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAX_PLATFORMS": "cpu", **env}
    res = subprocess.run([sys.executable, "-m", name, "--out", str(tmp), *TINY_ARGS, *args],
                         cwd=CHECK.parents[1], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


@pytest.mark.slow
def test_smoke_accelerator_runs_every_case_in_float32(tmp_path):
    _module("models.bench.smoke_accelerator", tmp=tmp_path)
    rows = json.loads((tmp_path / "smoke.json").read_text())
    assert [(r["backend"], r["case"]) for r in rows] == [
        (b, c) for b in ("numpyro", "pyro") for c in ("iaf_linear_gaussian", "vae_auto", "vae_hand")]
    assert all(r["finite"] and r["dtype"] == "float32" and r["ms_per_step"] > 0 for r in rows)
    assert "| numpyro | vae_hand |" in (tmp_path / "smoke.md").read_text()


@pytest.mark.slow
def test_bench_parallel_one_and_two_workers_agree(tmp_path):
    _module("models.bench.parallel", "--no-docs", tmp=tmp_path)
    rows = {(r["backend"], r["workers"]): r for r in json.loads((tmp_path / "parallel.json").read_text())}
    assert set(rows) == {(b, n) for b in ("numpyro", "pyro") for n in (1, 2)}
    # NumPyro: the same steps on 1 or 2 devices end at the same loss (same seed, sharding aside)
    assert abs(rows["numpyro", 2]["loss"] / rows["numpyro", 1]["loss"] - 1) < 1e-4
    assert all(np.isfinite(r["loss"]) and r["ms_per_step"] > 0 for r in rows.values())
    assert "Not a speed-up measurement" in (tmp_path / "parallel.md").read_text()
