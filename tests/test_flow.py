"""Properties of the IAF flow, checked the same way on both backends."""

from __future__ import annotations

import importlib
import inspect
import re

import numpy as np
import pytest

CASES = [  # (D, context_dim, hidden_dims, gated, skip)
    (1, 0, (8,), True, True),
    (1, 3, (8,), True, True),
    (2, 0, (8, 8), True, True),
    (2, 2, (), True, True),
    (5, 0, (12,), False, True),
    (5, 4, (12, 12), True, False),
    (16, 0, (32,), True, True),
    (16, 6, (32,), False, True),
]
IDS = [f"D{d}-C{c}-H{'x'.join(map(str, h)) or 'lin'}-{'gated' if g else 'affine'}" for d, c, h, g, _ in CASES]


def make_flow(backend, D, C, H, gated, skip, num_flows=3, perturb=True):
    flow = backend.pkg.IAF(D, num_flows=num_flows, hidden_dims=H, context_dim=C, gated=gated, skip=skip)
    # affine steps can expand (exp(s) up to e^3): a milder move keeps the inverse well conditioned
    return backend.perturb(flow, 0.3 if gated else 0.15, seed=D + C) if perturb else flow


def random_inputs(D, C, n=None, seed=0):
    rng = np.random.default_rng(seed)
    shape = (D,) if n is None else (n, D)
    z = rng.normal(size=shape)
    h = None if C == 0 else rng.normal(size=shape[:-1] + (C,))
    return z, h


