"""Simulation-based calibration, reduced for CI: two models, 40 replicates each, on Dask,
through the command line; and a deliberately wrong simulator that the checks must catch.

The full run (200 replicates of every model) is committed in ``validation/sbc/``.
"""

from dataclasses import replace

import numpy as np
import pandas as pd

from jdmbayes.batch.sbc import build_problem, rank_rows
from jdmbayes.cli import main
from jdmbayes.inference.calibration import SBCSettings, uniformity
from tests.conftest import BUNDLED


def test_reduced_calibration_on_the_real_design(tmp_path):
    out = tmp_path / "sbc"
    code = main(["sbc", "--model", "gc_discontinuation", "--model", "ldh", "--replicates",
                 "40", "--draws", "300", "--tune", "300", "--thin-to", "39", "--chunk", "20",
                 "--jobs", "2", "--out", str(out)])
    table = pd.read_csv(out / "uniformity.csv")
    ranks = pd.read_csv(out / "ranks.csv")
    assert code == 0, table.loc[~table["passes"]].to_string()
    assert table["passes"].all()
    assert table.groupby("model").size().to_dict() == {"gc_discontinuation": 6, "ldh": 11}
    assert (table["replicates"] == 40).all() and (table["df"] == 7).all()
    assert ranks["rank"].between(0, 39).all()
    assert sorted(ranks["replicate"].unique()) == list(range(40))
    report = (out / "README.md").read_text()
    assert "reconstructed" in report and "Holm" in report
    assert (out / "ecdf-ldh.png").stat().st_size > 10_000
    assert not (tmp_path / ".sbc.chunks").exists()      # work files removed when done


def test_a_wrong_simulator_fails_calibration():
    """Data simulated on a time scale e times longer than the drawn intercept says: the
    intercept's ranks pile up at 0 and both checks fail; the other parameters pass."""
    problem = build_problem(str(BUNDLED), "gc_discontinuation")
    settings = SBCSettings(replicates=20, draws=300, tune=300, thin_to=39)

    def stretched(simulated, truth):
        return replace(simulated, hi=simulated.hi * np.e, lo=simulated.lo * np.e)

    ranks = rank_rows(problem, list(range(20)), settings, distort=stretched)
    table = uniformity(ranks, settings.thin_to, settings.bins, settings.alpha).set_index(
        "parameter")
    intercept = table.loc["intercept[gc_discontinuation]"]
    assert not intercept["passes"] and not intercept["inside_band"]
    assert intercept["p_holm"] < 1e-6
    assert ranks.loc[ranks["parameter"] == "intercept[gc_discontinuation]", "rank"].median() < 3
