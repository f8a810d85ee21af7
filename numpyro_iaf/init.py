"""The default start of our guides: the prior median, from enough draws to be near it."""

from __future__ import annotations

from functools import partial

from numpyro.infer.initialization import init_to_median

__all__ = ["GLOBAL_MEDIAN_SAMPLES", "init_to_global_median"]


#: Prior draws behind the default initial value of an unplated (global) site: its prior median.
GLOBAL_MEDIAN_SAMPLES = 1001


def init_to_global_median(site=None, num_samples: int = GLOBAL_MEDIAN_SAMPLES):
    """``init_to_median`` with ``num_samples`` draws for sites outside every plate (15, NumPyro's
    default, elsewhere): the median of 15 draws scatters by ~0.3 prior sd, which a global's
    ``loc`` must then cross at Adam's ~``lr`` per step.

    Args:
        site: the site to initialise (None returns the strategy itself, as Pyro's init strategies
            do).
        num_samples: prior draws whose median starts a site outside every plate.
    """
    if site is None:  # a partial, as NumPyro's own strategies
        return partial(init_to_global_median, num_samples=num_samples)
    plated = bool(site.get("cond_indep_stack"))
    return init_to_median(site, num_samples=15 if plated else num_samples)