@pytest.mark.parametrize("D,C,H,gated,skip", CASES, ids=IDS)
def test_logdet_matches_autodiff_jacobian(backend, D, C, H, gated, skip):
    with backend.float64():
        flow = make_flow(backend, D, C, H, gated, skip)
        for seed in range(3):
            z, h = random_inputs(D, C, seed=seed)
            _, logdet = backend.forward(flow, z, h)
            jac = backend.jacobian(flow, z, h)
            sign, expected = np.linalg.slogdet(jac)
            assert sign > 0
            np.testing.assert_allclose(logdet, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("D,C,H,gated,skip", CASES, ids=IDS)
def test_each_step_is_triangular_in_its_order(backend, D, C, H, gated, skip):
    """Step t sees inputs in order 1..D (t even) or D..1 (t odd): its Jacobian is triangular."""
    with backend.float64():
        flow = make_flow(backend, D, C, H, gated, skip, num_flows=2)
        z, h = random_inputs(D, C, seed=1)
        for t in range(2):
            single = backend.pkg.IAF(D, num_flows=1, hidden_dims=H, context_dim=C, gated=gated, skip=skip)
            single = _with_step(backend, single, flow, t)
            jac = backend.jacobian(single, z, h)
            strict_upper = np.triu(jac, 1) if t == 0 else np.tril(jac, -1)
            assert np.abs(strict_upper).max(initial=0.0) == 0.0
            np.testing.assert_allclose(np.abs(np.diag(jac)) > 0, True)


def _with_step(backend, single, flow, t):
    """A one-step flow carrying step ``t`` of ``flow`` (its order and weights)."""
    if backend.name == "pyro":
        single.steps[0] = flow.steps[t]
        return single
    single.steps = (flow.steps[t],)
    return single.with_params((flow.params[t],))


@pytest.mark.parametrize("D,C", [(1, 0), (4, 0), (7, 3)])
@pytest.mark.parametrize("reverse", [False, True])
def test_made_autoregressive_by_perturbation(backend, D, C, reverse):
    """Perturbing input j never changes m_i, s_i for outputs i that come no later than j."""
    with backend.float64():
        made = backend.pkg.MADE(D, (11, 9), context_dim=C, reverse=reverse, seed=3)
        made = _perturb_made(backend, made)
        z, h = random_inputs(D, C, seed=2)
        m0, s0 = backend.made(made, z, h)
        order = np.arange(D)[::-1] if reverse else np.arange(D)
        position = np.argsort(order)  # position of variable i in the autoregressive order
        for j in range(D):
            z_j = z.copy()
            z_j[j] += 1.7
            m1, s1 = backend.made(made, z_j, h)
            changed = (np.abs(m1 - m0) > 1e-12) | (np.abs(s1 - s0) > 1e-12)
            not_after = position <= position[j]
            leaked = np.where(changed & not_after)
            assert not changed[not_after].any(), f"input {j} leaked into outputs {leaked}"
            if D > 1 and position[j] < D - 1:  # and it does reach the outputs after it
                assert changed[~not_after].any()


def _perturb_made(backend, made):
    if backend.name == "pyro":
        backend.perturb(made, 0.5, seed=1)
        return made
    rng = np.random.default_rng(1)
    made.params = {k: v + 0.5 * backend.array(rng.normal(size=v.shape)) for k, v in made.params.items()}
    return made


@pytest.mark.parametrize("D,C,H,gated,skip", CASES, ids=IDS)
def test_inverse_round_trip(backend, D, C, H, gated, skip):
    with backend.float64():
        flow = make_flow(backend, D, C, H, gated, skip)
        z, h = random_inputs(D, C, n=6, seed=4)
        y, _ = backend.forward(flow, z, h)
        np.testing.assert_allclose(backend.inverse(flow, y, h), z, atol=1e-5)


@pytest.mark.parametrize("D,C", [(1, 0), (3, 2), (8, 0)])
def test_sampling_log_prob_matches_change_of_variables(backend, D, C):
    with backend.float64():
        flow = make_flow(backend, D, C, (16,), True, True)
        h = None if C == 0 else np.random.default_rng(0).normal(size=C)
        x, log_prob = backend.sample_and_log_prob(flow, 50, seed=0, h=h)
        assert x.shape == (50, D) and log_prob.shape == (50,)
        np.testing.assert_allclose(log_prob, backend.base_log_prob_of_inverse(flow, x, h), atol=1e-6)
        # the log-prob of samples is also the base density minus the log-det of the forward pass
        z = backend.inverse(flow, x, h)
        _, logdet = backend.forward(flow, z, h)
        base = -0.5 * (z**2).sum(-1) - 0.5 * D * np.log(2 * np.pi)
        np.testing.assert_allclose(log_prob, base - logdet, atol=1e-6)


@pytest.mark.parametrize("gate_bias,num_flows", [(2.0, 1), (2.0, 3), (1.0, 2)])
def test_fresh_flow_is_near_the_predicted_elementwise_map(backend, gate_bias, num_flows):
    D = 10
    flow = backend.pkg.IAF(D, num_flows=num_flows, gate_bias=gate_bias)
    z, _ = random_inputs(D, 0, n=100, seed=5)
    y, logdet = backend.forward(flow, z)
    shrink = (1 / (1 + np.exp(-gate_bias))) ** num_flows
    np.testing.assert_allclose(y, shrink * z, atol=0.02)
    np.testing.assert_allclose(logdet, D * np.log(shrink), atol=0.02 * D)


def test_affine_fresh_flow_is_near_identity(backend):
    flow = backend.pkg.IAF(6, num_flows=2, gated=False)
    z, _ = random_inputs(6, 0, n=50, seed=6)
    y, logdet = backend.forward(flow, z)
    np.testing.assert_allclose(y, z, rtol=0.05, atol=0.02)
    np.testing.assert_allclose(logdet, 0.0, atol=0.1)  # 12 terms s ~ N(0, 0.01^2 * |hidden|^2)


@pytest.mark.parametrize("gated,num_flows", [(False, 1), (True, 2)])
def test_path_derivative_gradient_matches_brute_force(backend, gated, num_flows):
    """``IAFPosterior(stl=True).log_prob`` of its own draws: the value of the exact density, and a
    parameter gradient equal to the path term ``(dz/dparams)^T grad_z log q`` computed through the
    sequential inverse (so the inverse Jacobian of ``known_inverse`` is checked, not assumed)."""
    D = 4
    with backend.float64():
        flow = backend.perturb(backend.pkg.IAF(D, num_flows=num_flows, hidden_dims=(8,), gated=gated))
        loc, scale = np.linspace(-1, 1, D), np.linspace(0.5, 2.0, D)
        value, exact, grad, reference = backend.path_derivative(flow, loc, scale, num=3, seed=0)
    np.testing.assert_allclose(value, exact, rtol=1e-10, atol=1e-10)
    assert np.abs(reference).max() > 1e-3  # the check is not vacuous
    np.testing.assert_allclose(grad, reference, rtol=1e-7, atol=1e-9)


def test_path_derivative_gradient_is_finite_where_the_jacobian_is_singular(backend):
    """Gates shut to 0 in float32 (``sigmoid(-200)``): the Jacobian of the flow is singular, its
    solve not finite; the path-derivative score gives those draws a zero gradient, not a NaN."""
    D = 3
    flow = backend.pkg.IAF(D, num_flows=1, hidden_dims=(8,), gated=True, gate_bias=-200.0)
    value, _, grad, _ = backend.path_derivative(flow, np.zeros(D), np.ones(D), num=4, seed=0, reference=False)
    assert np.isfinite(value).all()
    assert np.isfinite(grad).all(), grad


SOLVE_CASES = [  # (D, context_dim, hidden_dims, gated, skip, num_flows, block of the blocked solve)
    *[(*flow, block) for flow in [
        (13, 0, (8,), False, True, 2),  # fewer units than inputs: one run of units per block
        (13, 3, (40,), True, False, 2),  # units cycle three times over the degrees: several runs
        (40, 2, (20,), False, True, 3),
    ] for block in (4, 64)],  # several blocks; one block holding every coordinate
    (12, 2, (8, 8), True, True, 2, None),  # two hidden layers: the whole Jacobian
    (12, 0, (), False, True, 2, None),  # no hidden layer: the whole Jacobian
]


SOLVE_IDS = [f"D{c[0]}-C{c[1]}-H{'x'.join(map(str, c[2])) or 'lin'}-b{c[6]}" for c in SOLVE_CASES]


@pytest.mark.parametrize("D,C,H,gated,skip,num_flows,block", SOLVE_CASES, ids=SOLVE_IDS)
def test_jacobian_solve_matches_the_dense_solve(backend, D, C, H, gated, skip, num_flows, block):
    """``solve_jacobian_transpose`` (the path-derivative score's backward pass) against a dense solve
    with the autodiff Jacobian: ``J^-T (g + gl d log|det| / dz)`` for every block plan."""
    with backend.float64():
        flow = make_flow(backend, D, C, H, gated, skip, num_flows=num_flows)
        z, h = random_inputs(D, C, n=2, seed=7)
        rng = np.random.default_rng(8)
        grad, log_det_grad = rng.normal(size=(2, D)), rng.normal(size=2)
        out = backend.solve_jacobian_transpose(flow, z, h, grad, log_det_grad, block)
        for i in range(2):
            hi = None if h is None else h[i]
            rhs = grad[i] + log_det_grad[i] * backend.log_det_gradient(flow, z[i], hi)
            expected = np.linalg.solve(backend.jacobian(flow, z[i], hi).T, rhs)
            np.testing.assert_allclose(out[i], expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("D,H,context", [(7, 5, False), (13, 30, False), (13, 30, True), (9, 40, True)])
@pytest.mark.parametrize("reverse", [False, True])
def test_coupling_units_are_exactly_the_units_inside_each_block(backend, D, H, context, reverse):
    """``masks.coupling_units`` (each backend's copy): a unit is listed for a block iff it links an
    output of the block to an earlier input of the block (in the solve's order), in runs of
    consecutive indices."""
    masks = importlib.import_module(f"{backend.pkg.__name__}.masks")
    coupling_units, made_masks = masks.coupling_units, masks.made_masks

    (hidden,), output, _ = made_masks(D, (H,), context=context, reverse=reverse)
    if reverse:  # the solve flips a reversed MADE's coordinates
        hidden, output = hidden[:, ::-1], output[::-1]
    plan = coupling_units((hidden != 0).sum(1), D, 4)
    expected_blocks = [(s, min(s + 4, D)) for s in reversed(range(0, D, 4))]
    assert [(start, stop) for start, stop, _ in plan] == expected_blocks
    for start, stop, runs in plan:
        listed = [k for run in runs for k in range(run.start, run.stop)]
        assert listed == sorted(set(listed)) and all(a.stop < b.start for a, b in zip(runs, runs[1:]))
        block = slice(start, stop)
        links = output[block][:, None, :].astype(bool) & hidden.T[block][None, :, :].astype(bool)  # [i, j, k]
        links &= np.tril(np.ones((stop - start,) * 2, bool), -1)[:, :, None]
        assert listed == np.flatnonzero(links.any((0, 1))).tolist()


def test_errors_name_the_shape(backend):
    flow = backend.pkg.IAF(4, context_dim=2)
    with pytest.raises(ValueError, match=r"\[\.\.\., 4\]"):
        backend.forward(flow, np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match="context"):
        backend.forward(flow, np.zeros(4))
    with pytest.raises(ValueError, match=r"context shape \[\.\.\., 2\]"):
        backend.forward(flow, np.zeros(4), np.zeros(5))


def test_parameter_count_matches_formula(backend):
    D, C, H = 7, 3, (20, 10)
    flow = backend.pkg.IAF(D, num_flows=2, hidden_dims=H, context_dim=C)
    per_step = (D * 20 + 20 + C * 20) + (20 * 10 + 10 + C * 10) + (2 * D * 10 + 2 * D) + D * D
    assert backend.num_params(flow) == 2 * per_step


# ---- cross-backend -------------------------------------------------------------------------


#: (name, argument): (Pyro's default, NumPyro's default) where each follows its own framework
FRAMEWORK_DEFAULTS: dict = {}


def test_public_names_and_signatures_mirror_each_other():
    import numpyro_iaf
    import pyro_iaf

    assert sorted(pyro_iaf.__all__) == sorted(numpyro_iaf.__all__)
    for name in pyro_iaf.__all__:
        a, b = getattr(pyro_iaf, name), getattr(numpyro_iaf, name)
        if inspect.isclass(a):
            a, b = a.__init__, b.__init__
        sig_a, sig_b = inspect.signature(a), inspect.signature(b)
        assert list(sig_a.parameters) == list(sig_b.parameters), name
        for p in sig_a.parameters:
            da, db = sig_a.parameters[p].default, sig_b.parameters[p].default
            if callable(da) and callable(db):  # e.g. each framework's own init_to_median
                da, db = da.__name__, db.__name__
            if (name, p) in FRAMEWORK_DEFAULTS:  # each follows its framework's own autoguides
                assert (da, db) == FRAMEWORK_DEFAULTS[name, p], (name, p, da, db)
                continue
            assert da == db, (name, p)
            assert sig_a.parameters[p].kind == sig_b.parameters[p].kind, (name, p)


def documented_args(obj) -> list[str] | None:
    """The names of the Google-style ``Args:`` section of ``obj``'s docstring (None: no section)."""
    doc = inspect.getdoc(obj) or ""
    section = re.search(r"^Args:\n((?:[ \t]+\S.*\n?|\n)*)", doc, re.M)
    if section is None:
        return None
    entries = [line for line in section.group(1).splitlines() if line.strip()]
    indent = len(entries[0]) - len(entries[0].lstrip())
    names = [re.match(r"\s*\**(\w+)", line).group(1) for line in entries
             if len(line) - len(line.lstrip()) == indent]
    return names


def public_objects(package: str) -> dict:
    """Every public class and function the API pages show: ``__all__``, the data-parallel module
    and the helpers they reference."""
    import importlib

    pkg = importlib.import_module(package)
    objs = {name: getattr(pkg, name) for name in pkg.__all__}
    helpers = [("parallel", None), ("amortized", ["MLPEncoder", "init_to_global_median"]),
               ("posterior", ["IAFPosterior", "known_inverse"]), ("masks", ["autoguide_defaults"])]
    for module, names in helpers:
        mod = importlib.import_module(f"{package}.{module}")
        for name in names or mod.__all__:
            if callable(getattr(mod, name)):
                objs[f"{module}.{name}"] = getattr(mod, name)
    return objs


def signature_args(obj) -> list[str]:
    fn = obj.__init__ if inspect.isclass(obj) else obj
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in inspect.signature(fn).parameters.values() if p.kind in kinds and p.name != "self"]


@pytest.mark.parametrize("package", ["pyro_iaf", "numpyro_iaf"])
def test_every_public_argument_is_documented(package):
    """Each public class and function has an ``Args:`` section naming every argument it takes."""
    missing = {}
    for name, obj in public_objects(package).items():
        documented = documented_args(obj) or []
        if inspect.isclass(obj) and issubclass(obj, Exception):
            continue  # raised, not called
        lacking = [a for a in signature_args(obj) if a not in documented]
        if lacking:
            missing[name] = lacking
    assert not missing, f"{package}: undocumented arguments {missing}"


def test_twins_document_the_same_arguments():
    import numpyro_iaf
    import pyro_iaf

    for name in pyro_iaf.__all__:
        a, b = documented_args(getattr(pyro_iaf, name)), documented_args(getattr(numpyro_iaf, name))
        assert a == b, f"{name}: pyro_iaf documents {a}, numpyro_iaf {b}"


@pytest.mark.parametrize("D,H,C", [(1, (8,), 0), (5, (16,), 3), (9, (), 2)])
def test_masks_are_identical(D, H, C):
    import numpyro_iaf
    import pyro_iaf

    for reverse in (False, True):
        a = pyro_iaf.made_masks(D, H, context=C > 0, reverse=reverse)
        b = numpyro_iaf.made_masks(D, H, context=C > 0, reverse=reverse)
        for x, y in zip([*a[0], a[1], a[2]], [*b[0], b[1], b[2]]):
            np.testing.assert_array_equal(x, y)
        # connectivity: the product of the masks is strictly triangular in the chosen order
        path = a[1]
        for m in reversed(a[0]):
            path = path @ m
        order = np.arange(D)[::-1] if reverse else np.arange(D)
        pos = np.argsort(order)
        assert np.all(path[pos[:, None] <= pos[None, :]] == 0)


@pytest.mark.parametrize("direction", ["pyro_to_numpyro", "numpyro_to_pyro"])
@pytest.mark.parametrize("D,C,H,gated,skip", CASES[1::2], ids=IDS[1::2])
def test_converted_weights_give_the_same_outputs(direction, D, C, H, gated, skip):
    from backends import NumPyroBackend, PyroBackend

    pb, nb = PyroBackend(), NumPyroBackend()
    src, dst = (pb, nb) if direction == "pyro_to_numpyro" else (nb, pb)
    with pb.float64(), nb.float64():
        flow = make_flow(src, D, C, H, gated, skip)
        other = dst.pkg.convert_flow(flow)
        z, h = random_inputs(D, C, n=5, seed=7)
        y1, ld1 = src.forward(flow, z, h)
        y2, ld2 = dst.forward(other, z, h)
        np.testing.assert_allclose(y2, y1, atol=1e-5)
        np.testing.assert_allclose(ld2, ld1, atol=1e-5)
        back = src.pkg.convert_flow(other)
        np.testing.assert_allclose(src.forward(back, z, h)[0], y1, atol=1e-12)
