"""Model comparison against its closed form: with (nearly) the same log-likelihood in every
draw, PSIS-LOO's ELPD is the sum of the patients' log-likelihoods, the difference is the sum
of their differences and its SE is sqrt(n) times their SD; specs of other outcomes or other
patients are refused; the sentence says 'equally well' only within two SEs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from jdmbayes.errors import InputError
from jdmbayes.inference.compare import compare_models
from jdmbayes.inference.fitted import ModelResult
from jdmbayes.models.spec import load_model_spec
from jdmbayes.results.comparison import comparison_sentences

N, CHAINS, DRAWS = 30, 2, 400


def result(name, pointwise, spec="rash_milestones", patients=None, seed=0):
    rng = np.random.default_rng(seed)
    values = pointwise[None, None, :] + 1e-4 * rng.standard_normal((CHAINS, DRAWS, N))
    ids = patients if patients is not None else [f"P{i}" for i in range(N)]
    tree = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"a": (("chain", "draw"), rng.standard_normal((CHAINS,
                                                                             DRAWS)))}),
        "log_likelihood": xr.Dataset({"milestones": (("chain", "draw", "patient"), values)}),
        "constant_data": xr.Dataset({"subject_id": ("patient", np.array(ids))})})
    diagnostics = {"n_pareto_k_above_0_7": 0, "loo_trustworthy": True}
    return ModelResult(name, load_model_spec(spec), None, tree, [], diagnostics)


def test_elpd_difference_and_its_se_match_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(-2.0, 0.5, N)
    b = a - rng.normal(0.3, 0.2, N)            # B worse by 0.3 per patient on average
    table = compare_models([result("B", b, seed=2), result("A", a, seed=3)])
    assert list(table["model"]) == ["A", "B"] and list(table["rank"]) == [0, 1]
    assert table["elpd_loo"].iloc[0] == pytest.approx(a.sum(), abs=1e-3)
    assert table["elpd_loo"].iloc[1] == pytest.approx(b.sum(), abs=1e-3)
    diff = b - a
    assert table["elpd_diff"].iloc[1] == pytest.approx(diff.sum(), abs=1e-3)
    assert table["se_diff"].iloc[1] == pytest.approx(np.sqrt(N) * diff.std(ddof=1), rel=2e-2)
    assert table["se"].iloc[0] == pytest.approx(np.sqrt(N) * a.std(ddof=1), rel=2e-2)
    assert table["weight"].sum() == pytest.approx(1.0)
    sentence = comparison_sentences(table)[0]
    assert sentence.startswith("The A model predicted better than B; the difference in ELPD")


def test_within_two_standard_errors_is_equally_well():
    rng = np.random.default_rng(4)
    a = rng.normal(-2.0, 0.5, N)
    b = a + rng.normal(0.0, 0.3, N)
    table = compare_models([result("A", a, seed=5), result("B", b, seed=6)])
    assert abs(table["elpd_diff"].iloc[1]) < 2 * table["se_diff"].iloc[1]
    assert "predicted equally well; the difference in ELPD was" in comparison_sentences(
        table)[0]


def test_other_outcomes_or_other_patients_are_refused():
    a = np.full(N, -1.0)
    with pytest.raises(InputError, match="predict different outcomes"):
        compare_models([result("A", a), result("B", a, spec="gc_discontinuation")])
    with pytest.raises(InputError, match="fitted to different patients"):
        compare_models([result("A", a), result("B", a, patients=[f"Q{i}" for i in range(N)])])


def test_the_table_keeps_every_column():
    a = np.full(N, -1.0) + np.linspace(0, 0.1, N)
    table = compare_models([result("A", a), result("B", a - 0.01)])
    assert isinstance(table, pd.DataFrame)
    assert {"model", "elpd_loo", "se", "elpd_diff", "se_diff", "weight",
            "n_pareto_k_above_0_7"} <= set(table.columns)
