"""The deterministics of a fit, computed a block of draws at a time on PyTensor's Python
linker (``inference.sampling.deterministic_draws``), are PyMC's own
(``pm.compute_deterministics``, one draw at a time), and a draw's values do not depend on
the block it is computed in (except, to the Newton steps' precision, where an integrated
frailty's modes place quadrature nodes). Nothing is compiled by numba. Draws of the priors
stand in for posterior draws: no sampling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from pytensor.link.numba.linker import NumbaLinker

from jdmbayes.data.validate import load_series
from jdmbayes.inference import sampling
from jdmbayes.kinds.registry import kind_of
from jdmbayes.models.spec import load_model_spec, load_prior_set
from tests.conftest import BUNDLED

# every bundled model, and the forms of patient effects the bundled specs do not use
CASES = [("cat_bm", {}), ("cmas", {}), ("gc_discontinuation", {}), ("ldh", {}),
         ("rash_milestones", {}), ("cmas", {"patient_effects": "integrated"}),
         ("cmas", {"patient_effects": "centred_level", "correlation": True}),
         ("rash_milestones", {"frailty": "integrated"})]


def refuse(*args, **kwargs):
    raise AssertionError("numba compiled the deterministics")


def built(name: str, changes: dict) -> pm.Model:
    spec = replace(load_model_spec(name), **changes)
    kind = kind_of(spec)
    data = kind.index(load_series(BUNDLED), spec)
    prior_set = kind.resolve_priors(data, spec, load_prior_set(spec.prior_set, spec))
    return kind.build(data, spec, prior_set)


def prior_draws(model: pm.Model, chains: int, draws: int) -> xr.Dataset:
    values = pm.draw(model.free_RVs, draws=chains * draws, random_seed=7)
    coords = {"chain": np.arange(chains), "draw": np.arange(draws)}
    variables = {}
    for rv, value in zip(model.free_RVs, values):
        dims = model.named_vars_to_dims.get(rv.name, ())
        variables[rv.name] = (("chain", "draw", *dims),
                              value.reshape(chains, draws, *value.shape[1:]))
        coords.update({d: list(model.coords[d]) for d in dims})
    return xr.Dataset(variables, coords=coords)


@pytest.mark.parametrize(("name", "changes"), CASES, ids=[
    f"{n}-{'-'.join(f'{k}={v}' for k, v in c.items()) or 'bundled'}" for n, c in CASES])
def test_deterministics_are_pymcs_and_independent_of_the_block(name, changes, monkeypatch):
    model = built(name, changes)
    assert model.deterministics
    posterior = prior_draws(model, chains=2, draws=15)
    key = f"test-{name}-{sorted(changes.items())}"
    with monkeypatch.context() as patched:       # nothing is compiled by numba
        patched.setattr(NumbaLinker, "make_all", refuse)
        ours = sampling.deterministic_draws(model, key, posterior)
    with model:
        theirs = pm.compute_deterministics(posterior, model=model, progressbar=False,
                                           compile_kwargs={"mode": "FAST_COMPILE"})
    assert set(ours.data_vars) == {d.name for d in model.deterministics}
    for variable in theirs.data_vars:
        assert ours[variable].dims == theirs[variable].dims, variable
        # an integrated model's modes come from a few Newton steps whose line search picks
        # the best of several step lengths: a difference in the last bits upstream can pick
        # another length, and the modes then agree to the steps' precision only
        rtol = 1e-5 if variable in sampling.DATA_CONDITIONAL else 1e-10
        np.testing.assert_allclose(ours[variable].values, theirs[variable].values,
                                   rtol=rtol, atol=1e-12, err_msg=variable)
    # one draw per block: the same values to the bit, except where Newton modes (above)
    # place quadrature nodes: they agree to the steps' precision, and what the nodes give
    # to rounding
    monkeypatch.setattr(sampling, "DETERMINISTIC_BLOCK_VALUES", 1)
    by_draw = sampling.deterministic_draws(model, key, posterior)
    newton = any(v in sampling.DATA_CONDITIONAL for v in ours.data_vars)
    for variable in ours.data_vars:
        if newton:
            rtol = 1e-5 if variable in sampling.DATA_CONDITIONAL else 1e-10
            np.testing.assert_allclose(ours[variable].values, by_draw[variable].values,
                                       rtol=rtol, atol=1e-12, err_msg=variable)
        else:
            assert np.array_equal(ours[variable].values, by_draw[variable].values,
                                  equal_nan=True), variable


def test_a_deterministic_of_the_data_alone_is_repeated_at_every_draw():
    with pm.Model(coords={"patient": ["a", "b", "c"]}) as model:
        weight = pm.Data("weight", np.array([1.0, 2.0, 4.0]), dims="patient")
        level = pm.Normal("level", 0.0, 1.0)
        pm.Deterministic("total_weight", weight.sum())
        pm.Deterministic("weight_share", weight / 7.0, dims="patient")
        pm.Deterministic("weighted", level * weight, dims="patient")
    posterior = prior_draws(model, chains=2, draws=4)
    ours = sampling.deterministic_draws(model, "test-data-alone", posterior)
    assert ours["total_weight"].dims == ("chain", "draw")
    np.testing.assert_array_equal(ours["total_weight"].values, np.full((2, 4), 7.0))
    assert ours["weight_share"].dims == ("chain", "draw", "patient")
    np.testing.assert_array_equal(ours["weight_share"].values,
                                  np.broadcast_to([1 / 7, 2 / 7, 4 / 7], (2, 4, 3)))
    np.testing.assert_array_equal(ours["weighted"].values,
                                  posterior["level"].values[..., None] * [1.0, 2.0, 4.0])


@pytest.mark.parametrize("name", ["cmas", "rash_milestones"])
def test_a_deterministic_left_out_leaves_the_others_to_the_bit(name):
    """A fit whose LOO integrates the patients' effects out from the draws leaves the
    sampled log-likelihood out (``leave_out``): the other deterministics are those of the
    whole set, to the bit (the same blocks), and ``loglik_patient`` is not computed."""
    model = built(name, {})
    posterior = prior_draws(model, chains=2, draws=15)
    key = f"test-leave-out-{name}"
    whole = sampling.deterministic_draws(model, key, posterior)
    without = sampling.deterministic_draws(model, key, posterior, ("loglik_patient",))
    assert "loglik_patient" in whole and "loglik_patient" not in without
    assert set(without.data_vars) == set(whole.data_vars) - {"loglik_patient"}
    for variable in without.data_vars:
        assert np.array_equal(without[variable].values, whole[variable].values,
                              equal_nan=True), variable


def test_the_log_likelihood_group_made_after_sampling_is_the_sampled_ones():
    """Where the draws have no sampled log-likelihood, ``set_patient_loglik`` makes the
    group that moving the sampled one there (``split_loglik``) gives: the same name, dims,
    coordinates and, given its values, values."""
    from jdmbayes.inference.draws import from_groups, group_dataset
    from jdmbayes.kinds.common import set_patient_loglik, split_loglik

    rng = np.random.default_rng(3)
    coords = {"chain": np.arange(2), "draw": np.arange(0, 10, 2), "patient": np.arange(1, 5)}
    posterior = xr.Dataset({"intercept": (("chain", "draw"), rng.normal(size=(2, 5))),
                            "loglik_patient": (("chain", "draw", "patient"),
                                               rng.normal(size=(2, 5, 4)))}, coords=coords)
    sampled = from_groups({"posterior": posterior})
    split_loglik(sampled, "cmas")
    assert "loglik_patient" not in group_dataset(sampled, "posterior")
    moved = group_dataset(sampled, "log_likelihood")
    made = from_groups({"posterior": posterior.drop_vars("loglik_patient")})
    split_loglik(made, "cmas")          # nothing to move
    set_patient_loglik(made, moved["cmas"].values.ravel(), "cmas")
    xr.testing.assert_identical(group_dataset(made, "log_likelihood"), moved)
    set_patient_loglik(sampled, moved["cmas"].values + 1.0, "cmas")    # replaced
    np.testing.assert_array_equal(group_dataset(sampled, "log_likelihood")["cmas"].values,
                                  moved["cmas"].values + 1.0)
