"""Recurrent episodes (spec kind "episodes"): the data rules, the indexing, the likelihood
against scipy term by term, the integrated frailty against brute-force integration, and the
simulator against a closed form. No sampling."""

from __future__ import annotations

import dataclasses
import textwrap

import numpy as np
import pytest
from scipy import integrate, stats

from jdmbayes.data.validate import load_series
from jdmbayes.errors import InputError
from jdmbayes.estimands.simulate import simulate_episodes
from jdmbayes.models.episode_indexing import index_episodes
from jdmbayes.models.episodes import build_episode_model, frailty_form
from jdmbayes.models.indexing import EXACT, INTERVAL, RIGHT
from jdmbayes.models.spec import load_model_spec, load_prior_set
from tests.unit.test_integrated_frailty import ONE_CALL

SPEC = """
[model]
name = "flares"
kind = "episodes"
event = "flare"
family = "{family}"
frailty = "{frailty}"
episode_effect = true
"""
SUBJECTS = "subject_id,followup_wk,arm\nP1,40,A\nP2,30,B\nP3,10,A\nP4,12,B\nP5,20,A\n"
# P1: two events then censored; P2: an interval-censored event, then censored from a later
# start; P3: censored only; P4: an event, then one in (start, 9] (left-censored at its
# start, which is the previous event); P5 has only another event (left out, with a reason)
EVENTS = """subject_id,event,episode,start_wk,time_lo_wk,time_wk,censored
P1,flare,1,,,5,0
P1,flare,2,7,,12,0
P1,flare,3,14,,30,1
P2,flare,1,,2,6,0
P2,flare,2,8,,20,1
P3,flare,,,,10,1
P4,flare,1,,,3,0
P4,flare,2,,3,9,0
P5,infection,,,,4,0
"""


