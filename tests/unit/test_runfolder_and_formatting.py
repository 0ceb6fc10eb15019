from __future__ import annotations

import pytest

from jdmbayes.errors import InputError
from jdmbayes.formatting import decimals_for, interval_label
from jdmbayes.runfolder import RunFolder
from jdmbayes.summarise import credible_interval


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
