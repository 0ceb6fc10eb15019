"""The frailty integrated out of the milestone likelihood (opt-in) gives the same posterior as
the conditional form on the bundled series (within Monte Carlo error) with every patient's
Pareto k below 0.7; `compare` ranks specs of the same outcome and refuses others before
sampling."""

from __future__ import annotations

import dataclasses

import arviz as az
import numpy as np
import pandas as pd
import pytest

from jdmbayes.cli import main
from jdmbayes.data.validate import load_series
from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.kinds.fit import fit_model
from jdmbayes.models.spec import load_model_spec, load_prior_set
from tests.conftest import BUNDLED, family_variant

SHORT = ["--chains", "2", "--draws", "300", "--tune", "300", "--jobs", "1",
         "--allow-failed-diagnostics", "--seed", "3"]


def test_compare_of_too_few_draws_writes_the_fits_and_says_why_it_did_not_compare(
        tmp_path, capsys):
    # 3 x 7 draws are too few for PSIS: compare ended with a traceback after sampling
    # (ArviZ's 'n_draws_tail must be at least 5') and nothing was written
    out = tmp_path / "run"
    code = main(["compare", "--model", "gc_discontinuation", "--model",
                 family_variant(tmp_path, "gc_discontinuation", "lognormal"),
                 "--chains", "3", "--draws", "7", "--tune", "20", "--jobs", "1",
                 "--retry-budget", "0", "--out", str(out)])
    assert code == 3
    assert (out / "summary.csv").is_file() and not (out / "compare.csv").exists()
    said = capsys.readouterr().out
    assert ("gc_discontinuation: LOO not computed: too few draws for Pareto smoothing (at "
            "least 25 in all): the models are not compared") in said


def test_compare_ranks_two_families_and_writes_its_files(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["compare", "--model", "rash_milestones", "--model",
                 family_variant(tmp_path, "rash_milestones", "lognormal"),
                 *SHORT, "--out", str(out)])
    assert code in (0, 3)
    table = pd.read_csv(out / "compare.csv")
    assert set(table["model"]) == {"rash_milestones", "rash_milestones_lognormal"}
    assert table["elpd_diff"].iloc[0] == 0 and table["elpd_diff"].iloc[1] <= 0
    assert table["weight"].sum() == pytest.approx(1.0)
    text = (out / "compare.md").read_text()
    assert "the difference in ELPD was" in text
    assert "Model comparison" in (out / "report.html").read_text()
    assert "the difference in ELPD was" in capsys.readouterr().out


def test_compare_refuses_other_outcomes_before_sampling(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["compare", "--model", "rash_milestones", "--model", "gc_discontinuation",
                 *SHORT, "--out", str(out)]) == 2
    assert not out.exists()
    assert "predict different outcomes" in capsys.readouterr().err


def bundled_rash_fits(forms, settings) -> dict:
    """``rash_milestones`` on the bundled series with each frailty form: form -> result."""
    series = load_series(str(BUNDLED))
    spec = load_model_spec("rash_milestones")
    prior_set = load_prior_set("default", spec)
    return {form: fit_model(series, dataclasses.replace(spec, frailty=form), prior_set,
                            settings, 0.95, "eti") for form in forms}


def assert_same_means(a_fit, b_fit, names) -> None:
    """Posterior means within 4 combined Monte Carlo standard errors, parameter by
    parameter."""
    a, b = (az.summary(r.idata, var_names=names, kind="all", round_to="none")
            for r in (a_fit, b_fit))
    bound = 4 * np.sqrt(a["mcse_mean"] ** 2 + b["mcse_mean"] ** 2)
    assert ((a["mean"] - b["mean"]).abs() <= bound).all(), pd.concat(
        [a["mean"], b["mean"], bound], axis=1)


@pytest.mark.slow
def test_integrated_and_conditional_frailty_give_the_same_posterior():
    """Was an expected failure until the quadrature's stopped gradient really stopped (PyMC's
    pre-gradient rewrites removed ``disconnected_grad``); it passed in the clean-clone CI
    run of 08d9d8c."""
    fits = bundled_rash_fits(("integrated", "centred"),
                             SamplerSettings(chains=4, draws=1000, tune=1000, seed=11))
    assert_same_means(fits["integrated"], fits["centred"],
                      ["intercept", "dispersion", "sigma_patient", "beta_group"])
    # the integrated form's patient-level LOO (marginal over the frailty) is trustworthy
    assert fits["integrated"].diagnostics["n_pareto_k_above_0_7"] == 0


@pytest.mark.slow
def test_hierarchically_centred_and_centred_frailty_give_the_same_posterior():
    """The same model in two coordinates (a unit-Jacobian shear: tests/unit/
    test_parameterisations.py), fitted through the whole milestone kind (notes, marginal
    LOO, g-computation) on the bundled series: the same posterior within Monte Carlo
    error."""
    fits = bundled_rash_fits(("hierarchically_centred", "centred"),
                             SamplerSettings(chains=4, draws=500, tune=500, seed=7))
    assert_same_means(fits["hierarchically_centred"], fits["centred"],
                      ["intercept", "dispersion", "sigma_patient", "beta_group", "frailty"])
    assert "hierarchically centred" in " ".join(fits["hierarchically_centred"].notes)
    # patient-level LOO integrates the sampled frailty out in both coordinates alike
    assert fits["hierarchically_centred"].diagnostics["n_pareto_k_above_0_7"] == \
        fits["centred"].diagnostics["n_pareto_k_above_0_7"] == 0
