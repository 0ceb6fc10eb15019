"""Priors on the measure's own scale (issue 18.2): the bundled measures keep their own tables,
any other measure's generic tables are scaled from its spec's plausible range or, when the
spec is silent, to its data (rstanarm's autoscale), and the scaling is said (no sampling)."""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

from jdmbayes.errors import InputError
from jdmbayes.models.measure_scale import Z90, measure_scale, scale_priors, scaling_note
from jdmbayes.models.spec import load_model_spec, load_prior_set

SETS = ["default", "vague", "sceptical", "enthusiastic", "informative"]


def marker_spec(tmp_path, extra: str = "", likelihood: str = "lognormal", name="marker_fit"):
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(f"""\
        [model]
        name = "{name}"
        kind = "longitudinal"
        measure = "marker"
        likelihood = "{likelihood}"
        final_week = 104
        grouping = ["arm"]
        """) + extra)
    return load_model_spec(str(path))


def kwargs(prior_set, parameter):
    return prior_set.priors[parameter].parameters


@pytest.mark.parametrize("name", SETS)
def test_the_bundled_measures_keep_their_own_priors(name):
    """What the bundled models were validated with, in every named set: LDH's tables (U/L)
    and the scores' time constants (weeks) are their own and are not scaled."""
    for model in ("cmas", "cat_bm", "ldh"):
        spec = load_model_spec(model)
        loaded = load_prior_set(name, spec)
        scaled = scale_priors(loaded, spec, np.array([100.0, 300.0, 900.0]))
        assert scaled.as_dicts() == loaded.as_dicts(), (name, model)
        assert "tau_weeks" not in loaded.generic
    ldh = load_prior_set("default", load_model_spec("ldh"))
    assert ldh.generic == ()
    assert kwargs(ldh, "intercept") == {"mu": 5.7, "sigma": 1.1}     # 300 U/L
    cmas = scale_priors(load_prior_set("default", load_model_spec("cmas")),
                        load_model_spec("cmas"), None)
    assert kwargs(cmas, "tau_weeks") == {"mu": 1.8, "sigma": 0.8}
    assert cmas.scaling["source"] == "bounds"
    enthusiastic = load_prior_set("enthusiastic", load_model_spec("cat_bm"))
    assert kwargs(enthusiastic, "tau_weeks") == {"mu": 1.1, "sigma": 0.4}


def test_another_measure_is_scaled_to_its_data_as_rstanarm_autoscale(tmp_path):
    spec = marker_spec(tmp_path)
    values = np.exp(np.random.default_rng(1).normal(2.0, 0.7, 400))
    loaded = load_prior_set("default", spec)
    assert "intercept" in loaded.generic
    scaled = scale_priors(loaded, spec, values)
    centre, spread = np.log(values).mean(), np.log(values).std(ddof=1)
    assert scaled.scaling["source"] == "data"
    assert kwargs(scaled, "intercept") == pytest.approx({"mu": centre, "sigma": 2.0 * spread})
    assert kwargs(scaled, "change") == pytest.approx({"mu": 0.0, "sigma": spread})
    assert kwargs(scaled, "sigma_cell") == pytest.approx({"sigma": 0.5 * spread})
    assert kwargs(scaled, "noise") == pytest.approx({"sigma": spread})
    assert kwargs(scaled, "lkj_corr") == {"alpha": 2.0, "beta": 2.0}
    # the time constant's median is a quarter of the follow-up (104 weeks)
    assert math.exp(kwargs(scaled, "tau_weeks")["mu"]) == pytest.approx(26.0, rel=1e-4)
    # LDH's 300 U/L never reaches it
    assert kwargs(scaled, "intercept")["mu"] != 5.7
    note = scaling_note(scaled, "marker")
    assert "autoscale" in note and f"{math.exp(centre):.4g}" in note
    # the same distributions and arguments: a prior grid still swaps values in
    assert scaled.family_signature() == loaded.family_signature()


def test_the_spec_plausible_range_sets_the_scale(tmp_path):
    spec = marker_spec(tmp_path, 'unit = "mg/L"\nplausible_range = [2, 200]\n')
    scaled = scale_priors(load_prior_set("default", spec), spec, np.array([1.0, 1.0]))
    centre = (math.log(2) + math.log(200)) / 2
    spread = (math.log(200) - math.log(2)) / (2 * Z90)
    assert scaled.scaling["source"] == "spec"
    assert kwargs(scaled, "intercept") == pytest.approx({"mu": centre, "sigma": 2 * spread})
    assert kwargs(scaled, "beta_group") == pytest.approx({"mu": 0.0, "sigma": spread})
    # a 90% range: c +- 1.645 s is the range given
    assert math.exp(centre - Z90 * spread) == pytest.approx(2.0)
    assert "mg/L" in scaled.scaling["description"]
    assert "plausible_range" in scaling_note(scaled, "marker")


