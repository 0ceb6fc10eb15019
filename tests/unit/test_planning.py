"""Planning without sampling: the simulation engine against closed forms (O'Hagan & Stevens
2001 assurance, classical power, the rule's type I error), the trial's observation process,
the design-file rules, and the sentences' rounding."""

from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jdmbayes.cli import main
from jdmbayes.errors import InputError
from jdmbayes.models.indexing import INTERVAL, NONE, RIGHT
from jdmbayes.planning.assurance import (
    DESIGN_PRIOR,
    Chunk,
    plan_table,
    scenarios,
    simulate_and_analyse,
)
from jdmbayes.planning.closed_form import normal_assurance, normal_power
from jdmbayes.planning.design import load_design
from jdmbayes.planning.design_prior import normal_design_prior
from jdmbayes.planning.trials import event_times, observe_at_visits
from jdmbayes.results.plan_report import percent, plan_sentences

ROOT = Path(__file__).resolve().parents[2]

NORMAL = """
[design]
description = "two-arm normal endpoint"
endpoint = "normal"
arms = [{{ label = "new" }}, {{ label = "standard" }}]
sd = 2.0
n_per_arm = {sizes}
success = {{ comparison = ">", value = 0.0, probability = 0.95 }}
fixed_effects = [0.0, 1.0]
design_prior = {{ mean = {mean}, sd = {sd} }}
analysis_prior = {{ mean = 0.0, sd = {analysis_sd} }}
robust_weight = {weight}
robust_mean = 0.0
robust_sd = 2.0
"""


def normal_design(tmp_path: Path, mean=1.0, sd=0.5, analysis_sd='"inf"', weight=0.0,
                  sizes=(10, 40)):
    path = tmp_path / "normal.toml"
    path.write_text(NORMAL.format(mean=mean, sd=sd, analysis_sd=analysis_sd, weight=weight,
                                  sizes=list(sizes)))
    return load_design(str(path))


def simulate(design, trials: int, seed: int = 3) -> pd.DataFrame:
    prior = normal_design_prior(design, 200_000, np.random.default_rng(seed))
    frames = [simulate_and_analyse(design, prior, None, Chunk(s, n, 0, trials), seed, "exact")
              for s in range(len(scenarios(design))) for n in design.n_per_arm]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("analysis_sd, weight", [('"inf"', 0.0), ("1.0", 0.0), ('"inf"', 0.3)])
def test_assurance_matches_the_closed_form(tmp_path, analysis_sd, weight):
    # O'Hagan & Stevens (2001): a normal endpoint under a normal design prior, with a flat or
    # a normal analysis prior, and robustified: the simulated assurance is within 3.5 Monte
    # Carlo SEs of the closed form at each size
    design = normal_design(tmp_path, analysis_sd=analysis_sd, weight=weight)
    table = plan_table(design, simulate(design, 4000))
    for row in table.itertuples(index=False):
        expected = normal_assurance(design, row.n_per_arm)
        assert abs(row.assurance - expected) < 3.5 * row.assurance_mcse, (row, expected)
    # and the assurance differs from the power at the prior mean (the prior's spread counts)
    assert abs(normal_assurance(design, 40) - normal_power(design, 40, 1.0)) > 0.05


def test_a_point_mass_design_prior_gives_classical_power(tmp_path):
    # flat analysis prior: the rule is the one-sided z-test at 5%, so the power at delta is
    # Phi(delta / sqrt(2 sd^2 / n) - z_0.95), the textbook formula
    design = normal_design(tmp_path, mean=1.0, sd=0.0)
    for n in design.n_per_arm:
        textbook = stats.norm.cdf(1.0 / math.sqrt(2 * 4.0 / n) - stats.norm.ppf(0.95))
        assert normal_assurance(design, n) == pytest.approx(textbook, abs=1e-12)
        assert normal_power(design, n, 1.0) == pytest.approx(textbook, abs=1e-12)
    table = plan_table(design, simulate(design, 4000))
    for row in table.itertuples(index=False):
        textbook = stats.norm.cdf(1.0 / math.sqrt(2 * 4.0 / row.n_per_arm) - 1.6448536269514722)
        assert abs(row.assurance - textbook) < 3.5 * row.assurance_mcse
        # the fixed effect 1.0 is the same scenario by another route
        assert abs(row.success_at_effect_1 - textbook) < 3.5 * row.success_at_effect_1_mcse


