"""Pyro's param store outlives a guide: a second model fitted with a guide of the same name must
get an error that names the fix (``fit`` and a plain ``SVI`` step alike)."""

from __future__ import annotations

import pytest

pyro = pytest.importorskip("pyro")

import pyro.distributions as dist  # noqa: E402
import torch  # noqa: E402
from pyro.infer import SVI, Trace_ELBO  # noqa: E402

from pyro_iaf import AutoIAFNormal, fit  # noqa: E402

FIX = r"call `pyro.clear_param_store\(\)` or pass another `prefix`"


def normal_model(D: int):
    def model():
        pyro.sample("x", dist.Normal(torch.zeros(D), 1.0).to_event(1))

    return model


@pytest.fixture
def store_with_a_fitted_guide():
    pyro.clear_param_store()
    first = normal_model(3)
    fit(first, AutoIAFNormal(first), num_steps=2, progress_bar=False)
    yield
    pyro.clear_param_store()


@pytest.mark.parametrize("how", ["fit", "svi_step"])
def test_second_model_with_the_same_guide_name_names_the_fix(store_with_a_fitted_guide, how):
    second = normal_model(2)
    guide = AutoIAFNormal(second)
    with pytest.raises(ValueError, match=FIX) as error:
        if how == "fit":
            fit(second, guide, num_steps=2, progress_bar=False)
        else:
            SVI(second, guide, pyro.optim.Adam({"lr": 1e-2}), Trace_ELBO()).step()
    message = str(error.value)
    assert "'AutoIAFNormal.loc' of shape (3,)" in message and "2 latent dimensions" in message


def test_each_fix_works(store_with_a_fitted_guide):
    second = normal_model(2)
    result = fit(second, AutoIAFNormal(second, prefix="second"), num_steps=2, progress_bar=False)
    assert result.params["second.loc"].shape == (2,)
    assert pyro.get_param_store()["AutoIAFNormal.loc"].shape == (3,)  # the first guide's, untouched
    pyro.clear_param_store()
    result = fit(second, AutoIAFNormal(second), num_steps=2, progress_bar=False)
    assert result.params["AutoIAFNormal.loc"].shape == (2,)


def test_a_loaded_param_store_restores_the_flow_and_trains_it(tmp_path):
    """``pyro.get_param_store().save/load`` then a fresh guide: the same posterior (the flow's
    weights too, not only loc and scale), and the store holds the tensors the flow computes with."""
    pyro.clear_param_store()
    model = normal_model(3)
    guide = AutoIAFNormal(model)
    fit(model, guide, num_steps=30, seed=0, progress_bar=False, optim=pyro.optim.Adam({"lr": 0.05}))
    before = guide.quantiles([0.1, 0.9])["x"]
    pyro.get_param_store().save(tmp_path / "store.pt")
    pyro.clear_param_store()
    pyro.get_param_store().load(tmp_path / "store.pt")
    loaded = AutoIAFNormal(model)
    loaded()
    torch.testing.assert_close(loaded.quantiles([0.1, 0.9])["x"], before)
    store = pyro.get_param_store()
    assert all(store[f"AutoIAFNormal.flow$$${n}"] is p for n, p in loaded.flow.named_parameters())
