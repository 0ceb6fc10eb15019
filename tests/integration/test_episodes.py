"""Recurrent episodes on the worked example (docs/example-flares: 60 simulated patients,
203 episodes, known truth): the fit recovers every true value, one episode per patient
agrees with lifelines' Weibull AFT fit of the same gaps (starts and censoring included), the
run folder says what was modelled, and a series the episode model cannot read is refused by
``fit`` and ``validate --model`` alike, before sampling."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import jdmbayes
from tests.conftest import ROOT
from tests.unit.test_spec_against_series import refused

EXAMPLE = ROOT / "docs" / "example-flares"
SPEC = EXAMPLE / "flares.toml"
# make_series.py: the values the series was simulated with
TRUTH = {("intercept", None): 3.0, ("beta_group", "arm[B]"): 0.5,
         ("beta_covariate", "sex[M]"): -0.3, ("beta_episode", "episode 2"): -0.35,
         ("beta_episode", "episode 3+"): -0.35, ("sigma_patient", None): 0.5,
         ("dispersion", None): 0.6}


@pytest.fixture(scope="module")
def fitted():
    return jdmbayes.fit(str(SPEC), data=EXAMPLE, seed=7, draws=1000, tune=1000, chains=2,
                        ci_prob=0.95, ci_kind="eti")


def test_recovers_the_true_values_of_the_simulated_flares(fitted):
    summary = fitted.summary()
    result = fitted["flares"]
    # short chains (2 x 1000): mixed enough for the interval check (R-hat below 1.05, no
    # divergence); the gates at the default settings are what the worked example reports
    assert result.diagnostics["r_hat_max"] < 1.05 and result.diagnostics["divergences"] == 0
    for (quantity, group), truth in TRUTH.items():
        row = summary[(summary["quantity"] == quantity)
                      & (summary["group"].fillna("") == (group or ""))]
        assert len(row) == 1, (quantity, group)
        low, high = float(row["ci_low"].iloc[0]), float(row["ci_high"].iloc[0])
        assert low < truth < high, (quantity, group, low, high, truth)
    # the episode time ratios are exp(beta_episode), draw by draw
    ratio = summary[(summary["quantity"] == "time_ratio")
                    & (summary["group"] == "episode 2/episode 1")]
    beta = summary[(summary["quantity"] == "beta_episode") & (summary["group"] == "episode 2")]
    # (medians of an even number of draws average two: equal to 1e-6, not bit for bit)
    assert float(ratio["median"].iloc[0]) == pytest.approx(
        np.exp(float(beta["median"].iloc[0])), rel=1e-6)


def test_run_folder_says_what_was_modelled(fitted, tmp_path):
    out = tmp_path / "run"
    # short chains may miss a gate: statements are then written marked, as the CLI's
    # --allow-failed-diagnostics writes them
    fitted.write(out, allow_failed_diagnostics=True)
    notes = (out / "summary.md").read_text()
    assert "60 patients, 203 episodes of 'flare' (1 to 9 per patient)" in notes
    assert "Times are gaps from each episode's start" in notes
    grant = (out / "grant.md").read_text()
    assert "episode 2 relative to episode 1" in grant and "B relative to A" in grant
    manifest = json.loads((out / "manifest.json").read_text())
    assert json.dumps(manifest).count("203") >= 1
    assert pd.read_csv(out / "excluded.csv").empty
    check = pd.read_csv(out / "flares" / "ppc_counts.csv")
    # observed events inside the posterior predictive band of the same windows
    assert (check["predicted_low"] <= check["observed"]).all()
    assert (check["observed"] <= check["predicted_high"]).all()


def test_first_episodes_agree_with_lifelines(tmp_path):
    """One episode per patient (the first): no frailty is identified, so the model is a
    Weibull AFT of the gaps; lifelines' maximum likelihood fit of the same rows is the
    reference (posterior medians within 0.5 standard errors: weakly informative priors)."""
    from lifelines import WeibullAFTFitter

    folder = tmp_path / "first"
    folder.mkdir()
    (folder / "subjects.csv").write_text((EXAMPLE / "subjects.csv").read_text())
    events = pd.read_csv(EXAMPLE / "events.csv")
    first = events[events["episode"] == 1]
    first.to_csv(folder / "events.csv", index=False)
    spec = tmp_path / "first.toml"
    spec.write_text(SPEC.read_text().replace('name = "flares"', 'name = "first"'))
    fit = jdmbayes.fit(str(spec), data=folder, seed=3, draws=1000, tune=1000, chains=2,
                       ci_prob=0.95, ci_kind="eti")
    summary = fit.summary()
    assert "sigma_patient" not in set(summary["quantity"])
    subjects = pd.read_csv(EXAMPLE / "subjects.csv")
    frame = first.merge(subjects, on="subject_id")
    frame = pd.DataFrame({"T": frame["time_wk"] - frame["start_wk"], "E": 1 - frame["censored"],
                          "arm_b": (frame["arm"] == "B").astype(float),
                          "male": (frame["sex"] == "M").astype(float)})
    reference = WeibullAFTFitter().fit(frame, "T", "E")
    mle, se = reference.params_["lambda_"], reference.standard_errors_["lambda_"]

    def median(quantity, group=None):
        row = summary[(summary["quantity"] == quantity)
                      & (summary["group"].fillna("") == (group or ""))]
        return float(row["median"].iloc[0])

    assert abs(median("beta_group", "arm[B]") - mle["arm_b"]) < 0.5 * se["arm_b"]
    assert abs(median("beta_covariate", "sex[M]") - mle["male"]) < 0.5 * se["male"]
    assert abs(median("intercept") - mle["Intercept"]) < 0.5 * se["Intercept"]
    rho = reference.params_["rho_"]["Intercept"]         # Weibull shape = 1 / dispersion
    rho_se = reference.standard_errors_["rho_"]["Intercept"]
    assert abs(np.log(1 / median("dispersion")) - rho) < 0.5 * rho_se


def test_unnumbered_repeated_rows_refused_by_fit_and_validate(tmp_path, capsys):
    folder = tmp_path / "series"
    folder.mkdir()
    (folder / "subjects.csv").write_text((EXAMPLE / "subjects.csv").read_text())
    events = pd.read_csv(EXAMPLE / "events.csv", dtype=str, keep_default_na=False)
    several = events["subject_id"].value_counts().index[0]      # a patient with episodes
    events.loc[events["subject_id"] == several, "episode"] = ""
    events.loc[events["subject_id"] == several, "start_wk"] = ""
    events.to_csv(folder / "events.csv", index=False)
    err = refused(capsys, tmp_path, folder, str(SPEC))
    assert "[duplicate_event]" in err and "number repeated episodes" in err
