"""A log-normal measure with the patient effects integrated out gives the posterior of the
sampled forms (within Monte Carlo error) and recovers known values.

Tolerances: posterior means agree within 4 combined Monte Carlo SEs (plus 2% of the posterior
SD for the SEs' own error), posterior SDs within 15%."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

from jdmbayes.data.validate import load_series
from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.kinds.fit import fit_model
from jdmbayes.models.spec import load_model_spec, load_prior_set
from tests.conftest import BUNDLED, ROOT

SPEC = """[model]
name = "marker"
kind = "longitudinal"
measure = "marker"
likelihood = "lognormal"
shape = "linear"
final_week = 104
grouping = ["arm"]
contrasts = [["arm", "active", "placebo"]]
"""


def rows_of(result) -> dict:
    return {(r["quantity"], r["group"]): r for r in result.summary_rows}


def assert_same_posterior(a: dict, b: dict, keys) -> None:
    for key in keys:
        x, y = a[key], b[key]
        allowed = 4 * np.hypot(x["mcse_mean"], y["mcse_mean"]) + 0.02 * max(x["sd"], y["sd"])
        assert abs(x["mean"] - y["mean"]) <= allowed, (key, x["mean"], y["mean"], allowed)
        assert x["sd"] == pytest.approx(y["sd"], rel=0.15), (key, x["sd"], y["sd"])


def assert_same_quantities(sampled, integrated, quantities) -> None:
    """:func:`assert_same_posterior` over every summary row (ten or more) of ``quantities``."""
    a, b = rows_of(sampled), rows_of(integrated)
    keys = [k for k in a if k[0] in quantities]
    assert len(keys) >= 10
    assert_same_posterior(a, b, keys)


def fit_bundled_both_ways(name: str):
    """The bundled model ``name`` fitted as its spec says and with the effects integrated
    out (4 x 1000 draws, seed 11)."""
    series = load_series(BUNDLED)
    spec = load_model_spec(name)
    settings = SamplerSettings(chains=4, draws=1000, tune=1000, seed=11)
    sampled = fit_model(series, spec, load_prior_set("default", spec), settings, 0.95, "eti")
    integrated_spec = dataclasses.replace(spec, patient_effects="integrated")
    integrated = fit_model(series, integrated_spec, load_prior_set("default", spec), settings,
                           0.95, "eti")
    assert integrated.diagnostics["verdict"] == "pass"
    return sampled, integrated


def test_bundled_ldh_integrated_equals_sampled():
    sampled, integrated = fit_bundled_both_ways("ldh")
    assert_same_quantities(sampled, integrated, ("intercept", "sigma_intercept", "change",
                                                 "noise", "beta_group", "tau_weeks",
                                                 "mean_change_wk24", "ratio_mean_wk24"))


def test_bundled_cmas_integrated_by_quadrature_equals_sampled():
    """A bounded score (beta-binomial) with the effects integrated out by adaptive
    Gauss-Hermite quadrature: the posterior of the validated sampled form (measured at 4 x
    1000 draws: every mean within 0.05 posterior SD), each patient's effects drawn
    afterwards, the quadrature's record of them dropped, and marginal LOO on both."""
    sampled, integrated = fit_bundled_both_ways("cmas")
    posterior = integrated.idata.posterior
    assert {"baseline", "patient_change"} <= set(posterior.data_vars)
    assert not {"effect_mode", "effect_chol"} & set(posterior.data_vars)
    # each patient's effects drawn afterwards have the sampled form's posterior means
    # (measured: within 0.042 posterior SD for baselines, 0.023 for changes)
    for name in ("baseline", "patient_change"):
        drawn, sampled_draws = posterior[name], sampled.idata.posterior[name]
        gap = np.abs(drawn.mean(("chain", "draw")) - sampled_draws.mean(("chain", "draw")))
        assert float((gap / sampled_draws.std(("chain", "draw"))).max()) < 0.15, name
    assert_same_quantities(sampled, integrated, ("intercept", "sigma_intercept", "change",
                                                 "noise", "sigma_change", "beta_group",
                                                 "tau_weeks", "mean_change_wk24"))
    # both use each patient's marginal likelihood: the same ELPD within Monte Carlo error
    elpd = [r.diagnostics["elpd_loo"] for r in (sampled, integrated)]
    assert abs(elpd[0] - elpd[1]) < 1.0, elpd


def test_simulated_marker_recovers_truth_and_matches_centred(tmp_path):
    path = ROOT / "docs" / "example-trajectories" / "make_series.py"
    module_spec = importlib.util.spec_from_file_location("make_series", path)
    make_series = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(make_series)
    subjects, measurements = make_series.simulate(80, 7)
    folder = tmp_path / "series"
    folder.mkdir()
    subjects.to_csv(folder / "subjects.csv", index=False)
    measurements.to_csv(folder / "measurements.csv", index=False)
    (tmp_path / "marker.toml").write_text(SPEC)
    spec = load_model_spec(str(tmp_path / "marker.toml"))
    series = load_series(folder)
    settings = SamplerSettings(chains=4, draws=500, tune=500, seed=3)
    integrated = fit_model(series, spec, load_prior_set("default", spec), settings, 0.95, "eti")
    assert integrated.diagnostics["verdict"] == "pass"
    got = rows_of(integrated)
    truth = make_series.TRUTH
    inside = [got[(name, group)]["ci_low"] <= truth[name] <= got[(name, group)]["ci_high"]
              for name, group in (("intercept", ""), ("sigma_intercept", ""), ("change", ""),
                                  ("beta_group", "arm[active]"), ("sigma_change", ""),
                                  ("rho_baseline_change", ""), ("noise", ""))]
    assert sum(inside) >= 6, inside              # 7 x 95% intervals: 6 or more inside
    centred = fit_model(series, dataclasses.replace(spec, patient_effects="centred"),
                        load_prior_set("default", spec), settings, 0.95, "eti")
    # patient-level LOO on each patient's marginal likelihood: exact (integrated form) or by
    # adaptive quadrature over the sampled form's draws; both trustworthy and the same ELPD
    # within Monte Carlo error (with the conditional likelihood 72 of 80 patients had k > 0.7)
    for result in (integrated, centred):
        assert result.diagnostics["n_pareto_k_above_0_7"] == 0
    elpd = [r.diagnostics["elpd_loo"] for r in (integrated, centred)]
    assert abs(elpd[0] - elpd[1]) < 1.0, elpd
    assert_same_posterior(got, rows_of(centred), [
        k for k in got if k[0] in ("intercept", "sigma_intercept", "change", "beta_group",
                                   "sigma_change", "rho_baseline_change", "noise",
                                   "mean_change_wk102", "ratio_mean_wk102")])
