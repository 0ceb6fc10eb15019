"""Specs and prior sets: round trip through pymc-extras Prior, and clear errors."""

from __future__ import annotations

import tomllib

import pytest

from jdmbayes.errors import InputError
from jdmbayes.models.spec import MODELS_DIR, PRIORS_DIR, load_model_spec, load_prior_set


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


@pytest.mark.parametrize(("new", "rule", "message"), [
    # each crashed validate and fit with a traceback (getattr with a list; .items of a number)
    ('dist = ["HalfNormal"]\nkwargs = { sigma = 0.25 }', "prior_distribution",
     "[milestones.sigma_cell]: dist must be the name of a distribution, got ['HalfNormal']; "
     "valid: AsymmetricLaplace"),
    ('dist = "HalfNormal"\nkwargs = 0.25', "prior_table", "[milestones.sigma_cell]: kwargs "
     "must be a table of arguments (kwargs = { sigma = 1.0 }), got 0.25"),
])
def test_a_prior_table_of_the_wrong_shape_is_refused(tmp_path, new, rule, message):
    old = 'dist = "HalfNormal"\nkwargs = { sigma = 0.25 }'
    text = (PRIORS_DIR / "default.toml").read_text()
    assert text.count(old) >= 1
    path = tmp_path / "p.toml"
    path.write_text(text.replace(old, new, 1))
    problem = _problem(str(path))
    assert problem.rule == rule
    assert problem.message.startswith(message), problem.message


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



@pytest.mark.parametrize(("old", "new", "where", "needs"), [
    ('dist = "HalfNormal"\nkwargs = { sigma = 0.25 }',
     'dist = "HalfNormal"\nkwargs = { sigma = -0.25 }', "[milestones.sigma_cell]",
     "HalfNormal needs sigma > 0"),
    ("kwargs = { mu = -0.22, sigma = 0.5 }", "kwargs = { mu = -0.22, sigma = 0.0 }",
     "[milestones.dispersion]", "LogNormal needs sigma > 0"),
])
def test_prior_arguments_outside_their_support_are_refused(tmp_path, old, new, where, needs):
    # a negative scale once passed validate and fit died in the sampler ("All
    # initialization points failed") with a traceback
    text = (PRIORS_DIR / "default.toml").read_text()
    assert old in text
    path = tmp_path / "p.toml"
    path.write_text(text.replace(old, new, 1))
    problem = _problem(str(path))
    assert problem.rule == "prior_support"
    assert problem.message.startswith(f"{where}: {needs}, got")
    # the bundled set itself passes the same check
    assert load_prior_set("default", load_model_spec("rash_milestones")).priors

SIGMA_PATIENT = 'dist = "HalfNormal"\nkwargs = { sigma = 0.5 }'
LKJ_CORR = 'dist = "Beta"\nkwargs = { alpha = 2.0, beta = 2.0 }'


