"""Draws that barely move (a fit far from its gates, such as a few tuning steps) leave every
patient's largest log-likelihoods equal, and fewer than 25 draws leave too few for a Pareto
tail; ArviZ's Pareto smoothing raises on both: power-scaling sensitivity and patient-level
LOO are then reported as not computed, with the reason, instead of ending the run with a
traceback after sampling (no sampling here)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr

from jdmbayes.inference import diagnostics
from jdmbayes.inference.draws import from_groups
from jdmbayes.inference.power_scaling import power_scaling_table
from jdmbayes.results.report import gate_rows

CHAINS, DRAWS, PATIENTS = 2, 200, 5
STUCK = "the largest log densities are all equal across the draws (the chains barely moved)"
FEW = "too few draws for Pareto smoothing (at least 25 in all)"


def tree(stuck: bool, draws: int = DRAWS) -> xr.DataTree:
    rng = np.random.default_rng(2)
    y = rng.normal(0.5, 1.0, PATIENTS)
    mu = np.full((CHAINS, draws), 0.3) if stuck else rng.normal(0.5, 0.4, (CHAINS, draws))
    dims = ("chain", "draw")
    loglik = -0.5 * (y[None, None, :] - mu[..., None]) ** 2
    return from_groups({
        "posterior": xr.Dataset({"mu": (dims, mu)}),
        "log_prior": xr.Dataset({"mu": (dims, -0.5 * mu**2)}),
        "log_likelihood": xr.Dataset({"loglik_patient": ((*dims, "patient"), loglik)}),
        "sample_stats": xr.Dataset({"diverging": (dims, np.zeros((CHAINS, draws), bool)),
                                    "energy": (dims, rng.normal(size=(CHAINS, draws)))})})


def quantities(idata) -> dict:
    mu = idata.posterior["mu"].values.reshape(-1)
    return {("y", "mean_change_wk24", "overall"): mu * 2.0}


def test_power_scaling_of_stuck_draws_is_not_computed():
    idata = tree(stuck=True)
    table = power_scaling_table(idata, quantities(idata), "m", ["mu"])
    assert len(table) == 2 and table["prior_sensitivity"].isna().all()
    assert table["likelihood_sensitivity"].isna().all()
    assert (table["diagnosis"] == f"not computed: {STUCK}").all()
    moving = tree(stuck=False)
    table = power_scaling_table(moving, quantities(moving), "m", ["mu"])
    assert np.isfinite(table[["prior_sensitivity", "likelihood_sensitivity"]].values).all()
    assert not table["diagnosis"].str.startswith("not computed").any()


@pytest.mark.parametrize(("stuck", "draws", "reason"), [(True, DRAWS, STUCK),
                                                       (False, 10, FEW)])
def test_loo_of_stuck_or_few_draws_is_not_computed_and_said_so(stuck, draws, reason):
    result = diagnostics.diagnose(tree(stuck, draws), ["mu"], "loglik_patient", "marginal")
    assert result["verdict"] == "fail"
    assert result["loo_trustworthy"] is False
    assert result["loo_warning"] == f"LOO not computed: {reason}"
    assert "elpd_loo" not in result and "pareto_k_max" not in result
    assert [r for r in gate_rows(result) if r["gate"] == "patient-level LOO"] == [
        {"gate": "patient-level LOO", "rule": "reported, not a gate",
         "value": "not computed", "result": f"LOO not computed: {reason}"}]
    moving = diagnostics.diagnose(tree(stuck=False), ["mu"], "loglik_patient", "marginal")
    assert math.isfinite(moving["elpd_loo"]) and "loo_warning" not in moving
