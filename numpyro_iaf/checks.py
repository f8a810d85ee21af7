"""Model checks with errors that name the site and the fix."""

from __future__ import annotations

from collections.abc import Iterable

from numpyro.distributions import biject_to

__all__ = ["check_latent_sites", "NonFiniteLossError", "MAX_SKIPPED_STEPS", "skipped_warning"]

#: ``fit`` skips up to this many steps in a row whose loss or gradient is not finite, then raises.
MAX_SKIPPED_STEPS = 10


class NonFiniteLossError(FloatingPointError):
    """The ELBO or its gradient stayed NaN or infinite for ``MAX_SKIPPED_STEPS`` steps in a row
    (``fit`` skips fewer); no work is lost.

    ``step``: the first bad step of that run; ``losses``: the finite losses before it; ``params``: the
    constrained parameters of the last point whose loss was finite (where step ``step`` started,
    or one step earlier when its loss was the non-finite one); ``state``: the same point as
    NumPyro's ``SVIState``. Resume with ``fit(..., init_params=error.params)`` and a smaller step size.
    """

    step: int = -1
    loss: float = float("nan")
    losses: list = []
    params: dict | None = None
    state: object = None

    @classmethod
    def at_step(
        cls,
        step: int,
        loss: float,
        lr: float | None,
        *,
        params: dict | None = None,
        state: object = None,
        losses: list | None = None,
        skipped: int = 0,
    ) -> NonFiniteLossError:
        hint = f"lower the learning rate (now {lr:g})" if lr is not None else "lower the learning rate"
        what = (
            f"the gradient or the parameters became NaN or infinite at step {step} (loss {loss:.6g})"
            if loss == loss and abs(loss) != float("inf")
            else f"the loss became {loss} at step {step}"
        )
        if skipped:
            what += (f" and stayed so for {skipped} steps in a row (fit skips up to "
                     f"max_skipped_steps={skipped})")
        resume = (
            " The last parameters with a finite loss are in error.params: resume with "
            "fit(..., init_params=error.params)."
            if params is not None
            else ""
        )
        error = cls(
            f"{what}. Try to {hint}, start closer to the data (init_loc_fn=init_to_median, a "
            f"smaller init_scale), or use more particles.{resume}"
        )
        error.step, error.loss, error.params, error.state = step, loss, params, state
        error.losses = [] if losses is None else list(losses)
        return error


def check_latent_sites(guide_name: str, sites: Iterable[dict], amortized_name: str) -> None:
    """Raise ``ValueError`` for discrete latents, supports without a bijection, local latents in
    subsampled plates, and models without latents.

    ``sites`` are trace entries of the model's unobserved sample sites, each with ``name``,
    ``fn`` and ``cond_indep_stack`` (frames with ``name``, ``size`` and ``full_size``).
    """
    count = 0
    for site in sites:
        count += 1
        name, fn = site["name"], site["fn"]
        if fn.support.is_discrete:
            raise ValueError(
                f"{guide_name} cannot handle discrete latent site '{name}' ({fn.support}). "
                "Enumerate it as documented in https://num.pyro.ai/en/stable/funsor.html "
                "(config_enumerate + TraceEnum_ELBO; needs funsor) and hide it from this guide: "
                f"{guide_name}(handlers.block(model, hide=['{name}'])), or marginalize it in the model."
            )
        try:
            biject_to(fn.support)
        except NotImplementedError:
            if "sphere" in repr(fn.support).lower():
                raise ValueError(
                    f"{guide_name} cannot handle spherical latent site '{name}' ({fn.support}): there is "
                    "no bijection from the sphere to unconstrained space. Reparametrize it with "
                    "ProjectedNormalReparam (from numpyro.infer.reparam import ProjectedNormalReparam): "
                    f"{guide_name}(handlers.reparam(model, config={{'{name}': ProjectedNormalReparam()}}))."
                ) from None
            raise ValueError(
                f"{guide_name} cannot map the latent site '{name}' ({fn.support}) to unconstrained "
                "space: NumPyro registers no bijection for this support. Reparametrize the site (e.g. a "
                "covariance as LKJCholesky correlations and positive scales) or register a transform "
                "with biject_to.register."
            ) from None
        for frame in site["cond_indep_stack"]:
            full_size = getattr(frame, "full_size", None)
            if full_size is not None and frame.size != full_size:
                raise ValueError(
                    f"{guide_name}: latent site '{name}' is local to the subsampled plate "
                    f"'{frame.name}' ({frame.size} of {full_size}); its parameters would grow with "
                    f"the data. Use {amortized_name}(model) for local latent variables."
                )
    if count == 0:
        raise ValueError(
            f"{guide_name} found no latent sample sites in the model: there is nothing to infer. "
            "Use an empty guide (def guide(*args, **kwargs): pass) or check that latents are not "
            "all observed."
        )


def skipped_warning(steps: list[int], num_steps: int) -> str:
    """The warning ``fit`` gives when it skipped ``steps`` (of ``num_steps``)."""
    shown = ", ".join(str(s) for s in steps[:5]) + (", ..." if len(steps) > 5 else "")
    return (
        f"fit skipped {len(steps)} of {num_steps} steps whose loss or gradient was not finite "
        f"(steps {shown}): the guide drew points where the model's log density or its gradient "
        "is not finite in this precision. If this happens often, lower the learning rate or "
        "start closer to the data; FitResult.skipped_steps lists them."
    )
