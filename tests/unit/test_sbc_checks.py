"""The calibration checks themselves (no sampling): Holm against statsmodels, the uniformity
verdict on ranks with known distributions, and the design simulator against closed forms."""

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from jdmbayes.data.validate import load_series
from jdmbayes.estimands.simulate import simulate_milestones, visit_schedule
from jdmbayes.inference.calibration import holm, uniformity
from jdmbayes.models import families
from jdmbayes.models.indexing import EXACT, INTERVAL, NONE, RIGHT, index_milestones
from jdmbayes.models.spec import load_model_spec
from tests.conftest import BUNDLED


def test_holm_matches_statsmodels():
    p = np.random.default_rng(3).uniform(0, 0.2, 40)
    assert np.allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)


def _ranks(draw, replicates=200, parameters=10, thin_to=99, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"model": "m", "parameter": f"p{j}", "replicate": r, "rank": draw(rng, thin_to),
             "ess_bulk": 500.0, "rhat": 1.0, "divergences": 0, "sample_s": 1.0}
            for j in range(parameters) for r in range(replicates)]
    return pd.DataFrame(rows)


def test_uniform_ranks_pass_and_biased_ranks_fail():
    uniform = uniformity(_ranks(lambda rng, L: rng.integers(0, L + 1)), 99, 20, 0.05)
    assert uniform["passes"].all()
    assert (uniform["p_holm"] > 0.05).all() and uniform["inside_band"].all()

    # a posterior too narrow by 30%: the truth falls in the tails too often (U shape)
    def overconfident(rng, L):
        draws = rng.normal(0, 0.7, L)
        return int((draws < rng.normal()).sum())

    narrow = uniformity(_ranks(overconfident), 99, 20, 0.05)
    assert not narrow["passes"].any()
    assert (narrow["p_holm"] < 0.05).all() and not narrow["inside_band"].any()

    # a posterior shifted by half its SD: fails on its ECDF
    shifted = uniformity(_ranks(lambda rng, L: int((rng.normal(0.5, 1, L) < rng.normal()
                                                     ).sum())), 99, 20, 0.05)
    assert not shifted["inside_band"].any()


def test_simulated_milestones_follow_the_family_and_the_design():
    """Right-censoring fractions equal the closed-form survival at each patient's follow-up;
    resolution is seen between visits, the other milestones exactly."""
    series = load_series(BUNDLED)
    spec = load_model_spec("rash_milestones")
    data = index_milestones(series, spec)
    visits = visit_schedule(series, data.subject_ids, data.followup)
    n, k_count = data.kind.shape
    truth = {"intercept": np.array([0.5, 1.2, 2.6]), "dispersion": np.array([0.8, 0.6, 0.9]),
             "beta_group": np.array([0.3, -0.2]),
             "cell_deviation": np.zeros(len(data.design.cells)), "frailty": np.zeros(n)}
    rng = np.random.default_rng(11)
    reps = 4000
    right_first = np.zeros(n)
    for _ in range(reps):
        sim = simulate_milestones(data, visits, "weibull", truth, rng)
        right_first += sim.kind[:, 0] == RIGHT
        assert set(np.unique(sim.kind[:, :2])) <= {EXACT, RIGHT, NONE}
        assert set(np.unique(sim.kind[:, 2])) <= {INTERVAL, RIGHT, NONE}
        seen = sim.kind[:, 2] == INTERVAL
        for i in np.flatnonzero(seen):
            assert sim.lo[i, 2] in visits[i] and sim.hi[i, 2] in visits[i]
            assert sim.lo[i, 2] < sim.hi[i, 2] <= data.followup[i]
    eta = (data.design.cell_effects[data.design.patient_cell] @ truth["beta_group"]
           + truth["intercept"][0])
    expected = np.exp(families.np_log_survival("weibull", data.followup, eta,
                                               truth["dispersion"][0]))
    se = np.sqrt(expected * (1 - expected) / reps) + 1e-9
    assert np.all(np.abs(right_first / reps - expected) < 4.5 * se)


@pytest.mark.parametrize("model", ["cmas", "ldh"])
def test_simulated_values_keep_the_design(model):
    from jdmbayes.estimands.simulate import simulate_longitudinal
    from jdmbayes.models.indexing import index_longitudinal

    spec = load_model_spec(model)
    data = index_longitudinal(load_series(BUNDLED), spec)
    n = data.n_patients
    truth = {"baseline": np.full(n, 0.5 if model == "cmas" else 5.7),
             "patient_change": np.full(n, 1.0 if model == "cmas" else -0.3),
             "tau_weeks": 4.0, "noise": 30.0 if model == "cmas" else 0.2}
    sims = np.array([simulate_longitudinal(data, spec, truth, np.random.default_rng(s)).value
                     for s in range(3000)])
    assert sims.shape == (3000, len(data.value))
    mu = 0.5 + 1.0 * (1 - np.exp(-data.week / 4.0)) if model == "cmas" else \
        5.7 - 0.3 * (1 - np.exp(-data.week / 4.0))
    if model == "cmas":
        assert np.all(sims == np.round(sims)) and sims.min() >= 0 and sims.max() <= 52
        expected = 52 / (1 + np.exp(-mu))
    else:
        expected = np.exp(mu + 0.2**2 / 2)
    assert np.allclose(sims.mean(axis=0), expected, rtol=0.03)


def test_sbc_command_refuses_bad_options_and_foreign_replicates(tmp_path, capsys):
    from jdmbayes.cli import main

    out = tmp_path / "sbc"
    assert main(["sbc", "--replicates", "5", "--out", str(out)]) == 2
    assert "--replicates must be at least 10" in capsys.readouterr().err
    work = tmp_path / ".sbc.chunks"
    work.mkdir()
    (work / "settings.json").write_text('{"settings": {"replicates": 999}}')
    assert main(["sbc", "--model", "gc_discontinuation", "--replicates", "10",
                 "--out", str(out)]) == 2
    assert "holds replicates of another configuration" in capsys.readouterr().err
    assert not out.exists() and list(work.iterdir()) == [work / "settings.json"]
