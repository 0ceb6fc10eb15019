"""Structure that is data: one built model serves any censoring pattern without latent
times; the interaction basis of cell deviations; the spec's parameterisation choices."""

from __future__ import annotations

import dataclasses

import numpy as np
import pymc as pm
import pytest

from jdmbayes.data.validate import load_series
from jdmbayes.errors import InputError
from jdmbayes.estimands.simulate import simulate_milestones, visit_schedule
from jdmbayes.models.indexing import index_milestones
from jdmbayes.models.milestones import (
    build_milestone_model,
    interaction_basis,
    latent_pattern,
    observation_data,
)
from jdmbayes.models.spec import load_model_spec, load_prior_set
from tests.conftest import BUNDLED
from tests.unit.test_milestone_likelihood import point_loglik


def test_new_censoring_pattern_swapped_in_as_data_gives_the_rebuilt_likelihood():
    series = load_series(BUNDLED)
    # the conditional form, so that the point can name every patient's frailty
    spec = dataclasses.replace(load_model_spec("rash_milestones"), frailty="centred")
    prior_set = load_prior_set("default", spec)
    real = index_milestones(series, spec)
    visits = visit_schedule(series, real.subject_ids, real.followup)
    truth = {"intercept": np.array([1.0, 2.0, 3.5]), "dispersion": np.array([0.9, 0.8, 1.0]),
             "beta_group": np.zeros(2), "frailty": np.zeros(real.n_patients)}
    simulated = simulate_milestones(real, visits, "weibull", truth, np.random.default_rng(5))
    assert not np.array_equal(simulated.kind, real.kind)        # another pattern
    assert np.array_equal(latent_pattern(simulated), latent_pattern(real))
    model = build_milestone_model(real, spec, prior_set)
    rebuilt = build_milestone_model(simulated, spec, prior_set)
    point = {"intercept": np.array([0.7, 1.9, 3.1]), "dispersion_log__": np.log([0.8, 0.7, 1.1]),
             "beta_group": np.array([0.2, -0.3]), "frailty": np.linspace(-0.5, 0.5, 24)}
    before = point_loglik(model, point)
    with model:
        pm.set_data(observation_data(simulated))
    assert point_loglik(model, point) == pytest.approx(point_loglik(rebuilt, point), rel=1e-12)
    assert point_loglik(model, point) != pytest.approx(before, rel=1e-6)


def test_interaction_basis_is_orthogonal_to_the_main_effects():
    spec = load_model_spec("rash_milestones")
    design = index_milestones(load_series(BUNDLED), spec).design
    basis = interaction_basis(design)
    main = np.column_stack([np.ones(len(design.cells)), design.cell_effects])
    assert basis.shape == (len(design.cells), len(design.cells) - main.shape[1])
    assert np.allclose(main.T @ basis, 0, atol=1e-12)
    assert np.allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-12)


@pytest.mark.parametrize("choice", ["centred", "interaction"])
def test_cell_parameterisations_build(choice):
    spec = dataclasses.replace(load_model_spec("rash_milestones"), cell_deviations=choice)
    data = index_milestones(load_series(BUNDLED), spec)
    model = build_milestone_model(data, spec, load_prior_set("default", spec))
    free = {v.name for v in model.free_RVs}
    assert ("cell_deviation" in free) == (choice == "centred")
    assert ("w_interaction" in free) == (choice == "interaction")
    assert "cell_deviation" in model.named_vars


def test_spec_rejects_an_unknown_cell_parameterisation(tmp_path):
    text = (load_model_spec("gc_discontinuation").path.read_text()
            .replace('priors = "default"', 'priors = "default"\ncell_deviations = "sideways"'))
    path = tmp_path / "gc.toml"
    path.write_text(text)
    with pytest.raises(InputError) as error:
        load_model_spec(str(path))
    assert [p.rule for p in error.value.problems] == ["cell_deviations"]
    assert "'centred', 'non_centred' or 'interaction'" in str(error.value.problems[0])


def _observed_milestones(data):
    return np.isin(data.kind, (0, 2, 3)).sum(axis=1)      # exact, interval, latent


