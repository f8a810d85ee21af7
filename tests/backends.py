"""One adapter per backend so that every shared test is written once (NumPy at the boundary)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np


class PyroBackend:
    name = "pyro"

    def __init__(self) -> None:
        import torch

        import pyro_iaf

        self.pkg, self.torch = pyro_iaf, torch

    @contextlib.contextmanager
    def float64(self) -> Iterator[None]:
        old = self.torch.get_default_dtype()
        self.torch.set_default_dtype(self.torch.float64)
        try:
            yield
        finally:
            self.torch.set_default_dtype(old)

    def array(self, x):
        return self.torch.as_tensor(np.asarray(x), dtype=self.torch.get_default_dtype())

    @staticmethod
    def numpy(x) -> np.ndarray:
        return x.detach().cpu().numpy()

    def perturb(self, flow, scale: float = 0.3, seed: int = 0):
        """The flow with every parameter moved by ``scale * N(0, 1)`` (away from the identity)."""
        g = self.torch.Generator().manual_seed(seed)
        with self.torch.no_grad():
            for p in flow.parameters():
                p.add_(scale * self.torch.randn(p.shape, generator=g, dtype=p.dtype))
        return flow

    def bind(self, flow, h):
        return flow if h is None else flow.condition(self.array(h))

    def forward(self, flow, z, h=None) -> tuple[np.ndarray, np.ndarray]:
        t = self.bind(flow, h)
        z = self.array(z)
        y = t(z)
        return self.numpy(y), self.numpy(t.log_abs_det_jacobian(z, y))

    def inverse(self, flow, y, h=None) -> np.ndarray:
        return self.numpy(self.bind(flow, h).inv(self.array(y)))

    def jacobian(self, flow, z, h=None) -> np.ndarray:
        """``dy/dz`` for one point ``z [D]``: shape ``[D, D]``."""
        t = self.bind(flow, h)
        return self.numpy(self.torch.autograd.functional.jacobian(lambda x: t._call(x), self.array(z)))

    def made(self, made, z, h=None) -> tuple[np.ndarray, np.ndarray]:
        m, s = made(self.array(z), None if h is None else self.array(h))
        return self.numpy(m), self.numpy(s)

    def sample_and_log_prob(self, flow, num: int, seed: int, h=None):
        import pyro.distributions as dist

        self.torch.manual_seed(seed)
        D = flow.input_dim
        base = dist.Normal(self.torch.zeros(D), 1.0).to_event(1)
        q = dist.TransformedDistribution(base, [self.bind(flow, h)])
        x = q.sample((num,))
        return self.numpy(x), self.numpy(q.log_prob(x))

    def base_log_prob_of_inverse(self, flow, x, h=None) -> np.ndarray:
        """``log N(f^{-1}(x); 0, I) - log|det J_f(f^{-1}(x))|`` computed by hand."""
        t = self.bind(flow, h)
        z = t.inv(self.array(x))
        _, logdet = t._forward_with_logdet(z)
        base = -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * np.log(2 * np.pi)
        return self.numpy(base - logdet)

    def path_derivative(self, flow, loc, scale, num: int, seed: int, reference: bool = True):
        """Draws ``z = loc + scale * flow(eps)`` of ``IAFPosterior(stl=True)``: returns its
        ``log_prob`` values, the exact ones (sequential inverse), the gradient of the sum of its
        ``log_prob`` with respect to the flow's parameters and ``loc``, and the brute-force path
        derivative ``(dz/dparams)^T grad_z log q(z)`` (gradient through the exact inverse).
        ``reference=False``: only the first and third (the last two are None)."""
        from pyro_iaf.posterior import IAFPosterior

        torch = self.torch
        torch.manual_seed(seed)
        loc = self.array(loc).requires_grad_()
        params = [*flow.parameters(), loc]

        def posterior(stl):
            return IAFPosterior(flow, loc, self.array(scale), stl=stl)

        q = posterior(True)
        z = q.rsample((num,))
        value = q.log_prob(z)
        grad = torch.autograd.grad(value.sum(), params, retain_graph=True)
        flat = lambda gs: np.concatenate([self.numpy(g).ravel() for g in gs])  # noqa: E731
        if not reference:
            return self.numpy(value), None, flat(grad), None
        z_free = z.detach().requires_grad_()
        exact = posterior(False).log_prob(z_free)
        (grad_z,) = torch.autograd.grad(exact.sum(), z_free)
        brute_force = torch.autograd.grad(z, params, grad_outputs=grad_z)
        return self.numpy(value), self.numpy(exact), flat(grad), flat(brute_force)

    def num_params(self, flow) -> int:
        return sum(p.numel() for p in flow.parameters())

    def solve_jacobian_transpose(self, flow, eps, h, grad, log_det_grad, block):
        from pyro_iaf.jacobian import solve_jacobian_transpose

        out = solve_jacobian_transpose(flow, self.array(eps), None if h is None else self.array(h),
                                       self.array(grad), self.array(log_det_grad), block=block)
        return self.numpy(out)

    def log_det_gradient(self, flow, z, h=None) -> np.ndarray:
        """``d log|det dy/dz| / dz`` for one point ``z [D]``, by autograd through the forward pass."""
        t = self.bind(flow, h)
        z = self.array(z).requires_grad_()
        (grad,) = self.torch.autograd.grad(t.log_abs_det_jacobian(z, t._call(z)), z)
        return self.numpy(grad)


class NumPyroBackend:
    name = "numpyro"

    def __init__(self) -> None:
        import jax
        import jax.numpy as jnp

        import numpyro_iaf

        self.pkg, self.jax, self.jnp = numpyro_iaf, jax, jnp

    @contextlib.contextmanager
    def float64(self) -> Iterator[None]:
        with self.jax.enable_x64(True):
            yield

    def array(self, x):
        return self.jnp.asarray(np.asarray(x), dtype=self.jnp.result_type(float))

    @staticmethod
    def numpy(x) -> np.ndarray:
        return np.asarray(x)

    def perturb(self, flow, scale: float = 0.3, seed: int = 0):
        leaves, tree = self.jax.tree.flatten(flow.params)
        keys = self.jax.random.split(self.jax.random.PRNGKey(seed), len(leaves))
        dtype = self.jnp.result_type(float)
        moved = [
            leaf.astype(dtype) + scale * self.jax.random.normal(k, leaf.shape, dtype)
            for leaf, k in zip(leaves, keys)
        ]
        return flow.with_params(self.jax.tree.unflatten(tree, moved))

    def bind(self, flow, h):
        return flow if h is None else flow.condition(self.array(h))

    def forward(self, flow, z, h=None) -> tuple[np.ndarray, np.ndarray]:
        y, logdet = self.bind(flow, h).call_with_intermediates(self.array(z))
        return np.asarray(y), np.asarray(logdet)

    def inverse(self, flow, y, h=None) -> np.ndarray:
        return np.asarray(self.bind(flow, h).inv(self.array(y)))

    def jacobian(self, flow, z, h=None) -> np.ndarray:
        return np.asarray(self.jax.jacfwd(self.bind(flow, h))(self.array(z)))

    def made(self, made, z, h=None) -> tuple[np.ndarray, np.ndarray]:
        m, s = made(self.array(z), None if h is None else self.array(h))
        return np.asarray(m), np.asarray(s)

    def sample_and_log_prob(self, flow, num: int, seed: int, h=None):
        import numpyro.distributions as dist

        D = flow.input_dim
        base = dist.Normal(self.jnp.zeros(D), 1.0).to_event(1)
        q = dist.TransformedDistribution(base, self.bind(flow, h))
        x = q.sample(self.jax.random.PRNGKey(seed), (num,))
        return np.asarray(x), np.asarray(q.log_prob(x))

    def base_log_prob_of_inverse(self, flow, x, h=None) -> np.ndarray:
        t = self.bind(flow, h)
        z = t.inv(self.array(x))
        _, logdet = t.call_with_intermediates(z)
        base = -0.5 * (z**2).sum(-1) - 0.5 * z.shape[-1] * np.log(2 * np.pi)
        return np.asarray(base - logdet)

    def path_derivative(self, flow, loc, scale, num: int, seed: int, reference: bool = True):
        """See ``PyroBackend.path_derivative``: the same four arrays."""
        from numpyro_iaf.posterior import IAFPosterior

        jax, jnp = self.jax, self.jnp
        scale = self.array(scale)
        eps = jax.random.normal(jax.random.PRNGKey(seed), (num, flow.input_dim), jnp.result_type(float))

        def draw(params):
            f = flow.with_params(params[0])
            q = IAFPosterior(f, params[1], scale, stl=True)
            u, logdet = f.call_with_intermediates(eps)
            z = params[1] + scale * u
            return z, q.log_prob(z, [[eps, logdet], [u, None]])

        params = (flow.params, self.array(loc))
        value = draw(params)[1]
        grad = jax.grad(lambda p: draw(p)[1].sum())(params)
        flat = lambda tree: np.concatenate([np.asarray(x).ravel() for x in jax.tree.leaves(tree)])  # noqa: E731
        if not reference:
            return np.asarray(value), None, flat(grad), None

        def exact_log_prob(z, params):
            return IAFPosterior(flow.with_params(params[0]), params[1], scale).log_prob(z)

        z = draw(params)[0]
        exact = exact_log_prob(z, params)
        grad_z = jax.grad(lambda z: exact_log_prob(z, params).sum())(z)
        _, pullback = jax.vjp(lambda p: draw(p)[0], params)
        (brute_force,) = pullback(grad_z)
        return np.asarray(value), np.asarray(exact), flat(grad), flat(brute_force)

    def num_params(self, flow) -> int:
        return sum(leaf.size for leaf in self.jax.tree.leaves(flow.params))

    def solve_jacobian_transpose(self, flow, eps, h, grad, log_det_grad, block):
        from numpyro_iaf.jacobian import solve_jacobian_transpose

        out = solve_jacobian_transpose(flow, self.array(eps), None if h is None else self.array(h),
                                       self.array(grad), self.array(log_det_grad), block=block)
        return np.asarray(out)

    def log_det_gradient(self, flow, z, h=None) -> np.ndarray:
        """``d log|det dy/dz| / dz`` for one point ``z [D]``, by autodiff through the forward pass."""
        f = flow if h is None else flow.condition(self.array(h))
        return np.asarray(self.jax.grad(lambda x: f.call_with_intermediates(x)[1])(self.array(z)))


# ---- autoguide helpers: the same verbs on both backends ------------------------------------


class _GuideVerbs:
    """Fitting and summarizing autoguides; models are written once with ``models.api``."""

    def model(self, raw_model):
        from models.api import bind

        return bind(raw_model, self.name)

    def guide(self, kind: str, model, **kwargs):
        if kind == "iaf":
            return self.pkg.AutoIAFNormal(model, **kwargs)
        return getattr(
            self.autoguide_module(), {"diagonal": "AutoDiagonalNormal", "normal": "AutoNormal"}[kind]
        )(model, **kwargs)


class PyroGuideVerbs(_GuideVerbs):
    @staticmethod
    def autoguide_module():
        from pyro.infer import autoguide

        return autoguide

    def fit(self, model, guide, args, *, lr=1e-2, steps=1000, particles=1, seed=0, loss=None):
        import pyro

        pyro.clear_param_store()
        result = self.pkg.fit(
            model,
            guide,
            *args,
            optim=pyro.optim.Adam({"lr": lr}),
            num_steps=steps,
            num_particles=particles,
            seed=seed,
            progress_bar=False,
            loss=loss,
        )
        return result.params

    def elbo(self, model, guide, params, args, num_particles=1000, seed=0) -> float:
        import pyro
        from pyro.infer import Trace_ELBO

        pyro.set_rng_seed(seed)
        with self.torch.no_grad():
            return -Trace_ELBO(num_particles=num_particles, vectorize_particles=True).loss(
                model, guide, *args
            )

    def latent_samples(self, guide, params, args, num: int, seed: int = 0) -> np.ndarray:
        self.torch.manual_seed(seed)
        with self.torch.no_grad():
            return self.numpy(guide.get_posterior(*args).sample((num,)))

    def median(self, guide, params, args) -> dict:
        return {k: self.numpy(v) for k, v in guide.median(*args).items()}

    def quantiles(self, guide, params, qs, args) -> dict:
        return {k: self.numpy(v) for k, v in guide.quantiles(qs, *args).items()}

    def predictive(self, model, guide, params, args, num: int, seed: int = 0, sites=None) -> dict:
        import pyro
        from pyro.infer import Predictive

        pyro.set_rng_seed(seed)
        out = Predictive(model, guide=guide, num_samples=num, return_sites=sites)(*args)
        return {k: self.numpy(v) for k, v in out.items()}


class NumPyroGuideVerbs(_GuideVerbs):
    @staticmethod
    def autoguide_module():
        from numpyro.infer import autoguide

        return autoguide

    def fit(self, model, guide, args, *, lr=1e-2, steps=1000, particles=1, seed=0, loss=None):
        import numpyro

        result = self.pkg.fit(
            model,
            guide,
            *args,
            optim=numpyro.optim.Adam(lr),
            num_steps=steps,
            num_particles=particles,
            seed=seed,
            progress_bar=False,
            loss=loss,
        )
        return result.params

    def elbo(self, model, guide, params, args, num_particles=1000, seed=0) -> float:
        from numpyro.infer import Trace_ELBO

        key = self.jax.random.PRNGKey(seed)
        return -float(Trace_ELBO(num_particles=num_particles).loss(key, params, model, guide, *args))

    def latent_samples(self, guide, params, args, num: int, seed: int = 0) -> np.ndarray:
        return np.asarray(guide.get_posterior(params).sample(self.jax.random.PRNGKey(seed), (num,)))

    def median(self, guide, params, args) -> dict:
        return {k: np.asarray(v) for k, v in guide.median(params).items()}

    def quantiles(self, guide, params, qs, args) -> dict:
        return {k: np.asarray(v) for k, v in guide.quantiles(params, qs).items()}

    def predictive(self, model, guide, params, args, num: int, seed: int = 0, sites=None) -> dict:
        from numpyro.infer import Predictive

        predictive = Predictive(model, guide=guide, params=params, num_samples=num, return_sites=sites)
        out = predictive(self.jax.random.PRNGKey(seed), *args)
        return {k: np.asarray(v) for k, v in out.items()}


class PyroAdapter(PyroBackend, PyroGuideVerbs):
    pass


class NumPyroAdapter(NumPyroBackend, NumPyroGuideVerbs):
    pass


BACKENDS = {"pyro": PyroAdapter, "numpyro": NumPyroAdapter}


def pyro_diagonal_guide(spec):
    """A fresh Pyro ``AutoDiagonalNormal`` of ``spec.model``, set up by one call (param store
    cleared, RNG seed 0): a fixed guide whose draws the model-level Pyro tests score."""
    import pyro
    from pyro.infer.autoguide import AutoDiagonalNormal

    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    guide = AutoDiagonalNormal(spec.model)
    guide(*spec.model_args, **spec.model_kwargs)
    return guide
