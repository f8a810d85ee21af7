"""The VAE's model and guides, written once against pyro-api (:mod:`models.api`).

    p(z) = N(0, I_D),  p(x | z) = Bernoulli(logits = decoder(z))            x [B, P] in {0, 1}
    q(z | x): (mu, sigma, h) = encoder(x),  z_0 = mu + sigma * eps,  z = IAF_h(z_0)
    log q(z | x) = log N(z_0; mu, sigma) - sum_t sum_i log sigma_{t,i}       (diagonal: no IAF)

The networks come from ``nets`` (:class:`models.vae.pyro_backend.PyroNets` or
:class:`models.vae.numpyro_backend.NumPyroNets`), which register their parameters natively
(``pyro.module`` / ``numpyro.param``) and expose ``encode(x)``, ``decode(z)``, ``flow(z0, h) ->
(z, log_sigma_sum [B, D])`` and ``has_flow``. The IAF guide samples ``z_0`` at an auxiliary
site and puts ``z`` at a ``Delta`` site whose ``log_density`` is ``-log|det|`` (the pattern of
Pyro's and NumPyro's ``AutoContinuous``), so plain ``Trace_ELBO`` sees ``log q(z | x)``.

Free bits (Kingma et al. 2016, eq. (15)): ``L = E[log p(x|z)] - sum_j max(lambda, KL_j)``, with
``KL_j`` the minibatch mean of the single-sample ``log q_j - log p_j`` of latent ``j``. It enters
as a guide factor ``B * sum_j relu(lambda - KL_j)`` (a guide factor is subtracted from the ELBO in
both PPLs), so ``Trace_ELBO`` of (model, guide) is exactly ``B * L``.
"""

from __future__ import annotations

from models.api import current_backend, dist, ops, pyro

__all__ = ["vae_model", "vae_guide"]


def vae_model(x, nets) -> None:
    """Generative model for a minibatch ``x [B, P]``; latent site ``"z" [B, D]``."""
    with pyro.plate("data", x.shape[0]):
        loc = ops.zeros_like(x[..., : nets.latent_dim])
        z = pyro.sample("z", dist.Normal(loc, 1.0).to_event(1))
        pyro.sample("x", dist.Bernoulli(logits=nets.decode(z)).to_event(1), obs=x)


def vae_guide(x, nets, free_bits: float = 0.0):
    """Amortized posterior for ``x [B, P]``: IAF on a diagonal Gaussian if ``nets.has_flow``."""
    mu, sigma, h = nets.encode(x)
    base = dist.Normal(mu, sigma)
    with pyro.plate("data", x.shape[0]):
        if nets.has_flow:
            z0 = pyro.sample("z0", base.to_event(1), infer={"is_auxiliary": True})
            z, log_sigma = nets.flow(z0, h)
            pyro.sample("z", dist.Delta(z, log_density=-log_sigma.sum(-1), event_dim=1))
            log_q = base.log_prob(z0) - log_sigma
        else:
            z = pyro.sample("z", base.to_event(1))
            log_q = base.log_prob(z)
    if free_bits > 0:
        kl = (log_q - dist.Normal(0.0, 1.0).log_prob(z)).mean(0)  # [D], minibatch mean
        shortfall = free_bits - kl
        _guide_factor("free_bits", x.shape[0] * ops.maximum(shortfall, 0 * shortfall).sum())
    return z


def _guide_factor(name: str, value) -> None:
    if current_backend() == "pyro":
        pyro.factor(name, value, has_rsample=True)
    else:
        pyro.factor(name, value)
