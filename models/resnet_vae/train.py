"""Training for a number of epochs, steps and/or minutes, with checkpoints that resume exactly;
evaluation (nats, or bits/dim for colour).

Minibatches come from :func:`models.vae.train.epoch_batches` (dynamic binarization per epoch for
``mnist``/``digits``); the test ELBO and the importance-sampled ``log p(x)`` from
:func:`models.vae.train.evaluate` (``K`` draws of ``q`` per image, no free bits).

Checkpoints (``<out>/checkpoint.npz`` + ``checkpoint.json``, through :mod:`models.vae.checkpoint`:
data only, no pickle, each file replaced atomically) hold the run's identity (backend, dataset,
configuration, ``log_every``, ``init_batch``), the backend's full state (``vae.state_dict()``:
weights, optimiser state, RNG key or state), the data RNG's state at the start of the current
epoch, the epoch, the position in it, the step counter, the training seconds so far, the losses
of the steps since the last progress line and the history. A resumed run redraws the epoch's
minibatches from that RNG state, skips the steps already taken and continues with the same
updates in the same order: the history and the weights of the run that was never interrupted.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import numpy as np

from models.vae import checkpoint
from models.vae.train import epoch_batches, evaluate

from .config import ResNetVAEConfig

__all__ = ["train", "evaluate_images", "bits_per_dim", "save_checkpoint", "load_checkpoint", "restore",
           "finished_history"]


def _new_state(rng: np.random.Generator) -> dict:
    history = {"loss": [], "step": [], "seconds": [], "compile_seconds": None, "epochs": 0.0,
               "resumed_at": []}
    return {"epoch": 0, "pos": 0, "step": 0, "seconds": 0.0, "pending": [],
            "data_rng": rng.bit_generator.state, "history": history}


def save_checkpoint(folder: Path, vae, run: dict, state: dict) -> None:
    """``run`` (what identifies the run), the training ``state`` and ``vae.state_dict()`` into
    ``<folder>/checkpoint.npz`` and ``checkpoint.json``."""
    checkpoint.write(folder, {"run": run, "train": state, "vae": vae.state_dict()})


def load_checkpoint(folder: Path) -> dict:
    """``{"run", "train", "vae"}`` as :func:`save_checkpoint` wrote them."""
    return checkpoint.read(folder)


def _check_run(folder: Path, saved: dict, run: dict) -> None:
    def flat(d: dict) -> dict:
        config = {**ResNetVAEConfig().to_dict(), **d.get("config", {})}  # fields added since: defaults
        rest = {k: v for k, v in d.items() if k != "config"}
        return {**rest, **{f"config.{k}": v for k, v in config.items()}}

    saved, now = flat(saved), flat(run)
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
    if diff:
        lines = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {now.get(k)!r}" for k in diff)
        raise ValueError(f"--resume: {folder} holds another run ({lines}); rerun with the flags "
                         "that wrote it, or start a fresh run with another --out")


def restore(folder: Path):
    """``(vae, checkpoint)`` from a checkpoint folder: the VAE of the checkpoint's backend and
    configuration with its saved state loaded (e.g. to draw figures of a run trained elsewhere)."""
    from . import make_resnet_vae

    ckpt = load_checkpoint(folder)
    run = ckpt["run"]
    vae = make_resnet_vae(run["backend"], ResNetVAEConfig(**run["config"]))
    vae.load_state_dict(ckpt["vae"])
    return vae, ckpt


def _flush(state: dict) -> None:
    """A history entry for the steps since the last one (their losses: ``state["pending"]``)."""
    hist, pending = state["history"], state["pending"]
    if pending:
        hist["loss"].append(float(np.sum(pending)) / len(pending) / state["batch_size"])
        hist["step"].append(state["step"])
        hist["seconds"].append(state["seconds"])
        state["pending"] = []


def finished_history(state: dict) -> dict:
    """The history of a training ``state``, with the steps after the last progress line (a run
    stopped by ``max_steps``) as a last, shorter entry."""
    state = copy.deepcopy(state)
    _flush(state)
    return state["history"]


def train(vae, data, epochs: int, minutes: float | None = None, log_every: int = 0,
          verbose: bool = True, *, max_steps: int | None = None, out: Path | None = None,
          checkpoint_every: int | None = None, resume: bool = False, run: dict | None = None) -> dict:
    """Train to a total of ``epochs`` epochs (and at most ``max_steps`` steps), stopping early
    once the training seconds exceed ``minutes`` (checked at each progress line); all three count
    the whole run, across resumes. Returns the history: per-progress-line mean loss (nats/image
    over the steps since the previous line), steps, seconds (compilation excluded, reported apart
    as ``compile_seconds``, summed over sessions), ``epochs`` (fractional) and ``resumed_at``.

    Progress lines come every ``log_every`` steps of an epoch (default 50) and at its end.
    ``out``: write a checkpoint there every ``checkpoint_every`` steps (default: at each progress
    line) and at the end. ``resume``: continue from ``out``'s checkpoint; ``run`` (e.g. the data
    set) joins backend, configuration and ``log_every`` in what must match it.
    """
    cfg = vae.cfg
    chunk = log_every or 50
    run = {"backend": vae.backend, "config": cfg.to_dict(), "log_every": chunk, **(run or {})}
    rng = np.random.default_rng(cfg.seed)
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
    if resume:
        if out is None:
            raise ValueError("resume=True needs out (the folder of the checkpoint)")
        ckpt = load_checkpoint(out)
        _check_run(out, ckpt["run"], run)
        vae.load_state_dict(ckpt["vae"])
        state = ckpt["train"]
        state["history"]["resumed_at"].append(state["step"])
    else:
        state = _new_state(rng)
    state["batch_size"] = cfg.batch_size
    rng.bit_generator.state = state["data_rng"]
    hist = state["history"]

    def save() -> None:
        if out is not None:
            save_checkpoint(out, vae, run, state)

    def out_of_steps() -> bool:
        return max_steps is not None and state["step"] >= max_steps

    warm = timed_out = False
    saved_at = None
    while state["epoch"] < epochs and not out_of_steps() and not timed_out:
        batches = epoch_batches(data, rng, cfg.batch_size)  # rng: at the epoch's start
        nb = len(batches)
        if not warm:
            hist["compile_seconds"] = (hist["compile_seconds"] or 0.0) + vae.warmup(batches[0])
            warm = True
        epoch = state["epoch"]
        while state["epoch"] == epoch and not out_of_steps():
            pos, step = state["pos"], state["step"]
            if pos % chunk == 0 and minutes is not None and state["seconds"] > 60 * minutes:
                timed_out = True
                break
            end = min(nb, (pos // chunk + 1) * chunk)
            if checkpoint_every:
                end = min(end, pos + checkpoint_every - step % checkpoint_every)
            if max_steps is not None:
                end = min(end, pos + max_steps - step)
            t0 = time.perf_counter()
            losses = vae.train_steps(batches[pos:end])
            state["seconds"] += time.perf_counter() - t0
            state["pending"] += [float(v) for v in losses]
            state["pos"], state["step"] = end, step + end - pos
            hist["epochs"] = state["epoch"] + end / nb
            logged = end % chunk == 0 or end == nb
            if logged:
                _flush(state)
                if verbose:
                    print(f"epoch {state['epoch'] + 1} step {state['step']}: loss {hist['loss'][-1]:.3f} "
                          f"nats/image, {state['seconds']:.0f} s", flush=True)
            if end == nb:
                state["epoch"], state["pos"] = state["epoch"] + 1, 0
                state["data_rng"] = rng.bit_generator.state  # the next epoch's start
            if (state["step"] % checkpoint_every == 0) if checkpoint_every else logged:
                save()
                saved_at = state["step"]
    if saved_at != state["step"]:  # the end of training (or of a session with nothing left to do)
        save()
    return finished_history(state)


def bits_per_dim(nats_per_image: float, dims: int) -> float:
    """``-log p / (D ln 2)`` for a log-likelihood in nats per image of ``D`` numbers."""
    return -nats_per_image / (dims * math.log(2))


def evaluate_images(vae, x: np.ndarray, num_samples: int, chunk_images: int = 8) -> dict:
    """Test ELBO and IS log-likelihood (nats per image; plus bits/dim for 8-bit colour)."""
    n = (len(x) // chunk_images) * chunk_images or len(x)  # equal chunks: one compilation
    out = evaluate(vae, x[:n], num_samples, chunk_rows=chunk_images * num_samples)
    out["test_images"] = n
    out["is_samples"] = num_samples
    if vae.cfg.likelihood == "logistic":
        out["test_elbo_bits_per_dim"] = bits_per_dim(out["test_elbo"], vae.cfg.pixels)
        out["test_bits_per_dim"] = bits_per_dim(out["test_log_likelihood"], vae.cfg.pixels)
    return out