def write_series(folder, events=EVENTS, subjects=SUBJECTS, family="weibull",
                 frailty="centred"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subjects.csv").write_text(subjects)
    (folder / "events.csv").write_text(events)
    (folder / "flares.toml").write_text(textwrap.dedent(SPEC.format(family=family,
                                                                    frailty=frailty)))
    return folder


def indexed(tmp_path, **kwargs):
    folder = write_series(tmp_path / "series", **kwargs)
    spec = load_model_spec(str(folder / "flares.toml"))
    return index_episodes(load_series(folder), spec), spec


def test_indexing_reads_starts_numbers_and_kinds(tmp_path):
    data, _ = indexed(tmp_path)
    assert data.subject_ids == ["P1", "P2", "P3", "P4"]
    assert data.patient.tolist() == [0, 0, 0, 1, 1, 2, 3, 3]
    assert data.episode.tolist() == [1, 2, 3, 1, 2, 1, 1, 2]
    # a blank start is the end of the previous episode (0 for the first)
    assert data.start.tolist() == [0, 7, 14, 0, 8, 0, 0, 3]
    assert data.kind.tolist() == [EXACT, EXACT, RIGHT, INTERVAL, RIGHT, RIGHT, EXACT, INTERVAL]
    assert data.lo.tolist() == [0, 0, 0, 2, 0, 0, 0, 3]
    excluded = data.excluded
    assert sorted(excluded[["table", "row", "subject_id"]].values.tolist()) == [
        ["events", 9, "P5"], ["subjects", 5, "P5"]]
    reasons = dict(zip(excluded["table"], excluded["reason"]))
    assert reasons["events"] == "not named by the spec (event 'infection')"
    assert reasons["subjects"] == "carries no information (no 'flare' row)"
    # P4's last episode ends in an event before follow-up and nothing is at risk after it
    assert data.open_ended() == 1


@pytest.mark.parametrize(("events", "rule", "where"), [
    ("P1,flare,1,,,5,0\nP1,flare,3,7,,12,0\n", "episode_number", "row 1, column 'episode'"),
    ("P1,flare,1,,,5,0\nP1,flare,2,4,,12,0\n", "episode_order", "row 2, column 'start_wk'"),
    ("P1,flare,1,,2,5,0\nP1,flare,2,,,12,0\n", "episode_start", "row 2, column 'start_wk'"),
    ("P1,flare,1,,,5,0\nP1,flare,2,6,5.5,12,0\n", "episode_start",
     "row 2, column 'time_lo_wk'"),
    ("P1,flare,1,,,5,0\nP1,flare,1,6,,12,0\n", "duplicate_event", "row 2, column 'episode'"),
    ("P1,flare,1,,,5,0\nP1,flare,2,,,5,1\n", "episode_order", "row 2, column 'time_wk'"),
    ("P1,flare,1.5,,,5,0\n", "episode_number", "row 1, column 'episode'"),
    ("P1,flare,1,9,,5,0\n", "episode_start", "row 1, column 'start_wk'"),
    ("P1,flare,,,,5,0\nP1,flare,,,,9,0\n", "duplicate_event", "row 2, column 'event'"),
])
def test_episode_rules_name_row_column_and_rule(tmp_path, events, rule, where):
    header = EVENTS.splitlines()[0] + "\n"
    folder = write_series(tmp_path / "bad", events=header + events)
    with pytest.raises(InputError) as err:
        load_series(folder)
    text = str(err.value)
    assert f"events.csv, {where}: [{rule}]" in text, text


def point_fn(model, name="loglik_patient", mode=None):
    return model.compile_fn(model.replace_rvs_by_values([model[name]])[0],
                            inputs=model.value_vars, point_fn=True, on_unused_input="ignore",
                            mode=mode)


ALPHA, SIGMA, GAMMA = 1.6, 0.7, np.array([-0.4, 0.3])


def at_point(model, sigma_patient, frailty=None):
    point = model.initial_point()
    point.update({"intercept": np.array([ALPHA]), "dispersion_log__": np.log([SIGMA]),
                  "beta_episode": GAMMA, "sigma_patient_log__": np.log(sigma_patient)})
    if frailty is not None:
        point["frailty"] = frailty
    return point


def scipy_terms(family, frailty):
    """Each patient's log-likelihood, term by term from scipy's distributions."""
    def gap(patient, episode):
        loc = ALPHA + frailty[patient] + np.r_[0.0, GAMMA][episode - 1]
        if family == "weibull":
            return stats.weibull_min(c=1 / SIGMA, scale=np.exp(loc))
        return stats.lognorm(s=SIGMA, scale=np.exp(loc))

    return np.array([
        gap(0, 1).logpdf(5) + gap(0, 2).logpdf(12 - 7) + gap(0, 3).logsf(30 - 14),
        np.log(gap(1, 1).sf(2) - gap(1, 1).sf(6)) + gap(1, 2).logsf(20 - 8),
        gap(2, 1).logsf(10),
        gap(3, 1).logpdf(3) + np.log(gap(3, 2).cdf(9 - 3)),
    ])


@pytest.mark.parametrize("family", ["weibull", "lognormal"])
def test_conditional_likelihood_matches_scipy(tmp_path, family):
    data, spec = indexed(tmp_path, family=family)
    model = build_episode_model(data, spec, load_prior_set("default", spec))
    frailty = np.array([0.3, -0.2, 0.1, 0.5])
    got = point_fn(model)(at_point(model, 0.5, frailty))
    # the log-normal survival goes through PyTensor's erfc, accurate to ~1e-8 here
    np.testing.assert_allclose(got, scipy_terms(family, frailty), rtol=0,
                               atol=1e-10 if family == "weibull" else 1e-7)


@pytest.mark.parametrize("sigma_patient", [0.3, 1.0])
def test_integrated_frailty_equals_brute_force_integration(tmp_path, sigma_patient):
    data, spec = indexed(tmp_path)
    prior_set = load_prior_set("default", spec)
    integrated = build_episode_model(data, dataclasses.replace(spec, frailty="integrated"),
                                     prior_set)
    # called once: compiled without JIT
    got = point_fn(integrated, mode=ONE_CALL)(at_point(integrated, sigma_patient))
    for i in range(data.n_patients):
        def integrand(u, i=i):
            frailty = np.full(data.n_patients, u)
            return np.exp(scipy_terms("weibull", frailty)[i]) * stats.norm.pdf(
                u, 0, sigma_patient)

        value, _ = integrate.quad(integrand, -12 * sigma_patient, 12 * sigma_patient,
                                  limit=400, epsabs=0, epsrel=1e-10, points=[0.0])
        # stated accuracy of the 11-node adaptive rule: 1e-4 on the log scale, 5e-3 for a
        # patient whose only information is one censored time (a sigmoid-cut integrand)
        tolerance = 5e-3 if i == 2 else 1e-4
        assert got[i] == pytest.approx(np.log(value), abs=tolerance), i


def test_frailty_left_out_when_no_patient_has_two_episodes(tmp_path):
    events = EVENTS.splitlines()[0] + "\nP1,flare,1,,,5,0\nP2,flare,1,,,6,1\nP3,flare,,,,4,0\n"
    data, spec = indexed(tmp_path, events=events)
    assert frailty_form(data, spec) == "none"
    model = build_episode_model(data, spec, load_prior_set("default", spec))
    assert "sigma_patient" not in model.named_vars and "beta_episode" not in model.named_vars


def test_simulator_observes_gaps_in_the_real_windows(tmp_path):
    """Deterministic gaps of 4.5 weeks (dispersion ~0): an episode is an event at start + 4.5
    when its window allows, else censored at the window's end; an interval-censored episode
    is seen at the window's end or the visits in it."""
    data, spec = indexed(tmp_path)
    truth = {"intercept": np.array([np.log(4.5)]), "dispersion": np.array([1e-9]),
             "beta_episode": np.zeros(2), "frailty": np.zeros(data.n_patients)}
    visits = [np.array([0.0, 4.0, 8.0])] * data.n_patients
    simulated = simulate_episodes(data, visits, "weibull", truth, np.random.default_rng(1))
    # windows: P1 (0, 7], (7, 14], (14, 30]; P2 (0, 8] interval, (8, 20]; P3 (0, 10];
    # P4 (0, 3] (the next episode starts at 3), then (3, 12] interval (follow-up 12)
    assert simulated.kind.tolist() == [EXACT, EXACT, EXACT, INTERVAL, EXACT, EXACT, RIGHT,
                                       INTERVAL]
    np.testing.assert_allclose(simulated.hi, [4.5, 11.5, 18.5, 8.0, 12.5, 4.5, 3.0, 8.0])
    np.testing.assert_allclose(simulated.lo[[3, 7]], [4.0, 4.0])


def test_episode_starts_in_the_series_unit_are_converted_to_weeks(tmp_path):
    folder = tmp_path / "days"
    folder.mkdir()
    (folder / "series.toml").write_text('[series]\ntime_unit = "days"\n')
    (folder / "subjects.csv").write_text("subject_id,followup_d\nP1,140\n")
    (folder / "events.csv").write_text("subject_id,event,episode,start_d,time_d,censored\n"
                                       "P1,flare,1,,35,0\nP1,flare,2,49,140,1\n")
    spec = tmp_path / "flares.toml"
    spec.write_text(textwrap.dedent(SPEC.format(family="weibull", frailty="centred")))
    data = index_episodes(load_series(folder), load_model_spec(str(spec)))
    np.testing.assert_allclose(data.start, [0.0, 7.0])
    np.testing.assert_allclose(data.hi, [5.0, 20.0])
    (folder / "events.csv").write_text("subject_id,event,episode,start_d,time_d,censored\n"
                                       "P1,flare,1,,35,0\nP1,flare,2,28,140,1\n")
    with pytest.raises(InputError) as err:
        load_series(folder)
    # named in the series' own column and unit
    assert ("events.csv, row 2, column 'start_d': [episode_order] subject 'P1': episode 2 of "
            "'flare' starts at 28 d, before episode 1 ended at 35 d") in str(err.value)