@pytest.mark.parametrize(("model", "old", "new", "rule", "message"), [
    # a spread with a prior on the whole line: fit sampled negative spreads
    ("rash_milestones", SIGMA_PATIENT, 'dist = "Normal"\nkwargs = { mu = 0.0, sigma = 0.5 }',
     "prior_domain", "[milestones.sigma_patient]: Normal({'mu': 0.0, 'sigma': 0.5}) puts "
     "prior mass on values <= 0, and sigma_patient is positive"),
    ("rash_milestones", SIGMA_PATIENT,
     'dist = "Uniform"\nkwargs = { lower = -1e-9, upper = 1.0 }', "prior_domain",
     "[milestones.sigma_patient]: Uniform"),
    ("rash_milestones", SIGMA_PATIENT,
     'dist = "TruncatedNormal"\nkwargs = { mu = 0.0, sigma = 1.0, lower = -1.0 }',
     "prior_domain", "[milestones.sigma_patient]: TruncatedNormal"),
    # (rho + 1) / 2 lies between 0 and 1
    ("cmas", LKJ_CORR, 'dist = "Normal"\nkwargs = { mu = 0.5, sigma = 0.2 }', "prior_domain",
     "[longitudinal_logit.lkj_corr]: Normal({'mu': 0.5, 'sigma': 0.2}) puts prior mass "
     "outside 0 to 1"),
    # kinds of distribution that cannot be a prior here: each passed validate (or crashed it)
    ("rash_milestones", SIGMA_PATIENT, 'dist = "Poisson"\nkwargs = { mu = 1.0 }',
     "prior_distribution", "[milestones.sigma_patient]: 'Poisson' is discrete, and NUTS "
     "samples continuous parameters only; valid: AsymmetricLaplace, Beta"),
    ("rash_milestones", SIGMA_PATIENT, 'dist = "HalfFlat"\nkwargs = {}', "prior_distribution",
     "[milestones.sigma_patient]: 'HalfFlat' is improper"),
    ("rash_milestones", SIGMA_PATIENT, 'dist = "Dirichlet"\nkwargs = { a = 1.0 }',
     "prior_distribution", "[milestones.sigma_patient]: 'Dirichlet' is not a univariate "
     "continuous distribution"),
    # an argument set PyMC cannot build the distribution from crashed validate
    ("rash_milestones", SIGMA_PATIENT, 'dist = "Gamma"\nkwargs = { alpha = 2.0 }',
     "prior_argument", "[milestones.sigma_patient]: Gamma cannot be built from "
     "{'alpha': 2.0}: Incompatible parameterization"),
])
def test_priors_a_parameter_cannot_have_are_refused(tmp_path, model, old, new, rule, message):
    text = (PRIORS_DIR / "default.toml").read_text()
    assert old in text
    path = tmp_path / "p.toml"
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_prior_set(str(path), load_model_spec(model))
    (problem,) = caught.value.problems
    assert (problem.rule, problem.file, problem.column) == (rule, str(path),
                                                            message.split("]")[0].split(".")[1])
    assert problem.message.startswith(message), problem.message


def test_priors_on_a_parameters_own_range_are_accepted(tmp_path):
    # positive distributions for a spread, and one bounded at 0 (the range's edge)
    text = (PRIORS_DIR / "default.toml").read_text()
    for new in ('dist = "Gamma"\nkwargs = { alpha = 2.0, beta = 4.0 }',
                'dist = "TruncatedNormal"\nkwargs = { mu = 0.0, sigma = 0.5, lower = 0.0 }',
                'dist = "Uniform"\nkwargs = { lower = 0.0, upper = 2.0 }'):
        path = tmp_path / "p.toml"
        path.write_text(text.replace(SIGMA_PATIENT, new, 1))
        prior = load_prior_set(str(path), load_model_spec("rash_milestones")).priors
        assert prior["sigma_patient"].distribution == new.split('"')[1]


CMAS = (MODELS_DIR / "cmas.toml").read_text()
RASH = (MODELS_DIR / "rash_milestones.toml").read_text()
FLARES = (MODELS_DIR.parent / "docs" / "example-flares" / "flares.toml").read_text()


