"""Exact leave-one-out refits (issue 12.2): a patient given weight 0 is left out of the
likelihood of the same compiled model, and the refit's prediction of that patient agrees
with PSIS-LOO where PSIS can be trusted; ``compare`` refits every patient above the
threshold and says so in its files.

Known answer: where Pareto k < 0.7, PSIS-LOO estimates the exact leave-one-out value, so the
two agree within Monte Carlo error (measured on the bundled ``gc_discontinuation`` at this
seed: differences 0.043 and 0.078 for the two patients with k < 0.7 and the largest p_loo).
The test can fail: a refit that did not leave the patient out predicts them at the in-sample
value (lpd_i), which exceeds the PSIS value by p_loo_i (0.34 and 0.38 for these two).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import jdmbayes
from jdmbayes.inference import compare as compare_module
from jdmbayes.inference.compare import loo_tree, psis_loo
from jdmbayes.kinds import exact_loo
from jdmbayes.kinds.exact_loo import PatientRefits, RefitProblem
from tests.conftest import family_variant

SEED = 20211028
TOLERANCE = 0.12        # |exact - PSIS| for a patient with k < 0.7 (measured <= 0.078)


def in_sample_lpd(result) -> np.ndarray:
    loglik = result.idata.log_likelihood.to_dataset()
    values = loglik[next(iter(loglik.data_vars))].values
    values = values.reshape(-1, values.shape[-1])
    return logsumexp(values, axis=0) - np.log(values.shape[0])


def test_a_refit_without_a_patient_predicts_them_as_psis_loo_does():
    fit = jdmbayes.fit("gc_discontinuation", seed=SEED, chains=4, draws=1000, tune=1000)
    result = fit.results[0]
    psis = psis_loo(loo_tree(result))
    lpd = in_sample_lpd(result)
    k, elpd = psis.pareto_k.values, psis.elpd_i.values
    trusted = np.flatnonzero(k < 0.7)
    chosen = trusted[np.argsort(-(lpd - elpd)[trusted])][:2]
    refits = PatientRefits(RefitProblem.of(result), fit.series)
    for patient in chosen:
        weight, left_out = refits.sel_observations(patient)
        assert weight.sum() == len(weight) - 1 and weight[patient] == 0
        values = refits.log_likelihood__i(left_out, refits.sample(weight)).values.ravel()
        exact = logsumexp(values) - np.log(values.size)
        assert abs(exact - elpd[patient]) <= TOLERANCE, (patient, exact, elpd[patient])
        # and it did leave the patient out: the in-sample value is far above
        assert lpd[patient] - exact >= 2 * TOLERANCE, (patient, lpd[patient], exact)
        record = refits.refits[-1]
        assert record["patient"] == patient + 1 and record["reused_compiled"]
        assert record["verdict"] == "pass"


def test_compare_refits_every_patient_above_the_threshold(tmp_path, monkeypatch):
    """The threshold lowered to 0.4 so that both models have patients to refit: the table
    counts them, the LOO is then trustworthy, each refit is recorded and written."""
    for module in (compare_module, exact_loo):
        monkeypatch.setattr(module, "K_THRESHOLD", 0.4)
    variant = family_variant(tmp_path, "gc_discontinuation", "lognormal")
    fit = jdmbayes.compare(["gc_discontinuation", variant], seed=SEED,
                           chains=2, draws=500, tune=500)
    above = {r.name: int((psis_loo(loo_tree(r)).pareto_k.values > 0.4).sum())
             for r in fit.results}
    assert all(count > 0 for count in above.values()), above
    table = fit.compare()
    assert fit.compare() is table                      # refitted once per Fit
    for _, row in table.iterrows():
        assert row["n_pareto_k_above_0_7"] == above[row["model"]]
        assert row["n_exact_refits"] == above[row["model"]]
        assert row["loo_trustworthy"]
    records = pd.DataFrame(table.attrs["exact_refits"])
    assert len(records) == sum(above.values())
    assert (records["pareto_k"] > 0.4).all() and np.isfinite(records["elpd_exact"]).all()
    # the exact values replace the PSIS ones in the totals
    for name, group in records.groupby("model"):
        # the patients the command announces before refitting are the ones refitted
        assert sorted(group["patient"]) == exact_loo.patients_to_refit(fit[name])
        psis_total = float(psis_loo(loo_tree(fit[name])).elpd)
        row = table.set_index("model").loc[name]
        assert row["elpd_loo"] == pytest.approx(
            psis_total + (group["elpd_exact"] - group["elpd_psis"]).sum(), abs=1e-9)
    out = fit.write(tmp_path / "run", compare=True, allow_failed_diagnostics=True)
    written = pd.read_csv(out / "loo_refits.csv")
    assert len(written) == len(records)
    manifest = json.loads((out / "manifest.json").read_text())
    assert len(manifest["exact_loo_refits"]) == len(records)
    assert "refitted (exact LOO)" in (out / "compare.md").read_text()
