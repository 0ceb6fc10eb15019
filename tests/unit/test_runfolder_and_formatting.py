from __future__ import annotations

import pytest

from jdmbayes.errors import InputError
from jdmbayes.inference.summarise import credible_interval
from jdmbayes.results.formatting import decimals_for, interval_label
from jdmbayes.results.runfolder import RunFolder


def test_run_folder_is_complete_or_absent(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError):
        with RunFolder(out) as tmp:
            (tmp / "summary.csv").write_text("partial")
            raise RuntimeError("fit failed")
    assert not out.exists() and not list(tmp_path.iterdir())
    with RunFolder(out) as tmp:
        (tmp / "summary.csv").write_text("done")
    assert (out / "summary.csv").read_text() == "done"


def test_existing_folder_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(InputError, match="--overwrite"):
        RunFolder(out).check()
    with RunFolder(out, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]


def test_rounding_follows_monte_carlo_error():
    assert decimals_for(0.0123) == 2
    assert decimals_for(0.3) == 1
    assert decimals_for(4.2) == 0
    assert interval_label(0.9, "hdi") == "90% highest-density credible interval"


def test_interval_kinds_on_a_known_distribution():
    import numpy as np
    from scipy import stats

    draws = stats.expon.rvs(size=400000, random_state=np.random.default_rng(3))
    low, high = credible_interval(draws, 0.9, "eti")
    assert (low, high) == pytest.approx((stats.expon.ppf(0.05), stats.expon.ppf(0.95)), rel=0.02)
    low, high = credible_interval(draws, 0.9, "hdi")   # HDI of an exponential starts at 0
    assert low == pytest.approx(0.0, abs=0.01) and high == pytest.approx(-np.log(0.1), rel=0.02)


def test_decimals_never_exceed_four_significant_digits():
    assert decimals_for(1e-7, 1.0) == 3
    assert decimals_for(1e-7, 16.4) == 2
    assert decimals_for(0.004, 0.37) == 3


def _grant_inputs(verdict):
    import pandas as pd

    from jdmbayes.inference.summarise import COLUMNS

    summary = pd.DataFrame([{"model": "m", "outcome": "rash_resolution",
                             "quantity": "median_time_wk", "group": "overall", "mean": 16.9,
                             "sd": 3.0, "median": 16.43, "ci_low": 10.79, "ci_high": 24.78,
                             "ci_prob": 0.9, "ci_kind": "hdi", "ess_bulk": 900,
                             "ess_tail": 900, "r_hat": 1.0, "mcse_mean": 0.3}],
                           columns=COLUMNS)
    diagnostics = {"m": {"verdict": verdict}}
    manifest = {"ci_prob": 0.9, "ci_kind": "hdi", "seed": 1, "jdmbayes": "0",
                "versions": {"pymc": "5"}, "data": {"reconstructed": True, "tables": {}},
                "sampler": {"sampler": "nutpie", "chains": 4, "draws": 1000},
                "models": {"m": {"spec": {"model": {}}, "prior_set": "default",
                                 "prior_description": "weak", "n_patients": 24}}}
    return summary, diagnostics, manifest


def test_grant_sentence_states_interval_kind_and_level():
    from jdmbayes.results.grant import grant_markdown

    text = grant_markdown(*_grant_inputs("pass"), allow_failed=False)
    assert ("- The estimated median time to complete rash resolution was 16.4 weeks (posterior "
            "median; 90% highest-density credible interval 10.8 to 24.8 weeks).") in text
    assert "24 patients" in text and "uncontrolled" in text and "RECONSTRUCTED" in text


def test_grant_withholds_sentences_when_a_gate_failed():
    from jdmbayes.results.grant import grant_markdown

    refused = grant_markdown(*_grant_inputs("fail"), allow_failed=False)
    assert refused.splitlines()[2].startswith("**A diagnostic gate failed for: m.**")
    assert "16.4" not in refused and "--allow-failed-diagnostics" in refused
    allowed = grant_markdown(*_grant_inputs("fail"), allow_failed=True)
    assert "16.4 weeks" in allowed and "**[diagnostics failed]**" in allowed


def test_a_models_own_tuning_is_said_where_it_differs_from_the_settings():
    """A score whose first attempt tuned for 300 steps and passed: summary.md and the
    report must not say its draws followed the settings' 1000."""
    from jdmbayes.results.formatting import own_tuning

    manifest = {"sampler": {"tune": 1000},
                "models": {"cmas": {"sampler": {"tune": 1000}},
                           "score": {"sampler": {"tune": 300}},
                           "ldh": {"sampler": {"tune": 2000}}}}
    assert own_tuning(manifest) == "; score after 300, ldh after 2000"
    manifest["models"] = {"cmas": {"sampler": {"tune": 1000}}}
    assert own_tuning(manifest) == ""