@pytest.mark.parametrize(("base", "old", "new", "key", "needs"), [
    (CMAS, "upper = 52", "upper = \"52\"", "upper", "a whole number > 0, got '52'"),
    (CMAS, "upper = 52", "upper = 52.5", "upper", "a whole number > 0, got 52.5"),
    (CMAS, "threshold = 5.0", "threshold = \"five\"", "threshold", "a number >= 0"),
    (CMAS, "final_week = 24", "final_week = 0", "final_week", "a number > 0, got 0"),
    (CMAS, "replicates = 40", "replicates = \"forty\"", "replicates", "a whole number >= 1"),
    (CMAS, "replicates = 40", "replicates = 0", "replicates", "a whole number >= 1, got 0"),
    (CMAS, "replicates = 40", "replicates = 40\nrandom_change = \"false\"", "random_change",
     "true or false, got 'false'"),
    (CMAS, "correlation = false", 'correlation = "no"', "correlation",
     "true or false, got 'no'"),
    (FLARES, "episode_effect = true", "episode_effect = 1", "episode_effect",
     "true or false, got 1"),
    (CMAS, 'name = "cmas"', "name = 7", "name", "text, got 7"),
    (CMAS, 'measure = "cmas"', "measure = 7", "measure", "text, got 7"),
    (CMAS, 'grouping = ["drug", "dose_start_mg_bid"]', 'grouping = "drug"', "grouping",
     "a list of names"),
    (RASH, 'outcomes = ["rash_improvement", "rash_marked_improvement", "rash_resolution"]',
     'outcomes = "rash_improvement"', "outcomes", "a list of names"),
    (RASH, "population = { rash_at_start = 1 }", 'population = ["rash_at_start"]',
     "population", "a table"),
    # passed validate and sampled, then failed with a traceback writing grant.md
    (RASH, 'description = "Rash improvement, marked improvement and complete resolution '
     '(gap-time AFT, shared frailty)"', "description = 1", "description", "text, got 1"),
])
def test_spec_values_of_the_wrong_type_are_refused_with_their_key(tmp_path, base, old, new,
                                                                 key, needs):
    # each once made fit or validate fail with a traceback (a string where a number goes,
    # a number where a name goes) or silently misread ("false" taken as true)
    assert old in base
    path = tmp_path / "mine.toml"
    path.write_text(base.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_model_spec(str(path))
    problems = [p for p in caught.value.problems if p.column == key]
    assert problems and problems[0].rule == key, caught.value.problems
    assert f"{key} must be {needs}" in problems[0].message


@pytest.mark.parametrize(("base", "old", "new", "rule", "message"), [
    # a list of values crashed validate and fit with a traceback; a list now means any of
    # its values, so an empty one, a table or a value listed twice is refused
    # a list or table as the likelihood crashed validate and fit with a traceback
    (CMAS, 'likelihood = "beta_binomial"', 'likelihood = ["beta_binomial"]', "likelihood",
     "unknown likelihood ['beta_binomial']; valid: beta_binomial, censored_normal, "
     "lognormal"),
    (RASH, "population = { rash_at_start = 1 }", "population = { rash_at_start = [] }",
     "population", "population selects rash_at_start = []: give a value (text, a number, or "
     "true or false) or a list of such values (any of them)"),
    (RASH, "population = { rash_at_start = 1 }", "population = { rash_at_start = { a = 1 } }",
     "population", "population selects rash_at_start = {'a': 1}: give a value"),
    (RASH, "population = { rash_at_start = 1 }", "population = { rash_at_start = [1, 1] }",
     "population", "population lists 1 more than once for rash_at_start"),
    # the next four passed validate and were fitted
    (RASH, '"rash_resolution"]', '"rash_resolution", "rash_resolution"]', "outcomes",
     "outcomes lists 'rash_resolution' more than once"),
    (RASH, '["drug", "ruxolitinib", "tofacitinib"]', '["drug", "ruxolitinib", "ruxolitinib"]',
     "contrast", "contrast ['drug', 'ruxolitinib', 'ruxolitinib'] sets a level against "
     "itself"),
    (RASH, "covariates = []", 'covariates = ["drug"]', "covariates",
     "'drug' is both a grouping column and a covariate"),
    (CMAS, 'grouping = ["drug", "dose_start_mg_bid"]',
     'grouping = ["drug", "dose_start_mg_bid", "drug"]', "grouping",
     "grouping lists 'drug' more than once"),
])
def test_specs_that_name_a_thing_twice_or_a_level_against_itself_are_refused(
        tmp_path, base, old, new, rule, message):
    assert old in base
    path = tmp_path / "mine.toml"
    path.write_text(base.replace(old, new, 1))
    with pytest.raises(InputError) as caught:
        load_model_spec(str(path))
    (problem,) = caught.value.problems
    assert (problem.rule, problem.file) == (rule, str(path))
    assert problem.message.startswith(message), problem.message
