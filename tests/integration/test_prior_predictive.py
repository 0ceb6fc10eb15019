"""Prior predictive: what each prior file says of itself is what its prior implies."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jdmbayes.cli import main
from jdmbayes.data.validate import load_series
from jdmbayes.kinds.prior_predictive import (
    outcome_scale_claims,
    prior_predictive_table,
    simulate_prior_predictive,
)
from jdmbayes.models.spec import PRIORS_DIR, load_model_spec, load_prior_set
from tests.conftest import BUNDLED

MODELS = ["rash_milestones", "gc_discontinuation", "cmas", "cat_bm", "ldh"]


@pytest.mark.parametrize("name", ["default", "vague", "sceptical", "enthusiastic",
                                  "informative"])
def test_prior_file_comments_state_what_the_prior_implies(name):
    series = load_series(BUNDLED)
    simulated = [simulate_prior_predictive(series, load_model_spec(m),
                                           load_prior_set(name, load_model_spec(m)), 1000, 1)
                 for m in MODELS]
    text = (PRIORS_DIR / f"{name}.toml").read_text()
    for line in outcome_scale_claims(prior_predictive_table(simulated)):
        assert f"#   - {line}\n" in text, line


def test_prior_predictive_command_writes_tables_and_plots_without_fitting(tmp_path, capsys,
                                                                         monkeypatch):
    from jdmbayes.results import plots

    drawn = plots.prior_predictive_figure

    def overflowing(pp):
        np.float32(np.float64(1e300))     # NumPy warns (overflow in a cast), as a plot might
        return drawn(pp)

    monkeypatch.setattr(plots, "prior_predictive_figure", overflowing)
    out = tmp_path / "pp"
    code = main(["fit", "--prior-predictive", "--model", "rash_milestones", "--model", "cmas",
                 "--priors", "sceptical", "--draws", "400", "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "manifest.json", "plots",
                                                     "prior_predictive.csv",
                                                     "prior_predictive.md"]
    # PyMC's "Sampling: [...]" lines are kept in log.txt, not shown on the console
    assert "Sampling: [" in (out / "log.txt").read_text()
    assert "Sampling:" not in capsys.readouterr().err
    # ... and so are warnings raised while the files are written
    assert "RuntimeWarning: overflow encountered in cast" in (out / "log.txt").read_text()
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["cmas_prior.png",
                                                                 "rash_milestones_prior.png"]
    table = pd.read_csv(out / "prior_predictive.csv")
    row = table[(table["quantity"] == "time_ratio")
                & (table["group"] == "ruxolitinib/tofacitinib")].iloc[0]
    # sceptical: beta ~ N(0, 0.15) plus a small cell deviation: 90% of time ratios within
    # about exp(+-1.645 * 0.16) = 0.77 .. 1.30
    assert 0.72 < row["q05"] < 0.82 and 1.22 < row["q95"] < 1.38
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["cmas"]["prior_set"] == "sceptical"
    assert "RECONSTRUCTED" in (out / "prior_predictive.md").read_text()