def test_the_null_gives_the_rules_type_one_error(tmp_path):
    # with a flat analysis prior, P(delta > 0 | d) > 0.95 is the one-sided 5% test: type I
    # error exactly 5% at every size
    design = normal_design(tmp_path)
    assert normal_power(design, 10, 0.0) == pytest.approx(0.05, abs=1e-12)
    table = plan_table(design, simulate(design, 4000))
    for row in table.itertuples(index=False):
        assert abs(row.type1_error - 0.05) < 3.5 * row.type1_error_mcse
    # a sceptical analysis prior makes the rule stricter
    strict = normal_design(tmp_path, analysis_sd="0.5")
    assert normal_power(strict, 10, 0.0) < 0.05


def test_trials_do_not_depend_on_how_they_are_chunked(tmp_path):
    design = normal_design(tmp_path)
    prior = normal_design_prior(design, 1000, np.random.default_rng(1))
    whole = simulate_and_analyse(design, prior, None, Chunk(0, 10, 0, 40), 9, "exact")
    parts = pd.concat([simulate_and_analyse(design, prior, None, Chunk(0, 10, f, 10), 9,
                                            "exact") for f in (0, 10, 20, 30)],
                      ignore_index=True)
    pd.testing.assert_frame_equal(whole, parts)


def test_the_null_scenario_is_always_simulated(tmp_path):
    design = normal_design(tmp_path)
    names = [name for name, _ in scenarios(design)]
    assert names[0] == DESIGN_PRIOR and names[1] == "effect = 0"
    assert len(names) == len(set(names))


def test_visits_interval_censor_and_dropout_right_censors():
    design = load_design("two_arm_resolution")
    rng = np.random.default_rng(4)
    times = rng.uniform(0.5, 80, 4000)
    obs = observe_at_visits(design, times, rng)
    kind, lo, hi = obs["obs_kind"], obs["obs_time_lo"], obs["obs_time_hi"]
    seen = kind == INTERVAL
    # every interval holds its true time and runs between consecutive visits (or from 0)
    assert np.all((lo[seen] < times[seen]) & (times[seen] <= hi[seen]))
    visits = np.array([0.0, *design.visits_wk])
    positions = np.searchsorted(visits, hi[seen])
    assert np.all(visits[positions - 1] == lo[seen])
    # right-censored at a visit, before the true time
    right = kind == RIGHT
    assert np.all(hi[right] < times[right]) and np.all(np.isin(hi[right], visits))
    # times after follow-up are never seen; dropout (10 per 100 patient-years over a year)
    # right-censors some earlier ones
    assert not np.any(seen & (times > design.followup_wk))
    early_dropout = right & (times <= design.followup_wk)
    expected = 1 - math.exp(-0.10)
    assert 0.3 * expected < early_dropout.mean() < 1.5 * expected
    assert np.all(kind[right | seen | (kind == NONE)] == kind)


def test_simulated_times_follow_the_model():
    # one Weibull gap, no frailty: the log-time median of each arm is alpha + location +
    # sigma log(log 2), so the arms' median ratio is exp(effect)
    nuisance = {"intercept": np.array([2.0]), "dispersion": np.array([0.7]),
                "sigma_patient": 0.0, "location_control": 0.3}
    times = event_times("weibull", math.log(0.6), nuisance, 40_000, np.random.default_rng(2))
    treated, control = np.median(times[:40_000]), np.median(times[40_000:])
    assert control == pytest.approx(math.exp(2.3 + 0.7 * math.log(math.log(2))), rel=0.02)
    assert treated / control == pytest.approx(0.6, rel=0.03)
    # three gaps: the outcome's time is their sum
    three = {"intercept": np.array([0.0, 0.0, 0.0]), "dispersion": np.array([1e-6] * 3),
             "sigma_patient": 0.0, "location_control": 0.0}
    assert np.allclose(event_times("weibull", 0.0, three, 5, np.random.default_rng(0)),
                       3 * math.exp(1e-6 * 0), rtol=1e-4)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(text))
    return path


