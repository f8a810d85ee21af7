"""``ModelSpec`` (what a model factory returns) and ``Reference`` (what the posterior looks like).

Every reference summarizes the posterior over the *flattened unconstrained latent vector*
``z [latent_dim]``: sites in ``sites`` order (= execution order = sorted names, which is how both
Pyro's and NumPyro's ``AutoContinuous`` ravel them), each site flattened in C order and mapped to
R^n by ``biject_to(site.support).inv`` (e.g. ``log`` for positive sites, ``logit`` for (0, 1)).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_DIR = Path(__file__).parent / "targets" / "references"
Sites = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class Reference:
    """Posterior summary over the flat unconstrained latent vector (all arrays float64).

    ``mean [D]``, ``sd [D]``, optional ``cov [D, D]``, ``quantiles {q: [D]}``, ``log_evidence``
    (``log p(data)``, exact models only). ``source`` is "exact", "exact+sampling" or "nuts";
    ``info`` records how it was made (seeds, settings, diagnostics).
    """

    sites: Sites
    mean: np.ndarray
    sd: np.ndarray
    cov: np.ndarray | None = None
    quantiles: dict[float, np.ndarray] | None = None
    log_evidence: float | None = None
    source: str = "exact"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def latent_dim(self) -> int:
        return int(self.mean.shape[0])


@dataclass
class ModelSpec(Mapping):
    """A benchmark model bound to one backend; also a read-only mapping (pyro-api style).

    ``model(*model_args, **model_kwargs)`` runs under ``backend`` (arguments are arrays of that
    backend); ``raw_model`` is the written-once body that follows the current pyro-api backend.
    ``sites`` lists ``(name, shape)`` of the latents in flattening order; ``config`` the
    factory's arguments; ``data_digest`` identifies the data a stored reference was made for;
    ``cache`` holds compiled helpers (e.g. ``api.log_joint`` in NumPyro). ``batched``: the body
    broadcasts over Pyro's vectorized particles (``Trace_ELBO(vectorize_particles=True)``; checked
    by ``tests/test_models.py``); the posteriordb translations score one draw at a time.
    """

    name: str
    backend: str
    model: Callable
    model_args: tuple
    model_kwargs: dict[str, Any]
    latent_dim: int
    sites: Sites
    reference: Reference | None
    raw_model: Callable
    config: dict[str, Any] = field(default_factory=dict)
    data_digest: str = ""
    batched: bool = True
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def vectorize_particles(self, particles: int) -> bool:
        """Whether Pyro's ``Trace_ELBO`` may draw ``particles`` in one batch on this model."""
        return particles > 1 and self.batched

    @property
    def log_evidence(self) -> float | None:
        return None if self.reference is None else self.reference.log_evidence

    @property
    def posterior_mean(self) -> np.ndarray | None:
        return None if self.reference is None else self.reference.mean

    @property
    def posterior_sd(self) -> np.ndarray | None:
        return None if self.reference is None else self.reference.sd

    @property
    def posterior_cov(self) -> np.ndarray | None:
        return None if self.reference is None else self.reference.cov

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys():
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self):
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())

    @staticmethod
    def _keys() -> tuple[str, ...]:
        return ("model", "model_args", "model_kwargs", "latent_dim", "sites", "reference")


def latent_dim_of(sites: Sites) -> int:
    return int(sum(np.prod(shape, dtype=int) for _, shape in sites))


def data_digest(*arrays: np.ndarray) -> str:
    """Short hash of the data (rounded to 6 decimals) so stale reference files are detected."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.round(np.asarray(a, np.float64), 6)).tobytes())
    return h.hexdigest()[:16]


def reference_path(name: str) -> Path:
    return REFERENCE_DIR / f"{name}.json"


def load_reference(name: str, config: dict[str, Any], digest: str) -> Reference | None:
    """The stored reference for ``name`` if it was made for this ``config`` and data, else None."""
    path = reference_path(name)
    if not path.exists():
        warnings.warn(f"No reference file {path}; run `python -m models.targets.make_references`",
                      stacklevel=3)
        return None
    raw = json.loads(path.read_text())
    if raw["config"] != json.loads(json.dumps(config)):
        return None  # non-default arguments: no reference
    if raw["data_digest"] != digest:
        warnings.warn(f"{path} was made for other data; rerun `python -m models.targets.make_references`",
                      stacklevel=3)
        return None
    arr = np.asarray
    return Reference(
        sites=tuple((k, tuple(s)) for k, s in raw["sites"]),
        mean=arr(raw["mean"], float),
        sd=arr(raw["sd"], float),
        cov=None if raw.get("cov") is None else arr(raw["cov"], float),
        quantiles={float(q): arr(v, float) for q, v in raw["quantiles"].items()},
        log_evidence=raw.get("log_evidence"),
        source=raw["source"],
        info=raw["info"],
    )


def save_reference(name: str, config: dict[str, Any], digest: str, ref: Reference) -> Path:
    """Write ``ref`` to ``models/targets/references/<name>.json`` (values rounded to 6 significant)."""

    def r(x: np.ndarray) -> Any:
        return np.vectorize(lambda v: float(f"{v:.6g}"), otypes=[float])(x).tolist()

    raw = {
        "name": name,
        "config": config,
        "data_digest": digest,
        "sites": [[k, list(s)] for k, s in ref.sites],
        "latent_dim": ref.latent_dim,
        "source": ref.source,
        "log_evidence": ref.log_evidence,
        "mean": r(ref.mean),
        "sd": r(ref.sd),
        "quantiles": {str(q): r(v) for q, v in (ref.quantiles or {}).items()},
        "cov": None if ref.cov is None else r(ref.cov),
        "info": ref.info,
    }
    path = reference_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(raw, indent=1) + "\n")
    return path


def _convert(x: Any) -> Any:
    from models.api import as_array

    if isinstance(x, np.ndarray):
        return as_array(x, "int64" if np.issubdtype(x.dtype, np.integer) else None)
    return x


def build_spec(
    name: str,
    raw_model: Callable,
    args: tuple,
    kwargs: dict[str, Any],
    sites: Sites,
    reference: Reference | None,
    config: dict[str, Any],
    digest: str = "",
    batched: bool = True,
) -> ModelSpec:
    """Bind ``raw_model`` to the current backend; NumPy arrays in ``args``/``kwargs`` become
    backend arrays (default float, i.e. float32, or int64/int32 for integer data); other values
    pass through."""
    from models.api import bind, current_backend

    name_b = current_backend()
    if reference is not None and reference.sites != sites:
        raise AssertionError(f"{name}: reference sites {reference.sites} != model sites {sites}")
    return ModelSpec(
        name=name,
        backend=name_b,
        model=bind(raw_model, name_b),
        model_args=tuple(_convert(a) for a in args),
        model_kwargs={k: _convert(v) for k, v in kwargs.items()},
        latent_dim=latent_dim_of(sites),
        sites=sites,
        reference=reference,
        raw_model=raw_model,
        config=dict(config),
        data_digest=digest,
        batched=batched,
    )
