"""Parameter recovery on series simulated from the milestone model (known parameters).

Each replication simulates 80 patients (three ordered milestones, interval-censored and
right-censored resolution, drug x dose groups, shared frailty) and fits the model. Over all
replications and parameters, the 95% intervals must cover the truth at a rate the binomial
distribution allows (not in its lower 0.5% tail).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import stats

from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.kinds.fit import fit_model
from jdmbayes.models.spec import load_model_spec, load_prior_set
from tests.simulate import simulate_milestone_series

TRUTH = {"intercept": np.array([0.0, 0.4, 2.2]), "dispersion": np.array([0.5, 0.6, 0.8]),
         "beta_drug": -0.3, "beta_dose": 0.25, "sigma_patient": 0.4}


@pytest.mark.slow
def test_true_values_inside_95_intervals_at_the_expected_rate():
    covered, total = 0, 0
    settings = SamplerSettings(chains=2, draws=500, tune=500, seed=11)
    base = load_model_spec("rash_milestones")
    for replication, family in enumerate(("weibull", "weibull", "lognormal", "loglogistic")):
        rng = np.random.default_rng(100 + replication)
        series = simulate_milestone_series(rng, 80, family, TRUTH)
        spec = dataclasses.replace(base, family=family, population=(), frailty="non_centred")
        result = fit_model(series, spec, load_prior_set("default", spec), settings, 0.95, "eti")
        rows = {(r["quantity"], r["outcome"], r["group"]): r for r in result.summary_rows}
        checks = [(("sigma_patient", "", ""), TRUTH["sigma_patient"]),
                  (("beta_group", "", "drug[ruxolitinib]"), TRUTH["beta_drug"]),
                  (("beta_group", "", "dose_start_mg_bid[5mg]"), TRUTH["beta_dose"])]
        for k, outcome in enumerate(spec.outcomes):
            checks += [(("intercept", outcome, ""), TRUTH["intercept"][k]),
                       (("dispersion", outcome, ""), TRUTH["dispersion"][k])]
        for key, true in checks:
            row = rows[key]
            covered += row["ci_low"] <= true <= row["ci_high"]
            total += 1
        assert result.diagnostics["r_hat_max"] < 1.05
    floor = stats.binom.ppf(0.005, total, 0.95)
    assert covered >= floor, f"{covered}/{total} covered; expected at least {floor:.0f}"