def edited(design: str, old: str, new: str) -> str:
    """The bundled design's text with ``old`` replaced by ``new``."""
    text = (ROOT / "designs" / f"{design}.toml").read_text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize("text, fragment", [
    ("[design]\nendpoint = \"survival\"\n", "endpoint"),
    (edited("two_arm_resolution", "followup_wk = 52", "followup_wk = 40"), "after follow-up"),
    (edited("two_arm_resolution", "n_per_arm = [10, 20, 30, 40, 60]", "n_per_arm = [1, 20]"),
     "n_per_arm"),
    (edited("two_arm_resolution", "probability = 0.95", "probability = 1.5"), "probability"),
    (edited("two_arm_resolution", "fixed_effects = [1.0, 0.8, 0.67, 0.5]",
            "fixed_effects = [1.0, -0.5]"), "time ratio must be > 0"),
    # 10^8 patients per arm took memory until the system stopped the process
    (edited("single_arm_cmas", "n_per_arm = [10, 15, 20, 30, 40]",
            "n_per_arm = [10, 100000000]"),
     "n_per_arm: [10, 100000000] is not valid; it must be a list of whole numbers from 2 "
     "to 10,000"),
    # a misspelt key was ignored
    (edited("single_arm_cmas", "upper = 52", "upper = 52\nupperr = 3"),
     "[design] upperr: unknown key; valid: "),
    (edited("two_arm_resolution", "probability = 0.95 }", "probability = 0.95, prob = 0.9 }"),
     "[design.success] prob: unknown key; valid: comparison, probability, value"),
    # two arms of one label died with a traceback after simulating trials
    (edited("two_arm_resolution", 'label = "tofacitinib"', 'label = "ruxolitinib"'),
     "both arms are labelled 'ruxolitinib'"),
    (edited("two_arm_resolution", 'drug = "tofacitinib"', 'drug = "ruxolitinib"'),
     "arms 'ruxolitinib' and 'tofacitinib' are the same cell (drug = ruxolitinib, "
     "dose_start_mg_bid = 5mg)"),
])
def test_a_bad_design_is_refused_with_file_and_key(tmp_path, capsys, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as error:
        load_design(str(path))
    assert str(path) in str(error.value) and fragment in str(error.value)
    out = tmp_path / "plan"
    assert main(["plan", str(path), "--out", str(out), "--trials", "10"]) == 2
    assert "nothing was written" in capsys.readouterr().err
    assert not out.exists()


def test_a_time_to_event_plan_needs_a_run(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "two_arm_resolution", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--from RUN" in err and not out.exists()
    assert main(["plan", "two_arm_resolution", "--from", str(tmp_path), "--out",
                 str(out)]) == 2
    assert "no fitted 'rash_milestones'" in capsys.readouterr().err


def test_percentages_are_rounded_to_their_monte_carlo_error():
    assert percent(0.6234, 0.015) == "62%"
    assert percent(0.0412, 0.006) == "4.1%"


def test_sentences_state_rule_prior_and_type_one_error(tmp_path):
    from jdmbayes.planning.run import PlanResult

    design = normal_design(tmp_path, weight=0.2)
    trials = simulate(design, 400)
    prior = normal_design_prior(design, 10, np.random.default_rng(0))
    result = PlanResult(design, prior, plan_table(design, trials), pd.DataFrame(), trials,
                        {"ess_patients_per_arm": 32.0, "method": "moment"}, {}, {}, "flat")
    first = plan_sentences(result)[0]
    assert first.startswith("With 10 patients per arm, the probability that the trial shows")
    assert "posterior P(difference in means > 0) > 0.95" in first
    assert "Monte Carlo SE" in first and "type I error" in first
    assert "robustified with 20% weight" in first
    assert "32 patients per arm" in plan_sentences(result)[-1]
    # a design prior taken from a fit that failed its gates (allowed) is said to be one
    failed = dataclasses.replace(prior, source={**prior.source, "model": "cmas",
                                                "run_verdict": "fail"})
    last = plan_sentences(dataclasses.replace(result, prior=failed))[-1]
    assert last.startswith("The fit of model cmas that gives the design prior failed its "
                           "diagnostic gates (used with --allow-failed-diagnostics)")
    assert "provisional" not in " ".join(plan_sentences(result))


def _run_folder(tmp_path: Path, verdict: str | None, posterior: bytes = b"not HDF5") -> Path:
    """A run folder of model rash_milestones whose manifest gives ``verdict`` (None: no
    manifest) and whose posterior.nc holds ``posterior``."""
    run = tmp_path / "run"
    (run / "rash_milestones").mkdir(parents=True)
    (run / "rash_milestones" / "posterior.nc").write_bytes(posterior)
    if verdict is not None:
        (run / "manifest.json").write_text(json.dumps(
            {"models": {"rash_milestones": {"verdict": verdict}}}))
    return run


@pytest.mark.parametrize(("verdict", "posterior", "rule", "message"), [
    # a failed fit's posterior became the design prior without a word
    ("fail", b"not HDF5", "design_prior_failed_fit", "the fit of 'rash_milestones' in "),
    # unreadable draws or manifest died with a traceback
    ("pass", b"not HDF5", "design_prior_run", "cannot read the posterior draws (OSError"),
    ("pass", b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "design_prior_run",
     "cannot read the posterior draws (OSError"),
    (None, b"not HDF5", "design_prior_run", "has no manifest of its fit of 'rash_milestones' "
     "that can be read (FileNotFoundError"),
])
def test_a_run_folder_that_cannot_give_a_design_prior_is_refused(tmp_path, capsys, verdict,
                                                                 posterior, rule, message):
    from jdmbayes.planning.design_prior import design_prior_from_run

    run = _run_folder(tmp_path, verdict, posterior)
    design = load_design("two_arm_resolution")
    with pytest.raises(InputError) as caught:
        design_prior_from_run(design, run)
    (problem,) = caught.value.problems
    assert problem.rule == rule and message in problem.message, problem.message
    out = tmp_path / "plan"
    assert main(["plan", "two_arm_resolution", "--from", str(run), "--out", str(out)]) == 2
    assert not out.exists() and "Traceback" not in capsys.readouterr().err
    if verdict == "fail":   # allowed, the draws are read (and here found unreadable)
        with pytest.raises(InputError, match="cannot read the posterior draws"):
            design_prior_from_run(design, run, allow_failed=True)


def test_probability_of_the_event_by_a_week_matches_simulation():
    # three gaps with a shared frailty: the quasi-Monte Carlo probability against 200,000
    # simulated patients, and the location solved for a target probability gives it back
    from jdmbayes.planning.trials import (
        event_probability,
        location_for_probability,
        single_arm_times,
    )

    nuisance = {"intercept": np.array([1.0, 1.2, 2.0]), "dispersion": np.array([0.5, 0.3, 0.8]),
                "sigma_patient": 0.5, "location_control": 0.0}
    times = single_arm_times("weibull", 0.2, nuisance, 200_000, np.random.default_rng(5))
    exact = (times <= 24.0).mean()        # Monte Carlo SE about 0.0011
    assert event_probability("weibull", nuisance, np.array([0.2]), 24.0)[0] == \
        pytest.approx(exact, abs=0.004)
    location = location_for_probability("weibull", nuisance, 0.4, 24.0)
    again = single_arm_times("weibull", location, nuisance, 200_000, np.random.default_rng(6))
    assert (again <= 24.0).mean() == pytest.approx(0.4, abs=0.004)


def test_a_probability_design_refuses_probabilities_outside_0_1(tmp_path):
    text = (ROOT / "designs" / "single_arm_resolution.toml").read_text().replace(
        "fixed_effects = [0.4, 0.6]", "fixed_effects = [0.4, 1.6]")
    with pytest.raises(InputError, match="a probability must be between 0 and 1"):
        load_design(str(write(tmp_path, text)))


@pytest.mark.parametrize(("old", "new"), [
    ("fixed_effects = [5.0, 10.0]", "fixed_effects = [5.0, 1e9]"),
    ("fixed_effects = [5.0, 10.0]", "fixed_effects = [-52.0]"),
    ('success = { comparison = ">", value = 5.0', 'success = { comparison = ">", value = 60.0'),
])
def test_a_score_change_design_refuses_changes_the_score_cannot_make(tmp_path, old, new):
    # a 1e9-point scenario was simulated at the largest attainable change under its label;
    # a success rule beyond the scale can never be met
    text = (ROOT / "designs" / "single_arm_cmas.toml").read_text()
    assert old in text
    with pytest.raises(InputError, match="a mean change of a 0-52 score must be between -52 "
                       "and 52, got"):
        load_design(str(write(tmp_path, text.replace(old, new))))
