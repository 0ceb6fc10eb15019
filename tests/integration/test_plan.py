"""A plan of the bundled two-arm design from a short fit: the files, the fast analysis
against MCMC on the same trials, reproducibility and resuming."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import jdmbayes
from jdmbayes.cli import main
from jdmbayes.models.spec import load_prior_set
from jdmbayes.planning.analysis import analysis_spec
from jdmbayes.planning.assurance import Chunk, simulate_and_analyse
from jdmbayes.planning.design import load_design
from jdmbayes.planning.design_prior import run_design_prior
from jdmbayes.planning.run import run_plan

# The run folders below are short fits (2 x 300 draws) that fail the diagnostic gates,
# so every plan of them is asked with allow_failed_diagnostics, as a user
# would have to ask, and its sentences say so.


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "fit"
    jdmbayes.fit("rash_milestones", seed=5, draws=300, tune=300, chains=2).write(folder)
    return folder


def test_plan_writes_its_files_and_sentences(run, tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "two_arm_resolution", "--from", str(run), "--out", str(out),
                 "--trials", "20", "--jobs", "1"]) == 2
    assert "failed its diagnostic gates" in capsys.readouterr().err and not out.exists()
    code = main(["plan", "two_arm_resolution", "--from", str(run), "--out", str(out),
                 "--trials", "20", "--jobs", "1", "--allow-failed-diagnostics"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "The fit of model rash_milestones that gives the design prior failed its " \
           "diagnostic gates" in (out / "plan.md").read_text()
    assert "With 30 patients per arm, the probability that the trial shows a shorter time to " \
           "rash resolution with ruxolitinib, as posterior P(time ratio < 1) > 0.95, is" in printed
    assert "reconstructed" in printed
    for name in ("plan.csv", "operating_characteristics.csv", "trials.csv", "plan.md",
                 "grant.md", "plan.png", "report.html", "manifest.json"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "plan.csv")
    assert list(table.columns[:4]) == ["n_per_arm", "assurance", "assurance_mcse", "type1_error"]
    assert table["n_per_arm"].tolist() == [10, 20, 30, 40, 60]
    assert (table["trials"] == 20).all()
    trials = pd.read_csv(out / "trials.csv")
    assert len(trials) == 20 * 5 * 5     # sizes x (design prior, null, 3 fixed effects)
    # success is the rule applied to each trial's posterior probability
    assert (trials["success"] == (trials["probability"] > 0.95)).all()
    # the MCSE is the binomial one
    row = table.iloc[0]
    assert row["assurance_mcse"] == pytest.approx(
        np.sqrt(row["assurance"] * (1 - row["assurance"]) / 20))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["analysis"]["method"] == "fast"
    assert manifest["analysis"]["source"] == "validation/plan-agreement/two_arm_resolution/" \
                                             "check.json"
    assert manifest["design_prior_source"]["model"] == "rash_milestones"
    assert manifest["design_prior_source"]["draws"] == 600
    assert manifest["interval"] == {"kind": "eti", "prob": 0.95}
    assert "RECONSTRUCTED" in (out / "report.html").read_text()
    assert not (tmp_path / ".plan.plan-work").exists()
    # nothing is overwritten without being asked
    assert main(["plan", "two_arm_resolution", "--from", str(run), "--out", str(out),
                 "--trials", "20", "--jobs", "1", "--allow-failed-diagnostics"]) == 2


def test_fast_analysis_agrees_with_mcmc_on_the_same_trials(run):
    # Laplace + PSIS against NUTS (4 x 1000) on 12 trials: the posterior P(time ratio < 1)
    # within 0.03 (Monte Carlo error of the two is about 0.01), the intervals within 10%
    design = load_design("two_arm_resolution")
    prior = run_design_prior(design, run, allow_failed=True)
    prior_set = load_prior_set("default", analysis_spec(design))
    both = simulate_and_analyse(design, prior, prior_set, Chunk(0, 20, 500, 12), 11, "both")
    assert both["fast_usable"].all()
    assert np.abs(both["probability"] - both["probability_mcmc"]).max() < 0.03
    mcmc = simulate_and_analyse(design, prior, prior_set, Chunk(0, 20, 500, 12), 11, "mcmc")
    assert np.allclose(mcmc["probability"], both["probability_mcmc"])
    assert np.allclose(both["lower"], mcmc["lower"], rtol=0.1)
    assert np.allclose(both["upper"], mcmc["upper"], rtol=0.1)


def test_same_seed_same_plan_and_saved_chunks_are_reused(run, tmp_path):
    design = load_design("two_arm_resolution")
    prior = run_design_prior(design, run, allow_failed=True)
    prior_set = load_prior_set("default", analysis_spec(design))
    first = run_plan(design, prior, prior_set, tmp_path / "a", 10, 3, method="fast")
    again = run_plan(design, prior, prior_set, tmp_path / "b", 10, 3, method="fast")
    pd.testing.assert_frame_equal(first.table, again.table)
    # an interrupted plan resumes from its saved chunks: a chunk on disk is used as it is
    work = tmp_path / ".a.plan-work"
    saved = pd.read_csv(work / "s0_n10_t0.csv")
    saved["success"] = True
    saved.to_csv(work / "s0_n10_t0.csv", index=False)
    resumed = run_plan(design, prior, prior_set, tmp_path / "a", 10, 3, method="fast")
    assert resumed.table.loc[0, "assurance"] == 1.0
    assert resumed.table.loc[1:, "assurance"].tolist() == first.table.loc[1:, "assurance"].tolist()
    # another seed is another plan: the saved chunks are discarded
    other = run_plan(design, prior, prior_set, tmp_path / "a", 10, 4, method="fast")
    assert other.table.loc[0, "assurance"] < 1.0


@pytest.fixture(scope="module")
def cmas_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("run") / "fit"
    jdmbayes.fit("cmas", seed=5, draws=300, tune=300, chains=2).write(folder)
    return folder


def test_single_arm_cmas_plan_and_its_fast_analysis(cmas_run, tmp_path):
    from jdmbayes.planning.assurance import analysis_prior_set
    from jdmbayes.planning.design_prior import design_prior_from_run

    design = load_design("single_arm_cmas")
    prior = design_prior_from_run(design, cmas_run, allow_failed=True)
    prior_set = analysis_prior_set(design)
    # fast (patients integrated out, Laplace + PSIS near the decision) against NUTS on the
    # same 6 trials: the posterior P(mean change > 5) within 0.05 (both carry Monte Carlo
    # error of about 0.01-0.02 near the threshold), the interval ends within 1.5 points
    both = simulate_and_analyse(design, prior, prior_set, Chunk(0, 15, 700, 6), 13, "both")
    assert np.abs(both["probability"] - both["probability_mcmc"]).max() < 0.05
    mcmc = simulate_and_analyse(design, prior, prior_set, Chunk(0, 15, 700, 6), 13, "mcmc")
    assert np.allclose(both["lower"], mcmc["lower"], atol=1.5)
    assert np.allclose(both["upper"], mcmc["upper"], atol=1.5)
    # the plan itself, with the committed agreement check
    result = jdmbayes.plan("single_arm_cmas", from_run=cmas_run, trials=10, seed=2, jobs=1,
                           out=tmp_path / "plan", allow_failed_diagnostics=True)
    assert result.agreement["method"] == "fast"
    table = pd.read_csv(tmp_path / "plan" / "plan.csv")
    assert table["n_per_arm"].tolist() == [10, 15, 20, 30, 40]
    assert {"success_at_effect_10", "type1_error"} <= set(table.columns)
    text = (tmp_path / "plan" / "plan.md").read_text()
    assert "a mean change in CMAS by week 24 with ruxolitinib above 5 points" in text


def test_single_arm_probability_plan(run, tmp_path):
    # P(resolution by week 24) in one arm: fast against MCMC on the same 8 trials (P within
    # 0.03), then the plan with the committed agreement check
    from jdmbayes.planning.assurance import analysis_prior_set
    from jdmbayes.planning.design_prior import design_prior_from_run

    design = load_design("single_arm_resolution")
    prior = design_prior_from_run(design, run, allow_failed=True)
    both = simulate_and_analyse(design, prior, analysis_prior_set(design),
                                Chunk(0, 30, 800, 8), 17, "both")
    assert np.abs(both["probability"] - both["probability_mcmc"]).max() < 0.03
    assert ((both["lower"] > 0) & (both["upper"] < 1)).all()
    result = jdmbayes.plan("single_arm_resolution", from_run=run, trials=10, seed=3, jobs=1,
                           out=tmp_path / "plan", allow_failed_diagnostics=True)
    assert result.agreement["method"] == "fast"
    text = (tmp_path / "plan" / "grant.md").read_text()
    assert "P(probability of the event > 0.4) > 0.9" in text
