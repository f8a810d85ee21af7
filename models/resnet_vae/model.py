"""The ResNet VAE's model and guide, written once against pyro-api (:mod:`models.api`).

    p(x, z) = p(z_{L-1}) prod_{i<L-1} p(z_i | z_{>i}) p(x | z),  p(z_i | .) = N(pm_i, exp(p_logsd_i))
    q(z | x) = prod_i q(z_i | x, z_{>i}):  z_i^0 ~ N(qm_i + rm_i, exp(q_logsd_i + r_logsd_i)),
               z_i = IAF_i(z_i^0; c_up_i + c_down_i),  log q(z_i) = log N(z_i^0) - sum_t log sigma_t

Sites: ``"z<i>"`` ``[B, zdim, s_i, s_i]`` (event dim 3), with the guide's auxiliary ``"z<i>_0"``
when there is an IAF (a ``Delta`` at ``"z<i>"`` carries ``-log|det|``, as in
:mod:`models.vae.model`); ``"x"`` ``[B, C*S*S]``. The networks (``nets``: a backend's
:class:`~models.resnet_vae.numpyro_backend.NumPyroNets` or ``PyroNets``) give ``params()``
(registered natively) and the :class:`~models.resnet_vae.nets.Net` methods.

Free bits (the paper's eq. 15): groups are the latent feature maps of each layer, ``KL_{i,c}``
the minibatch mean of the single-sample ``sum_pixels (log q - log p)``; the guide factor
``B * sum relu(lambda - KL_{i,c})`` makes ``Trace_ELBO`` equal ``B * [E log p(x|z) -
sum max(lambda, KL)]``.

One top-down pass per ELBO: the prior's parameters come from the same convolutions as the
posterior's, so the guide leaves its pass on ``nets`` (:class:`GuidePass`) and the model, when it
replays the guide's own draws with the same parameters, takes it instead of recomputing it
(NumPyro's compiled step: 2.64 -> 2.11 GFLOP at the ``mnist`` preset; docs/benchmarks/vae.md).
"""

from __future__ import annotations

from models.api import current_backend, dist, ops, pyro

__all__ = ["resnet_vae_model", "resnet_vae_guide", "layer_terms", "GuidePass"]


def resnet_vae_model(x, nets, num: int | None = None):
    """Generative model; ``x [B, C*S*S]`` observed, or ``None`` to sample ``num`` images.

    Returns the decoder's output ``[B, C, S, S]`` (logits or logistic means). Replaying the
    guide's draws with the same parameters (as every ELBO does), it takes the guide's top-down
    pass instead of recomputing it (:class:`GuidePass`)."""
    B = num if x is None else x.shape[0]
    p = nets.params()
    L = nets.layers(p)
    shared = GuidePass.take(nets, p)
    with pyro.plate("data", B):
        h = nets.top(p, B)
        for i in reversed(range(nets.cfg.num_layers)):
            got = shared.pop(i, None) if shared else None
            if got is not None:
                z_guide, pm, p_logsd, d, h_next = got
            else:
                pm, p_logsd, _, _, _, d = nets.down(L, i, h)
            z = pyro.sample(f"z{i}", dist.Normal(pm, ops.exp(p_logsd)).to_event(3))
            if got is not None and z is z_guide:
                h = h_next
            else:  # another z than the guide's: the layers below are recomputed
                shared = None
                h = nets.merge(L, i, h, z, d)
        out = nets.decode(L, h)
        pyro.sample("x", nets.likelihood(p, out).to_event(1), obs=x)
    return out


