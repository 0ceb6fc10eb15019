"""Named prior sets, 'extends', the log prior group, power-scaling diagnosis and the
sensitivity grid's robustness rule and folder checks (no sampling)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from jdmbayes.batch.grid import prepare_folder, robustness
from jdmbayes.errors import InputError
from jdmbayes.inference.power_scaling import diagnosis
from jdmbayes.models.priors import log_prior_dataset
from jdmbayes.models.spec import PRIORS_DIR, load_model_spec, load_prior_set

MODELS = ["rash_milestones", "gc_discontinuation", "cmas", "cat_bm", "ldh"]
SETS = ["default", "vague", "sceptical", "enthusiastic", "informative"]


@pytest.mark.parametrize("name", SETS)
def test_every_named_set_loads_for_every_model_with_the_default_families(name):
    for model in MODELS:
        spec = load_model_spec(model)
        prior_set = load_prior_set(name, spec)
        default = load_prior_set("default", spec)
        # same distributions: a sensitivity grid swaps values in without recompiling
        assert prior_set.family_signature() == default.family_signature(), (name, model)
        assert prior_set.description


def test_sets_say_what_they_believe():
    sceptical = load_prior_set("sceptical", load_model_spec("rash_milestones"))
    assert sceptical.priors["beta_group"].parameters["sigma"] == 0.15
    enthusiastic_cmas = load_prior_set("enthusiastic", load_model_spec("cmas"))
    enthusiastic_cat = load_prior_set("enthusiastic", load_model_spec("cat_bm"))
    # improvement is a rise of CMAS and a fall of CAT-BM: the model sections say so
    assert enthusiastic_cmas.priors["change"].parameters["mu"] == 1.5
    assert enthusiastic_cat.priors["change"].parameters["mu"] == -1.5
    informative = (PRIORS_DIR / "informative.toml").read_text()
    for source in ("Aggarwal", "10.1002/art.41602", "28 +- 15.4", "Zhang", "88 children"):
        assert source in informative
    gc = load_prior_set("informative", load_model_spec("gc_discontinuation"))
    assert gc.priors["intercept"].parameters == {"mu": 1.4, "sigma": 1.5}


def test_extends_takes_the_base_tables_and_replaces_one(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[prior_set]\nextends = "default"\n\n[milestones.beta_group]\n'
                    'dist = "Normal"\nkwargs = { mu = 0.0, sigma = 0.2 }\n')
    spec = load_model_spec("rash_milestones")
    mine, default = load_prior_set(str(path), spec), load_prior_set("default", spec)
    assert mine.priors["beta_group"].parameters["sigma"] == 0.2
    assert mine.as_dicts()["intercept"] == default.as_dicts()["intercept"]
    assert mine.name == "mine"


def test_extends_cycle_and_unknown_key_are_clear(tmp_path):
    (tmp_path / "a.toml").write_text('[prior_set]\nextends = "b"\n')
    (tmp_path / "b.toml").write_text('[prior_set]\nextends = "a"\ncolour = "red"\n')
    with pytest.raises(InputError) as caught:
        load_prior_set("a", load_model_spec("rash_milestones"), priors_dir=tmp_path)
    rules = {p.rule for p in caught.value.problems}
    assert {"prior_extends", "prior_set_key"} <= rules
    assert "valid: description, extends" in str(caught.value)
    with pytest.raises(InputError) as caught:
        (tmp_path / "c.toml").write_text('[prior_set]\nextends = "nothing"\n')
        load_prior_set("c", load_model_spec("rash_milestones"), priors_dir=tmp_path)
    assert "no prior set 'nothing'" in str(caught.value)


def test_log_prior_matches_scipy(monkeypatch):
    """The log prior densities agree with scipy's, and are not compiled: with numba's
    linker made to fail they are still computed."""
    from pytensor.link.numba.linker import NumbaLinker

    from jdmbayes.models import priors

    def refuse(*args, **kwargs):
        raise AssertionError("numba compiled a log prior density")

    monkeypatch.setattr(NumbaLinker, "make_all", refuse)
    monkeypatch.setattr(priors, "_LOGP_FUNCTIONS", {})
    spec = load_model_spec("rash_milestones")
    prior_set = load_prior_set("default", spec)
    rng = np.random.default_rng(1)
    posterior = xr.Dataset({
        "intercept": (("chain", "draw", "outcome"), rng.normal(1, 1, (2, 5, 3))),
        "sigma_patient": (("chain", "draw"), rng.uniform(0.1, 2, (2, 5))),
        "dispersion": (("chain", "draw", "outcome"), rng.uniform(0.1, 2, (2, 5, 3))),
        "frailty": (("chain", "draw", "patient"), rng.normal(0, 1, (2, 5, 4)))})
    log_prior = log_prior_dataset(prior_set, posterior)
    assert set(log_prior.data_vars) == {"intercept", "sigma_patient", "dispersion"}
    np.testing.assert_allclose(log_prior["intercept"],
                               stats.norm(1.4, 1.5).logpdf(posterior["intercept"]), rtol=1e-10)
    np.testing.assert_allclose(log_prior["sigma_patient"],
                               stats.halfnorm(scale=0.5).logpdf(posterior["sigma_patient"]),
                               rtol=1e-10)
    np.testing.assert_allclose(log_prior["dispersion"],
                               stats.lognorm(s=0.5, scale=np.exp(-0.22)).logpdf(
                                   posterior["dispersion"]), rtol=1e-10)


def test_power_scaling_diagnosis_follows_priorsense():
    assert diagnosis(0.06, 0.2) == "potential prior-data conflict"
    assert diagnosis(0.06, 0.01) == "potential strong prior / weak likelihood"
    assert diagnosis(0.01, 0.2) == "-"
    assert diagnosis(0.01, 0.01) == "-"


def _estimands(values):
    rows = []
    for prior, (median, low, high) in values.items():
        rows.append({"model": "m", "outcome": "o", "quantity": "time_ratio", "group": "a/b",
                     "median": median, "ci_low": low, "ci_high": high, "prior_set": prior})
        rows.append({"model": "m", "outcome": "o", "quantity": "median_time_wk",
                     "group": "overall", "median": median * 10, "ci_low": low * 10,
                     "ci_high": high * 10, "prior_set": prior})
    return pd.DataFrame(rows)


def _diagnostics(verdicts):
    return pd.DataFrame([{"model": "m", "prior_set": p, "verdict": v}
                         for p, v in verdicts.items()])


def test_robustness_rule():
    names = ["default", "vague", "sceptical"]
    estimands = _estimands({"default": (0.5, 0.3, 0.9), "vague": (0.45, 0.2, 0.95),
                            "sceptical": (0.95, 0.8, 1.1)})
    verdicts = robustness(estimands, _diagnostics(dict.fromkeys(names, "pass")), names)
    ratio = verdicts[verdicts["quantity"] == "time_ratio"].iloc[0]
    median = verdicts[verdicts["quantity"] == "median_time_wk"].iloc[0]
    # the sceptical interval includes 1: the contrast's conclusion does not hold
    assert ratio["verdict"] == "prior-sensitive" and ratio["moved_by"] == "sceptical"
    # sceptical median 9.5 lies outside the default interval 3..9
    assert median["verdict"] == "prior-sensitive" and median["moved_by"] == "sceptical"
    # a fit that failed a gate is not used
    verdicts = robustness(estimands, _diagnostics({"default": "pass", "vague": "pass",
                                                   "sceptical": "fail"}), names)
    assert set(verdicts["verdict"]) == {"robust"}
    assert set(verdicts["excluded_failed_gates"]) == {"sceptical"}
    verdicts = robustness(estimands, _diagnostics({"default": "fail", "vague": "pass",
                                                   "sceptical": "pass"}), names)
    assert set(verdicts["verdict"]) == {"undetermined"}


def test_grid_folder_resumes_only_the_same_grid(tmp_path):
    out = tmp_path / "grid"
    config = {"models": ["m"], "prior_sets": ["default", "vague"], "seed": 1}
    assert prepare_folder(out, config, overwrite=False) is False
    assert prepare_folder(out, config, overwrite=False) is True
    with pytest.raises(InputError) as caught:
        prepare_folder(out, {**config, "seed": 2}, overwrite=False)
    assert "differs in: seed" in str(caught.value)
    assert prepare_folder(out, {**config, "seed": 2}, overwrite=True) is False


@pytest.mark.filterwarnings("ignore:The effect of Potentials")
def test_prior_draws_are_not_compiled_and_agree_with_the_compiled_function(monkeypatch):
    """The prior draws run on PyTensor's Python linker (PRIOR_DRAWS_MODE): with numba's
    linker made to fail they are still drawn, and they agree with the draws of the same
    seed through the compiled function to rounding."""
    import pymc as pm
    from pytensor.link.numba.linker import NumbaLinker

    from jdmbayes.data.validate import load_series
    from jdmbayes.inference.sampling import sample_prior
    from jdmbayes.models.indexing import index_longitudinal
    from jdmbayes.models.longitudinal import build_longitudinal_model
    from tests.conftest import BUNDLED

    spec = load_model_spec("cmas")
    model = build_longitudinal_model(index_longitudinal(load_series(BUNDLED), spec), spec,
                                     load_prior_set("default", spec))
    with model:
        compiled = pm.sample_prior_predictive(draws=200, random_seed=11).prior

    def refuse(*args, **kwargs):
        raise AssertionError("numba compiled a prior-draw function")

    monkeypatch.setattr(NumbaLinker, "make_all", refuse)
    drawn = sample_prior(model, 200, 11).prior
    for name in ("intercept", "sigma_intercept", "tau_weeks", "noise", "cell_deviation"):
        np.testing.assert_allclose(drawn[name].values, compiled[name].values,
                                   rtol=1e-12, atol=1e-14)
    assert float(drawn["noise"].std()) > 0     # draws, not one repeated value
