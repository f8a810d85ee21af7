"""The 45 posteriors of the Stan posterior database (``../shared/posteriordb``) as benchmark targets.

Each Stan program is translated once over :mod:`models.api` (``programs_*.py``); a posterior is a
program on a data set, and :func:`get_posterior` builds its :class:`~models.spec.ModelSpec` with
the reference draws mapped to the flat unconstrained latent vector:

>>> spec = get_posterior("eight_schools-eight_schools_noncentered", backend="numpyro")  # doctest: +SKIP
>>> spec.sites, spec.reference.source                                                    # doctest: +SKIP
((('mu', ()), ('tau', ()), ('theta_trans', (8,))), 'posteriordb')

``POSTERIOR_NAMES`` lists all 45; ``models.targets.registry.get_model`` and
``python -m models.compare --models <name>`` (or ``--suite posteriordb``) accept them too.
"""

from __future__ import annotations

import functools

import numpy as np

from models.posteriordb.loader import (
    PosteriorDBNotFound,
    available,
    load_data,
    load_posterior_info,
    load_reference_draws,
    load_stan_code,
    posteriordb_path,
)
from models.posteriordb.prims import unconstrain
from models.posteriordb.program import Program
from models.posteriordb.programs_glm import PROGRAMS as _GLM
from models.posteriordb.programs_misc import PROGRAMS as _MISC
from models.posteriordb.programs_ts import PROGRAMS as _TS
from models.spec import ModelSpec, Reference, build_spec, data_digest

__all__ = [
    "POSTERIOR_NAMES",
    "PROGRAMS",
    "PosteriorDBNotFound",
    "available",
    "get_posterior",
    "load_data",
    "load_posterior_info",
    "load_reference_draws",
    "load_stan_code",
    "posteriordb_path",
    "program_of",
    "reference_latent_draws",
]

#: Stan model name -> translated program
PROGRAMS: dict[str, Program] = {**_GLM, **_TS, **_MISC}

#: the 45 posteriors of ``../shared/posteriordb`` (all with reference draws), sorted
POSTERIOR_NAMES: tuple[str, ...] = tuple(sorted(
    [f"earnings-{m}" for m in ("earn_height", "log10earn_height", "logearn_height",
                               "logearn_height_male", "logearn_interaction",
                               "logearn_interaction_z", "logearn_logheight_male")]
    + [f"kidiq-{m}" for m in ("kidscore_interaction", "kidscore_momhs", "kidscore_momhsiq",
                              "kidscore_momiq")]
    + [f"kidiq_with_mom_work-{m}" for m in ("kidscore_interaction_c", "kidscore_interaction_c2",
                                            "kidscore_interaction_z", "kidscore_mom_work")]
    + [f"mesquite-{m}" for m in ("logmesquite", "logmesquite_logva", "logmesquite_logvas",
                                 "logmesquite_logvash", "logmesquite_logvolume", "mesquite")]
    + [f"nes{y}-nes" for y in range(1972, 2001, 4)]
    + ["arK-arK", "arma-arma11", "bball_drive_event_0-hmm_drive_0",
       "bball_drive_event_1-hmm_drive_1", "diamonds-diamonds",
       "eight_schools-eight_schools_noncentered", "garch-garch11", "gp_pois_regr-gp_pois_regr",
       "gp_pois_regr-gp_regr", "hmm_example-hmm_example", "hudson_lynx_hare-lotka_volterra",
       "kilpisjarvi_mod-kilpisjarvi", "low_dim_gauss_mix-low_dim_gauss_mix",
       "one_comp_mm_elim_abs-one_comp_mm_elim_abs", "sblrc-blr", "sblri-blr"]))


def _split(name: str) -> tuple[str, str]:
    if name not in POSTERIOR_NAMES:
        raise ValueError(f"Unknown posterior {name!r}; expected one of POSTERIOR_NAMES, e.g. "
                         f"{POSTERIOR_NAMES[0]!r}")
    data_name, model_name = name.rsplit("-", 1)
    return data_name, model_name


def program_of(name: str) -> Program:
    """The translated program of posterior ``name`` (``"<data>-<model>"``)."""
    return PROGRAMS[_split(name)[1]]


@functools.cache
def reference_latent_draws(name: str) -> np.ndarray:
    """The reference draws of ``name`` as flat unconstrained latent vectors ``[chains, draws, D]``
    (float64; sites in ``spec.sites`` order, each flattened in C order)."""
    data_name, _ = _split(name)
    program, data = program_of(name), load_data(data_name)
    values = program.to_sites(load_reference_draws(name), data)
    parts = []
    for site, shape, kind in program.sites(data):
        v = unconstrain(kind, values[site])
        if v.shape[2:] != shape:
            raise AssertionError(f"{name}: site {site} draws have shape {v.shape[2:]}, expected {shape}")
        parts.append(v.reshape(v.shape[:2] + (-1,)))
    return np.concatenate(parts, -1)


@functools.cache
def _reference(name: str) -> Reference:
    z = reference_latent_draws(name)
    flat = z.reshape(-1, z.shape[-1])
    data_name, _ = _split(name)
    program, data = program_of(name), load_data(data_name)
    qs = (0.05, 0.25, 0.5, 0.75, 0.95)
    return Reference(
        sites=tuple((n, s) for n, s, _ in program.sites(data)),
        mean=flat.mean(0), sd=flat.std(0, ddof=1), cov=np.atleast_2d(np.cov(flat, rowvar=False)),
        quantiles={q: np.quantile(flat, q, axis=0) for q in qs}, source="posteriordb",
        info={"draws": int(flat.shape[0]), "chains": int(z.shape[0]),
              "origin": "stan-dev/posteriordb reference_posteriors (long Stan NUTS runs)"})


def get_posterior(name: str, backend: str | None = None) -> ModelSpec:
    """``ModelSpec`` of posterior ``name`` under ``backend`` ("pyro" / "numpyro"; default: current).

    ``spec.reference`` summarizes the 10,000 reference draws over the flat unconstrained latent
    vector (``source="posteriordb"``). Raises :class:`PosteriorDBNotFound` without the database.
    """
    from models.api import backend as use_backend
    from models.api import current_backend

    data_name, _ = _split(name)
    program, data = program_of(name), load_data(data_name)
    args = tuple(np.asarray(a, float) for a in program.prepare(data))  # all data as floats
    sites = tuple((n, s) for n, s, _ in program.sites(data))
    digest = data_digest(*[a for a in args if isinstance(a, np.ndarray)])
    with use_backend(backend or current_backend()):
        return build_spec(name, program.model, args, {}, sites, _reference(name), {}, digest,
                          batched=False)
