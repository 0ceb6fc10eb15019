"""Specs and prior sets: round trip through pymc-extras Prior, and clear errors."""

from __future__ import annotations

import tomllib

import pytest

from jdmbayes.errors import InputError
from jdmbayes.models.spec import PRIORS_DIR, load_model_spec, load_prior_set


def test_default_prior_set_round_trips_through_prior_dicts():
    spec = load_model_spec("rash_milestones")
    prior_set = load_prior_set("default", spec)
    with open(PRIORS_DIR / "default.toml", "rb") as handle:
        raw = tomllib.load(handle)["milestones"]
    assert prior_set.as_dicts() == {k: {"dist": v["dist"], "kwargs": v["kwargs"]}
                                    for k, v in raw.items()}


def _write(tmp_path, text):
    path = tmp_path / "mine.toml"
    path.write_text((PRIORS_DIR / "default.toml").read_text() + text)
    return str(path)


def _problem(path):
    with pytest.raises(InputError) as caught:
        load_prior_set(path, load_model_spec("rash_milestones"))
    return caught.value.problems[0]


def test_unknown_parameter_lists_the_valid_ones(tmp_path):
    problem = _problem(_write(tmp_path, '\n[milestones.beta_drug]\ndist = "Normal"\n'))
    assert problem.rule == "prior_parameter"
    assert "valid: intercept, beta_group, sigma_cell, sigma_patient, dispersion" in problem.message


def test_unknown_distribution_lists_valid_ones(tmp_path):
    text = (PRIORS_DIR / "default.toml").read_text().replace(
        'dist = "HalfNormal"\nkwargs = { sigma = 0.25 }',
        'dist = "HalfNormel"\nkwargs = { sigma = 0.25 }')
    path = tmp_path / "p.toml"
    path.write_text(text)
    problem = _problem(str(path))
    assert problem.rule == "prior_distribution"
    assert "unknown distribution 'HalfNormel'" in problem.message
    assert "HalfCauchy" in problem.message


def test_unknown_argument_lists_valid_ones(tmp_path):
    text = (PRIORS_DIR / "default.toml").read_text().replace(
        "kwargs = { mu = 0.0, sigma = 0.7 }", "kwargs = { mean = 0.0, sigma = 0.7 }")
    path = tmp_path / "p.toml"
    path.write_text(text)
    problem = _problem(str(path))
    assert problem.rule == "prior_argument"
    assert problem.message == ("[milestones.beta_group]: Normal has no argument 'mean'; valid: "
                               "mu, sigma, tau")


def test_unknown_model_and_family(tmp_path):
    with pytest.raises(InputError) as caught:
        load_model_spec("no_such_model")
    assert ("valid: cat_bm, cmas, gc_discontinuation, ldh, rash_milestones"
            in str(caught.value))
    path = tmp_path / "m.toml"
    path.write_text('[model]\nkind = "milestones"\noutcomes = ["x"]\nfamily = "gamma"\n')
    with pytest.raises(InputError) as caught:
        load_model_spec(str(path))
    assert "unknown family 'gamma'; valid: weibull, lognormal, loglogistic" in str(caught.value)


def test_model_names_are_found_in_the_users_folder_then_bundled(tmp_path, monkeypatch):
    from jdmbayes.models.spec import MODELS_DIR

    mine = tmp_path / "specs"
    mine.mkdir()
    text = (MODELS_DIR / "gc_discontinuation.toml").read_text()
    (mine / "my_gc.toml").write_text(text.replace('name = "gc_discontinuation"',
                                                  'name = "my_gc"'))
    (mine / "pyproject.toml").write_text("[project]\nname = 'x'\n")   # not a spec
    assert load_model_spec("my_gc", mine).path == mine / "my_gc.toml"
    assert load_model_spec("my_gc", mine).name == "my_gc"
    # a bundled name still resolves; the current folder is searched when no folder is named
    assert load_model_spec("cmas", mine).path == MODELS_DIR / "cmas.toml"
    monkeypatch.chdir(mine)
    assert load_model_spec("my_gc").path == mine / "my_gc.toml"
    with pytest.raises(InputError) as caught:
        load_model_spec("pyproject")
    message = str(caught.value)
    assert "[unknown_model]" in message and "my_gc" in message and "pyproject," not in message
    assert "or give the path to a model file (.toml)" in message
    # a prior set named by a user's spec is looked up beside it first
    (mine / "priors").mkdir()
    bundled = (MODELS_DIR / "priors" / "default.toml").read_text()
    (mine / "priors" / "mine.toml").write_text(bundled)
    from jdmbayes.models.spec import load_prior_set

    assert load_prior_set("mine", load_model_spec("my_gc")).path == mine / "priors" / "mine.toml"


def test_a_spec_changed_in_code_is_another_compiled_model():
    """The in-process model cache keys on every field of the spec, not its file's text."""
    import dataclasses

    import numpy as np

    from jdmbayes.kinds.common import structure_key
    from jdmbayes.models.spec import load_prior_set

    spec = load_model_spec("rash_milestones")
    priors = load_prior_set("default", spec)
    arrays = {"kind": np.zeros(3)}
    assert structure_key(spec, priors, arrays) == structure_key(spec, priors, arrays)
    for change in ({"frailty": "integrated"}, {"family": "lognormal"}, {"covariates": ("x",)}):
        other = dataclasses.replace(spec, **change)
        assert structure_key(other, priors, arrays) != structure_key(spec, priors, arrays)
