"""``Program``: one translated Stan program (model body, its latent sites, data preparation)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: ``((name, shape, kind), ...)``: latents in execution order = sorted names (how both
#: ``AutoContinuous`` ravel them); ``kind`` as in :data:`models.posteriordb.prims.KINDS`
SiteKinds = tuple[tuple[str, tuple[int, ...], str], ...]


def _same_names(draws: dict[str, np.ndarray], data: dict) -> dict[str, np.ndarray]:
    return draws


@dataclass(frozen=True)
class Program:
    """``model(*prepare(data))`` is the Stan program's log density on ``data``.

    ``sites(data)`` lists the latents; ``to_sites(draws, data)`` maps the reference draws
    (``{stan name: [..., *shape]}``, constrained) to constrained values of those sites
    (default: same names, e.g. where the site is a reparametrization of a Stan parameter).
    """

    model: Callable
    sites: Callable[[dict], SiteKinds]
    prepare: Callable[[dict], tuple]
    to_sites: Callable[[dict, dict], dict] = _same_names