def resnet_vae_guide(x, nets, free_bits: float = 0.0):
    """Bidirectional-inference posterior for ``x [B, C*S*S]``; returns ``{"z<i>": z_i}``."""
    B = x.shape[0]
    p = nets.params()
    L = nets.layers(p)
    ups = nets.up(L, nets.image(x))
    zs, kls, top_down = {}, [], {}
    with pyro.plate("data", B):
        h = nets.top(p, B)
        for i in reversed(range(nets.cfg.num_layers)):
            qm, q_logsd, c_up = ups[i]
            pm, p_logsd, rm, r_logsd, c_down, d = nets.down(L, i, h)
            base = dist.Normal(qm + rm, ops.exp(q_logsd + r_logsd))
            if nets.cfg.flows:
                z0 = pyro.sample(f"z{i}_0", base.to_event(3), infer={"is_auxiliary": True})
                z, log_sigma = nets.flow(p, i, z0, c_up + c_down)
                site = pyro.sample(f"z{i}", dist.Delta(z, log_density=-log_sigma.sum((1, 2, 3)), event_dim=3))
                log_q = base.log_prob(z0) - log_sigma
            else:
                z = site = pyro.sample(f"z{i}", base.to_event(3))
                log_q = base.log_prob(z)
            if free_bits > 0:
                log_p = dist.Normal(pm, ops.exp(p_logsd)).log_prob(z)
                kls.append((log_q - log_p).sum((2, 3)).mean(0))  # [zdim]
            zs[f"z{i}"] = z
            h = nets.merge(L, i, h, z, d)
            top_down[i] = (site, pm, p_logsd, d, h)
    GuidePass.put(nets, p, top_down)
    if free_bits > 0:
        shortfall = free_bits - ops.stack(kls)
        _guide_factor("free_bits", B * ops.maximum(shortfall, 0 * shortfall).sum())
    return zs


class GuidePass:
    """The guide's top-down pass, left on ``nets`` for the model to take instead of recomputing it.

    Per layer ``i``: ``(z_i as its sample site returned it, pm, p_logsd, d, h after the merge)``.
    The model takes it only with the very parameter dict ``p`` the guide read (``is``), and uses
    layer ``i``'s entry only while every draw above it is the guide's own object (replayed, not
    resampled or conditioned on other values); otherwise it recomputes, so the result is always
    the model's own. Taking it clears it: one guide run serves at most one model run. In a jitted
    NumPyro step both run in one trace, so the arrays are that trace's values."""

    ATTR = "_guide_pass"

    @classmethod
    def put(cls, nets, p, layers: dict) -> None:
        setattr(nets, cls.ATTR, (p, layers))

    @classmethod
    def take(cls, nets, p) -> dict | None:
        stored = getattr(nets, cls.ATTR, None)
        setattr(nets, cls.ATTR, None)
        if stored is None or stored[0] is not p:
            return None
        return dict(stored[1])


def _guide_factor(name: str, value) -> None:
    if current_backend() == "pyro":
        pyro.factor(name, value, has_rsample=True)
    else:
        pyro.factor(name, value)


def layer_terms(nets, p, x, draws: dict) -> list[dict]:
    """The guide's deterministic path at pinned base draws, elementwise, for checks: per layer
    (bottom first) ``{"loc", "scale", "context", "prior_loc", "prior_scale", "z0", "z",
    "log_sigma"}``, each ``[B, ., s, s]``. ``draws``: ``{"z<i>_0": z0}`` (IAF) or ``{"z<i>": z}``."""
    F = nets.F
    L = nets.layers(p)
    ups = nets.up(L, nets.image(x))
    out = [None] * nets.cfg.num_layers
    h = nets.top(p, x.shape[0])
    for i in reversed(range(nets.cfg.num_layers)):
        qm, q_logsd, c_up = ups[i]
        pm, p_logsd, rm, r_logsd, c_down, d = nets.down(L, i, h)
        t = dict(loc=qm + rm, scale=F.exp(q_logsd + r_logsd), context=c_up + c_down,
                 prior_loc=pm, prior_scale=F.exp(p_logsd))
        if nets.cfg.flows:
            t["z0"] = draws[f"z{i}_0"]
            t["z"], t["log_sigma"] = nets.flow(p, i, t["z0"], t["context"])
        else:
            t["z0"] = t["z"] = draws[f"z{i}"]
            t["log_sigma"] = 0 * t["z"]
        out[i] = t
        h = nets.merge(L, i, h, t["z"], d)
    return out