def test_a_data_spread_of_zero_is_floored():
    spec_scale = measure_scale(
        type("Spec", (), {"likelihood": "lognormal", "plausible_range": (), "final_week": 24.0,
                          "unit": ""})(), np.full(10, 50.0))
    assert spec_scale.spread == 0.05 and spec_scale.centre == pytest.approx(math.log(50))


def test_a_measure_section_is_its_own_and_a_model_section_beats_it(tmp_path):
    spec = marker_spec(tmp_path)
    priors = tmp_path / "mine.toml"
    priors.write_text(textwrap.dedent("""\
        [prior_set]
        extends = "default"

        [marker.change]
        dist = "Normal"
        kwargs = { mu = 0.1, sigma = 0.2 }

        [marker.noise]
        dist = "HalfNormal"
        kwargs = { sigma = 0.3 }

        [marker_fit.noise]
        dist = "HalfNormal"
        kwargs = { sigma = 0.4 }

        [longitudinal_log.beta_group]
        dist = "LogNormal"
        kwargs = { mu = 0.0, sigma = 0.5 }
        """))
    loaded = load_prior_set(str(priors), spec)
    assert "change" not in loaded.generic and "noise" not in loaded.generic
    scaled = scale_priors(loaded, spec, np.exp(np.array([1.0, 3.0, 5.0])))   # spread 2
    assert kwargs(scaled, "change") == {"mu": 0.1, "sigma": 0.2}           # as written
    assert kwargs(scaled, "noise") == {"sigma": 0.4}                       # the model's
    # a log-normal generic table scales by shifting its log location
    assert kwargs(scaled, "beta_group") == pytest.approx({"mu": math.log(2.0), "sigma": 0.5})


def test_generic_tables_that_cannot_be_scaled_are_refused_with_file_and_rule(tmp_path):
    spec = marker_spec(tmp_path)
    priors = tmp_path / "odd.toml"
    priors.write_text(textwrap.dedent("""\
        [prior_set]
        extends = "default"

        [longitudinal_log.tau_weeks]
        dist = "Gamma"
        kwargs = { alpha = 2.0, beta = 0.1 }

        [longitudinal_log.intercept]
        dist = "HalfNormal"
        kwargs = { sigma = 1.0 }
        """))
    with pytest.raises(InputError) as error:
        scale_priors(load_prior_set(str(priors), spec), spec, np.array([1.0, 2.0]))
    rules = {(p.rule, p.column, p.file) for p in error.value.problems}
    assert rules == {("prior_generic_time", "tau_weeks", str(priors)),
                     ("prior_generic_scale", "intercept", str(priors))}


def test_a_bounded_score_scales_time_only(tmp_path):
    spec = marker_spec(tmp_path, "upper = 30\n", likelihood="beta_binomial")
    loaded = load_prior_set("default", spec)
    scaled = scale_priors(loaded, spec, None)
    assert scaled.scaling["source"] == "bounds"
    for parameter in loaded.priors:
        if parameter != "tau_weeks":
            assert kwargs(scaled, parameter) == kwargs(loaded, parameter)
    assert math.exp(kwargs(scaled, "tau_weeks")["mu"]) == pytest.approx(26.0, rel=1e-4)


@pytest.mark.parametrize("line", ["plausible_range = [200, 2]", "plausible_range = [0, 5]",
                                  "plausible_range = [1, 2, 3]"])
def test_a_bad_plausible_range_is_refused(tmp_path, line):
    with pytest.raises(InputError) as error:
        marker_spec(tmp_path, line + "\n")
    assert [p.rule for p in error.value.problems] == ["plausible_range"]


def test_a_plausible_range_on_a_bounded_score_is_refused(tmp_path):
    with pytest.raises(InputError) as error:
        marker_spec(tmp_path, "upper = 30\nplausible_range = [1, 20]\n",
                    likelihood="beta_binomial")
    assert [p.rule for p in error.value.problems] == ["plausible_range"]
