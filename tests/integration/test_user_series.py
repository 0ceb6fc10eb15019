"""A user's own series, not JDM (docs/example-series: days, one event, a text and a numeric
covariate, one grouping column): it fits with only the columns its spec names, covariate
effects come out on the user's scale and agree with lifelines' Weibull AFT fit of the same
data, and the grant text describes this series, not the letter's."""

from __future__ import annotations

import json

import numpy as np
import pytest

import jdmbayes
from tests.conftest import ROOT

EXAMPLE = ROOT / "docs" / "example-series"


@pytest.fixture(scope="module")
def fitted():
    return jdmbayes.fit(str(EXAMPLE / "readmission.toml"), data=EXAMPLE, seed=5, draws=1000,
                        tune=1000, chains=2, ci_prob=0.95, ci_kind="eti")


def rows(summary, quantity):
    return summary[summary["quantity"] == quantity].set_index("group")


def test_covariate_effects_on_the_users_scale_match_lifelines(fitted):
    import pandas as pd
    from lifelines import WeibullAFTFitter

    summary = fitted.summary()
    result = fitted["readmission"]
    info = result.covariates
    assert set(info) == {"sex[M]", "age"} and info["sex[M]"]["reference"] == "F"
    subjects = pd.read_csv(EXAMPLE / "subjects.csv")
    events = pd.read_csv(EXAMPLE / "events.csv")
    assert info["age"]["centre"] == pytest.approx(subjects["age"].mean())
    assert info["age"]["sd"] == pytest.approx(subjects["age"].std(ddof=0))
    # per unit = per SD ** (1 / SD), draw by draw, so the medians obey it exactly
    label = f"age (centre {info['age']['centre']:.6g}, SD {info['age']['sd']:.6g})"
    per_unit = rows(summary, "time_ratio_per_unit").loc[label, "median"]
    per_sd = rows(summary, "time_ratio_per_sd").loc[label, "median"]
    assert per_unit == pytest.approx(per_sd ** (1 / info["age"]["sd"]), rel=1e-9)
    # lifelines: maximum likelihood Weibull AFT of the same rows, in weeks
    frame = subjects.merge(events, on="subject_id")
    frame = pd.DataFrame({"T": frame["time_d"] / 7, "E": 1 - frame["censored"],
                          "male": (frame["sex"] == "M").astype(float),
                          "ward_b": (frame["ward"] == "B").astype(float),
                          "age": frame["age"].astype(float)})
    mle = WeibullAFTFitter().fit(frame, "T", "E").params_["lambda_"]
    se = WeibullAFTFitter().fit(frame, "T", "E").standard_errors_["lambda_"]
    sex = rows(summary, "time_ratio").loc["sex=M/sex=F"]
    ward = rows(summary, "time_ratio").loc["B/A"]
    # weakly informative priors, 40 patients: posterior medians within 1 standard error of
    # the MLE on the log scale (ward is partially pooled, so shrunk a little towards 1)
    assert abs(np.log(sex["median"]) - mle["male"]) < se["male"]
    assert abs(np.log(per_unit) - mle["age"]) < se["age"]
    assert abs(np.log(ward["median"]) - mle["ward_b"]) < se["ward_b"]
    # one grouping column: its main effect only, no cell deviations
    assert "sigma_cell" not in result.idata.posterior
    assert "cell_deviation" not in result.idata.posterior


def test_run_folder_says_what_was_used_and_describes_this_series(fitted, tmp_path):
    folder = fitted.write(tmp_path / "run")
    grant = (folder / "grant.md").read_text()
    assert "JAK inhibitor" not in grant and "uncontrolled case series" not in grant
    assert "Simulated adults followed after discharge" in grant
    assert "Times were recorded in days and are reported in weeks." in grant
    assert "groups compared by ward, adjusted for sex[M], age" in grant
    assert "Rows used: 40 of 40 subjects rows; 40 of 40 events rows; none excluded." in grant
    assert "Per unit of age (centre" in grant and "sex=M relative to sex=F" in grant
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["data"]["time_unit"] == "days"
    assert manifest["models"]["readmission"]["covariates"]["age"]["kind"] == "numeric"
    assert (folder / "excluded.csv").read_text().splitlines() == [
        "model,table,row,subject_id,reason"]
