"""``models.posteriordb.ode.odeint`` in Pyro: JAX's Dormand-Prince behind a torch.autograd.Function.

Gradients against central finite differences (float64, tight tolerances), float32 against
float64, the unbatched-only contract; and (needs posteriordb) the Pyro ODE log densities' gradients
against NumPyro's at the same point.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.api import as_array, backend, ops
from models.posteriordb.ode import odeint

TS = (0.0, 0.5, 1.5, 3.0)


def _lv(z, t, theta):
    return ops.stack([(theta[0] - theta[1] * z[1]) * z[0], (-theta[2] + theta[3] * z[0]) * z[1]])


def _pk(c, t, k_a, V_m):  # absorption and Michaelis-Menten elimination, time-dependent forcing
    return ops.exp(-k_a * t) * k_a - V_m * c / (1.0 + c)


def _functional(f, y0, args, tol=1e-11):
    """``sum(w * ys)`` over the solution ``ys [T, n]`` at fixed weights: a scalar to differentiate."""
    ys = odeint(f, y0, torch.tensor(TS, dtype=y0.dtype), *args, rtol=tol, atol=tol)
    w = torch.arange(1.0, ys.numel() + 1, dtype=y0.dtype).reshape(ys.shape) / ys.numel()
    return (w * ys).sum()


CASES = {"lotka_volterra": (_lv, [1.5, 0.8], [[0.9, 0.6, 1.1, 0.7]]),
         "michaelis_menten": (_pk, [0.2], [0.8, 1.3])}


#: JAX compiles each right-hand side's solve and adjoint once (3-4 s on the loaded machine, 14 s
#: with Lotka-Volterra's larger graph): the small one in the default suite
@pytest.mark.parametrize("case", [pytest.param("lotka_volterra", marks=pytest.mark.slow), "michaelis_menten"])
def test_gradient_matches_finite_differences(case):
    """d/d(y0, args) of a weighted sum of the solution: autograd (JAX's adjoint) = central FD."""
    f, y0, args = CASES[case]
    with backend("pyro"):
        inputs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (y0, *args)]
        grads = torch.autograd.grad(_functional(f, inputs[0], inputs[1:]), inputs)
        h = 1e-5
        for x, g in zip(inputs, grads, strict=True):
            fd = torch.zeros_like(x)
            for i in range(x.numel()):
                e = torch.zeros_like(x).reshape(-1)
                e[i] = h
                e = e.reshape(x.shape)
                plus = [a + e if a is x else a for a in inputs]
                minus = [a - e if a is x else a for a in inputs]
                fd.reshape(-1)[i] = (_functional(f, plus[0], plus[1:]) -
                                     _functional(f, minus[0], minus[1:])) / (2 * h)
            np.testing.assert_allclose(g.numpy(), fd.detach().numpy(), rtol=1e-6, atol=1e-8)


def test_float32_value_and_gradient_match_float64():
    """A float32 solve (rtol = atol = 1e-6) stays float32 and agrees with float64 (1e-11)."""
    f, y0, args = CASES["michaelis_menten"]
    out = {}
    with backend("pyro"):
        for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-11)):
            inputs = [torch.tensor(a, dtype=dtype, requires_grad=True) for a in (y0, *args)]
            value = _functional(f, inputs[0], inputs[1:], tol)
            grads = torch.autograd.grad(value, inputs)
            assert value.dtype == dtype and all(g.dtype == dtype for g in grads)
            parts = [value.detach().reshape(1)] + [g.reshape(-1) for g in grads]
            out[dtype] = torch.cat(parts).numpy()
    np.testing.assert_allclose(out[torch.float32], out[torch.float64], rtol=1e-4, atol=1e-5)


def test_batched_inputs_raise_clear_errors():
    """One unbatched system only: a batch of draws (in y0 or in the args) is a ValueError."""
    ts = as_array(TS, backend_name="pyro")
    with backend("pyro"):
        with pytest.raises(ValueError, match="y0 must have shape"):
            odeint(_lv, torch.ones(3, 2), ts, torch.ones(4))
        with pytest.raises(ValueError, match="evaluate draws one at a time"):
            odeint(_pk, torch.ones(1), ts, torch.ones(5, 1), torch.ones(5, 1))
        with pytest.raises(ValueError, match="float32 or float64"):
            odeint(_pk, torch.ones(1, dtype=torch.float16), ts.half(), 1.0, 1.0)


# ---- the two posteriordb ODE posteriors (need the database) ------------------------------------


def _pyro_log_density_and_grad(spec, z: np.ndarray):
    """Pyro's unconstrained log density at ``z [D]`` and its autograd gradient ``[D]``."""
    import pyro.poutine as poutine
    from torch.distributions import biject_to

    from models.api import _prior_trace

    sites = _prior_trace(spec)
    u = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    values, lp, i = {}, 0.0, 0
    for name, shape in spec.sites:
        n = int(np.prod(shape, dtype=int))
        t = biject_to(sites[name]["fn"].support)
        ui = u[i : i + n].reshape(shape)
        values[name] = t(ui)
        lp = lp + t.log_abs_det_jacobian(ui, values[name]).sum()
        i += n
    tr = poutine.trace(poutine.condition(spec.model, data=values)).get_trace(*spec.model_args)
    lp = lp + tr.log_prob_sum()
    (g,) = torch.autograd.grad(lp, u)
    return float(lp.detach()), g.numpy()


def _numpyro_log_density_and_grad(spec, z: np.ndarray):
    import jax
    from numpyro.infer.util import potential_energy

    def lp(u):
        params, i = {}, 0
        for name, shape in spec.sites:
            n = int(np.prod(shape, dtype=int))
            params[name] = u[i : i + n].reshape(shape)
            i += n
        return -potential_energy(spec.model, spec.model_args, spec.model_kwargs, params)

    value, g = jax.value_and_grad(lp)(jax.numpy.asarray(z))
    return float(value), np.asarray(g)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hudson_lynx_hare-lotka_volterra",
                                  "one_comp_mm_elim_abs-one_comp_mm_elim_abs"])
def test_pyro_ode_log_density_gradient_matches_numpyro(name):
    """At 2 points near the reference mean (float64): Pyro's log density and gradient in the
    unconstrained space = NumPyro's (the same solver: to rounding; 1e-7 relative here)."""
    import jax

    from models.posteriordb import available, get_posterior

    if not available():
        pytest.skip("posteriordb not found")
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True):
            specs = {b: get_posterior(name, backend=b) for b in ("pyro", "numpyro")}
            ref = specs["pyro"].reference
            rng = np.random.default_rng(1)
            for _ in range(2):
                z = ref.mean + 0.5 * ref.sd * rng.standard_normal(ref.latent_dim)
                lp_t, g_t = _pyro_log_density_and_grad(specs["pyro"], z)
                lp_j, g_j = _numpyro_log_density_and_grad(specs["numpyro"], z)
                assert abs(lp_t - lp_j) <= 1e-8 * abs(lp_j), (lp_t, lp_j)
                assert np.abs(g_j).max() > 1e-3  # a point where the gradient says something
                np.testing.assert_allclose(g_t, g_j, rtol=1e-7, atol=1e-7 * np.abs(g_j).max())
    finally:
        torch.set_default_dtype(old)