def test_frailty_chosen_from_the_data_when_the_spec_is_silent(tmp_path):
    from jdmbayes.batch.designs import draw_designs, simulate_series
    from jdmbayes.kinds.registry import kind_of
    from jdmbayes.models.milestones import frailty_form

    text = load_model_spec("rash_milestones").path.read_text().replace(
        'frailty = "centred"', "")
    path = tmp_path / "rash.toml"
    path.write_text(text)
    spec = load_model_spec(str(path))
    assert spec.frailty == "auto"
    # the bundled series: most of 24 patients have all three milestones observed, but 24
    # patients pin sigma_patient too loosely for the centred form -> non-centred
    data = index_milestones(load_series(BUNDLED), spec)
    assert np.median(_observed_milestones(data)) >= 2 and data.n_patients < 100
    assert frailty_form(data, spec) == "non_centred"
    # a varied design of 206 patients with three milestones observed -> centred
    design = next(d for d in draw_designs(40, 20261203) if d.number == 1)
    paths = simulate_series(design).write(tmp_path / "d1")
    big_spec = load_model_spec(str(paths["milestones"]))
    big = index_milestones(load_series(tmp_path / "d1"), big_spec)
    assert big_spec.frailty == "auto" and big.n_patients == 206
    assert np.median(_observed_milestones(big)) >= 2
    assert frailty_form(big, big_spec) == "centred"
    model = build_milestone_model(big, big_spec, load_prior_set("default", big_spec))
    assert "frailty" in {v.name for v in model.free_RVs}
    # the retry ladder's other parameterisation is the other of the one chosen
    assert kind_of(big_spec).reparameterised(big, big_spec).frailty == "non_centred"
    # ... unless a centred frailty on 100 patients or more failed on population effects
    # only (the gates of varied design 14's second attempt): then hierarchically centred
    def failed(*gates, **worst):
        return {"failures": [{"gate": g} for g in gates], "r_hat_max_at": "sigma_cell",
                "ess_bulk_min_at": "intercept[rash_resolution]",
                "ess_tail_min_at": "sigma_patient", **worst}

    def other(data, spec, gates):
        return kind_of(spec).reparameterised(data, spec, gates).frailty

    population = failed("r_hat", r_hat_max_at="intercept[rash_marked_improvement]")
    assert other(big, big_spec, population) == "hierarchically_centred"
    assert other(big, big_spec, failed("r_hat", "ess_bulk")) == "hierarchically_centred"
    # the frailty's own scale among the failed gates' worst, or signs of a funnel: non-centred
    assert other(big, big_spec, failed("r_hat", "ess_bulk", "ess_tail")) == "non_centred"
    assert other(big, big_spec, failed("r_hat", r_hat_max_at="frailty[12]")) == "non_centred"
    assert other(big, big_spec, failed("r_hat", "ebfmi")) == "non_centred"
    assert other(big, big_spec, failed("r_hat", "divergences")) == "non_centred"
    assert other(big, big_spec, failed("divergences")) == "non_centred"
    # fewer than 100 patients, or another form asked: as before
    assert other(data, dataclasses.replace(spec, frailty="centred"), population) == "non_centred"
    for asked, expected in [("non_centred", "centred"), ("hierarchically_centred", "non_centred")]:
        assert other(big, dataclasses.replace(big_spec, frailty=asked), population) == expected
    # right-censor every milestone after the first: one observed each -> non-centred
    few = dataclasses.replace(big, kind=np.where(np.arange(3) > 0, 1, big.kind))
    assert np.median(_observed_milestones(few)) < 2
    assert frailty_form(few, big_spec) == "non_centred"
    assert "z_patient" in {v.name for v in build_milestone_model(
        few, big_spec, load_prior_set("default", big_spec)).free_RVs}
    # a spec's own choice is kept
    assert frailty_form(few, dataclasses.replace(spec, frailty="centred")) == "centred"


def test_auto_frailty_is_for_milestones_only(tmp_path):
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "example-flares" / "flares.toml").read_text()
    path = tmp_path / "flares.toml"
    assert "\nfrailty" not in text
    path.write_text(text.replace("[model]", '[model]\nfrailty = "auto"', 1))
    with pytest.raises(InputError) as error:
        load_model_spec(str(path))
    assert [p.rule for p in error.value.problems] == ["frailty"]
    assert "non_centred, centred, integrated" in str(error.value.problems[0])


@pytest.mark.parametrize("cells", ["non_centred", "interaction"])
def test_hierarchically_centred_frailty_is_the_centred_model_under_a_unit_jacobian_shear(cells):
    """The joint log density of the hierarchically centred form at (population values,
    locations) equals the centred form's at (the same values, frailties = locations minus
    the group effects and mean intercept), on the bundled series (exact, right- and
    interval-censored gaps; it has no latent middle milestones); and its ``frailty`` is
    that difference."""
    series = load_series(BUNDLED)
    base = dataclasses.replace(load_model_spec("rash_milestones"), cell_deviations=cells)
    data = index_milestones(series, base)
    prior_set = load_prior_set("default", base)
    centred = build_milestone_model(data, dataclasses.replace(base, frailty="centred"),
                                    prior_set)
    sheared = build_milestone_model(
        data, dataclasses.replace(base, frailty="hierarchically_centred"), prior_set)
    assert "patient_location" in {v.name for v in sheared.free_RVs}
    rng = np.random.default_rng(11)
    point = {k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in
             centred.initial_point().items()}
    frailty = point["frailty"]
    # the location at which the sheared model's frailty is 0 is the fixed part
    frailty_of = sheared.compile_fn(sheared.replace_rvs_by_values([sheared["frailty"]])[0],
                                    inputs=sheared.value_vars, point_fn=True,
                                    on_unused_input="ignore")
    at_zero = {k: v for k, v in point.items() if k != "frailty"}
    at_zero["patient_location"] = np.zeros(data.n_patients)
    fixed = -frailty_of(at_zero)
    assert np.ptp(fixed) > 0.05          # the group effects differ between patients
    moved = {**at_zero, "patient_location": fixed + frailty}
    assert np.allclose(frailty_of(moved), frailty, atol=1e-12)
    logp_centred = centred.compile_logp()(point)
    logp_sheared = sheared.compile_logp()(moved)
    assert np.isfinite(logp_centred)
    assert logp_sheared == pytest.approx(logp_centred, rel=1e-12, abs=1e-9)
    # and not by accident: another location gives another density
    shifted = {**moved, "patient_location": moved["patient_location"] + 0.1}
    assert sheared.compile_logp()(shifted) != pytest.approx(logp_centred, abs=1e-3)


def test_hierarchically_centred_prior_draws_give_frailties_of_spread_sigma_patient():
    from jdmbayes.inference.sampling import sample_prior

    spec = dataclasses.replace(load_model_spec("rash_milestones"),
                               frailty="hierarchically_centred")
    data = index_milestones(load_series(BUNDLED), spec)
    prior = sample_prior(build_milestone_model(data, spec, load_prior_set("default", spec)),
                         2000, 7).prior
    z = (prior["frailty"] / prior["sigma_patient"]).values.ravel()
    # 2,000 draws x 24 patients of what should be standard normal values
    assert abs(z.mean()) < 0.03 and abs(z.std() - 1) < 0.02
