"""The retry ladder's order, lengths and budget (kinds.fit), with sampling replaced by a clock:
which attempt runs, with which settings and parameterisation, is arithmetic on the budget of
sampling seconds (compilation left out)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from jdmbayes.inference.sampling import SamplerSettings, SamplingStopped
from jdmbayes.kinds import fit as fitting
from jdmbayes.models.spec import ModelSpec


def gates(verdict: str) -> dict:
    return {"verdict": verdict, "failures": [] if verdict == "pass" else
            [{"gate": "r_hat", "problem": "", "try": ""}], "r_hat_max": 1.0,
            "ess_bulk_min": 500.0, "ess_tail_min": 500.0, "divergences": 0}


def run_ladder(monkeypatch, seconds_per_1000: float, passes_when, budget: float = 300.0,
               reparameterise: bool = True, multiple: float = 0.0,
               cost=lambda settings: 1.0, limits: list | None = None,
               reported: list | None = None, first_target: float = 0.99,
               target: float | None = None, first_tune: int | None = None,
               tune: int = 1000, samples: list | None = None) -> list[dict]:
    """Fit with a fake kind whose sampling takes ``seconds_per_1000`` per 1,000 tuning and
    draws (times ``cost(settings)``, which the forecast cannot know; on a fake clock) and
    passes when ``passes_when(spec, settings)``; ``limits`` collects each attempt's time
    limit, ``reported`` the settings of the attempt whose draws the outputs were given,
    ``samples`` each finished attempt's draws (``loo_loglik.stopped``: how many attempts had
    started when its background LOO log-likelihood was stopped, ``at_outputs``: whether
    it had been stopped when the outputs were computed)."""
    clock = [0.0]
    started = [0]

    class Background:
        stopped = None

        def stop(self):
            self.stopped = self.stopped or started[0]
    monkeypatch.setattr(fitting.time, "perf_counter", lambda: clock[0])

    def sample_once(kind, data, spec, prior_set, settings, report, time_limit=None):
        started[0] += 1
        # compiling takes as long again (a cold cache): the budget must not count it
        seconds = seconds_per_1000 * (settings.tune + settings.draws) / 1000 * cost(settings)
        if limits is not None:
            limits.append(time_limit)
        if time_limit is not None and seconds > time_limit:
            clock[0] += seconds + time_limit
            raise SamplingStopped(time_limit, time_limit)
        clock[0] += 2 * seconds
        sampled = SimpleNamespace(sample_seconds=seconds, loo_loglik=Background())
        if samples is not None:
            samples.append(sampled)
        return (sampled, None, gates("pass" if passes_when(spec, settings) else "fail"))

    def outputs(data, spec, prior_set, sampled, prior, settings, *rest):
        sampled.loo_loglik.at_outputs = sampled.loo_loglik.stopped is not None
        return SimpleNamespace(notes=[], rows_note=lambda: "", reported=(settings, sampled))

    def other(data, spec, gates=None):
        return dataclasses.replace(spec, frailty={"centred": "non_centred"}.get(
            spec.frailty, "centred")) if reparameterise else None

    kind = SimpleNamespace(index=lambda series, spec: SimpleNamespace(
        excluded=[], rows={}, design=SimpleNamespace(covariate_info=[])),
        resolve_priors=lambda data, spec, prior_set: prior_set, reparameterised=other,
        # the result reports the settings of the attempt whose draws it was given
        outputs=outputs,
        key_parameters=(), figures=(),
        first_target_accept=lambda data, spec: first_target,
        first_tune=lambda data, spec: first_tune)
    monkeypatch.setattr(fitting, "kind_of", lambda spec: kind)
    monkeypatch.setattr(fitting, "_sample_once", sample_once)
    spec = ModelSpec(name="m", kind="milestones", path=None, raw={}, frailty="centred")
    settings = SamplerSettings(draws=1000, tune=tune, retry_budget_s=budget,
                               retry_budget_first_multiple=multiple, target_accept=target)
    result = fitting.fit_model(None, spec, None, settings, 0.95, "eti")
    if reported is not None:
        reported.append(result.reported[0])
    return result.attempts


def test_a_large_fit_skips_the_doubled_run_and_tries_the_other_parameterisation(monkeypatch):
    # 130 s per attempt: doubling (260 s more) cannot fit in 300 s, the other form can
    attempts = run_ladder(monkeypatch, 65.0, lambda spec, s: spec.frailty == "non_centred")
    assert [a.get("verdict", "skipped") for a in attempts] == ["fail", "skipped", "pass"]
    assert attempts[1]["change"] == "tuning and draws doubled"
    assert attempts[1]["skipped"] == "expected 260 s of sampling after 130 s"
    assert attempts[0]["sample_seconds"] == 130 and attempts[0]["seconds"] == 260
    assert attempts[2]["frailty"] == "non_centred"
    assert attempts[2]["settings"]["draws"] == attempts[0]["settings"]["draws"] == 1000
    assert attempts[2]["settings"]["tune"] == 1000


def test_a_small_fit_doubles_first_then_reparameterises_at_the_doubled_length(monkeypatch):
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: spec.frailty == "non_centred")
    assert [a["verdict"] for a in attempts] == ["fail", "fail", "pass"]
    assert [a["settings"]["draws"] for a in attempts] == [1000, 2000, 2000]
    assert [a["frailty"] for a in attempts] == ["centred", "centred", "non_centred"]


def test_without_another_parameterisation_the_ladder_goes_to_the_low_rank_matrix(monkeypatch):
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: False, reparameterise=False)
    assert [a["settings"]["draws"] for a in attempts] == [1000, 2000, 4000]
    assert attempts[-1]["settings"]["mass_matrix"] == "low_rank"


@pytest.mark.parametrize("budget", [0.0, 100.0])
def test_no_retry_at_zero_budget_or_past_it(monkeypatch, budget):
    attempts = run_ladder(monkeypatch, 65.0, lambda spec, s: False, budget=budget)
    assert attempts[0]["verdict"] == "fail"
    assert all("skipped" in a for a in attempts[1:]) and len(attempts) == (1 if not budget
                                                                          else 4)


def test_the_default_budget_grows_with_a_long_first_attempt(monkeypatch):
    # 130 s at first: 300 s would skip the doubled run; six first attempts (780 s) afford
    # it (390 s) and the other parameterisation at its length (650 s), not the low-rank run
    attempts = run_ladder(monkeypatch, 65.0, lambda spec, s: False, multiple=6.0)
    assert [a.get("verdict", "skipped") for a in attempts] == ["fail", "fail", "fail",
                                                                "skipped"]
    assert [a["settings"]["draws"] for a in attempts[:3]] == [1000, 2000, 2000]
    assert [a["frailty"] for a in attempts[:3]] == ["centred", "centred", "non_centred"]
    assert attempts[3]["skipped"] == "expected 520 s of sampling after 650 s"
    assert attempts[3]["budget_s"] == 780
    assert "not tried (over the 780 s budget): low-rank mass matrix" in fitting.retry_note(
        attempts)
    passing = run_ladder(monkeypatch, 65.0, lambda spec, s: s.draws == 2000, multiple=6.0)
    assert [a["verdict"] for a in passing] == ["fail", "pass"]


@pytest.mark.parametrize("multiple", [0.0, 6.0])
def test_a_short_first_attempt_keeps_the_fixed_budget(monkeypatch, multiple):
    # 20 s and 50 s at first: six of them are at most the fixed 300 s, which rules
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: False, multiple=multiple)
    assert [a.get("verdict", "skipped") for a in attempts] == ["fail"] * 4
    assert [a["settings"]["draws"] for a in attempts] == [1000, 2000, 2000, 4000]
    attempts = run_ladder(monkeypatch, 25.0, lambda spec, s: False, multiple=multiple)
    assert attempts[-1]["skipped"] == "expected 200 s of sampling after 250 s"
    assert attempts[-1]["budget_s"] == 300


def test_only_the_default_budget_scales_with_the_first_attempt(monkeypatch):
    from jdmbayes.api import retry_budget_settings

    monkeypatch.delenv("JDMBAYES_RETRY_BUDGET", raising=False)
    assert retry_budget_settings() == {"retry_budget_s": 300.0,
                                       "retry_budget_first_multiple": 6.0}
    assert retry_budget_settings(120) == {"retry_budget_s": 120.0,
                                          "retry_budget_first_multiple": 0.0}
    monkeypatch.setenv("JDMBAYES_RETRY_BUDGET", "50")
    assert retry_budget_settings() == {"retry_budget_s": 50.0,
                                       "retry_budget_first_multiple": 0.0}
    monkeypatch.setenv("JDMBAYES_RETRY_BUDGET", "0")
    assert retry_budget_settings()["retry_budget_s"] == 0.0
    # no retry at a zero budget, whatever the multiple
    assert fitting.retry_budget_of(SamplerSettings(retry_budget_s=0.0,
                                                   retry_budget_first_multiple=6.0), 500) == 0


def test_a_retry_that_runs_past_the_budget_is_stopped_and_the_last_finished_reported(
        monkeypatch):
    # 20 s at first; doubled 40 s; other form 40 s (100 s spent). The low-rank run is
    # forecast at 80 s but costs ten times as much per draw: it is stopped at the 200 s the
    # 300 s budget has left, and attempt 3 (the last that finished) is the one reported
    limits, reported = [], []
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: False, limits=limits,
                          reported=reported,
                          cost=lambda s: 10.0 if s.mass_matrix == "low_rank" else 1.0)
    assert limits == [None, 280.0, 240.0, 200.0]   # the first attempt is never stopped
    assert [a.get("verdict", "stopped" if "stopped" in a else "?") for a in attempts] == [
        "fail", "fail", "fail", "stopped"]
    assert attempts[3]["sample_seconds"] == 200.0 and attempts[3]["budget_s"] == 300.0
    assert attempts[3]["settings"]["mass_matrix"] == "low_rank"
    assert [(s.mass_matrix, s.draws) for s in reported] == [("diag", 2000)]
    note = fitting.retry_note(attempts)
    assert ("attempt 4: low-rank mass matrix, tuning and draws doubled -> stopped at the "
            "300 s budget after 200 s of sampling") in note
    assert "The numbers reported are attempt 3's" in note
    assert "not tried" not in note
    # a retry stopped right after the first attempt: the steps after it are skipped, and
    # the note reads as cleanly (the doubled run costs three times its forecast of 40 s)
    alone = run_ladder(monkeypatch, 10.0, lambda spec, s: False, budget=100.0,
                       reparameterise=False, cost=lambda s: 3.0 if s.draws > 1000 else 1.0)
    assert [("stopped" in a, "skipped" in a) for a in alone[1:]] == [(True, False),
                                                                     (False, True)]
    assert alone[1]["sample_seconds"] == 80.0
    assert fitting.retry_note(alone).startswith(
        "Retried: the first fit failed r_hat; attempt 2: tuning and draws doubled -> stopped "
        "at the 100 s budget after 80 s of sampling; not tried (over the 100 s budget): "
        "low-rank mass matrix")


def slower_at_high_target(settings) -> float:
    """Sampling at target acceptance 0.99 takes 3.5 times as long as at 0.9."""
    return 3.5 if settings.target_accept == 0.99 else 1.0


def test_a_model_whose_own_lower_target_passes_is_fitted_once_at_it(monkeypatch):
    reported = []
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: True, first_target=0.9,
                          cost=slower_at_high_target, reported=reported)
    assert [a["settings"]["target_accept"] for a in attempts] == [0.9]
    assert reported[0].target_accept == 0.9


def test_a_failed_lower_target_is_followed_by_the_default_target_then_the_same_ladder(
        monkeypatch):
    """After the model's own 0.9 fails, the fit at 0.99 runs as if it were the first
    attempt: the ladder after it, and what the budget allows, are those of a fit that
    started at 0.99 (here 130 s at 0.99: the doubled run is skipped and the other
    parameterisation passes), with the 0.9 attempt's seconds added to the budget."""
    def passes(spec, s):
        return spec.frailty == "non_centred" and s.target_accept == 0.99

    reported = []
    lowered = run_ladder(monkeypatch, 65.0 / 3.5, passes, first_target=0.9,
                         cost=slower_at_high_target, reported=reported)
    plain = run_ladder(monkeypatch, 65.0 / 3.5, passes, first_target=0.99,
                       cost=slower_at_high_target)
    assert [a["change"] for a in lowered[:2]] == [
        "as asked", "target acceptance 0.99, same tuning and draws"]
    assert [a["settings"]["target_accept"] for a in lowered if "settings" in a] == [
        0.9, 0.99, 0.99]
    assert lowered[0]["sample_seconds"] == pytest.approx(130 / 3.5)

    def steps(attempts):
        return [(a["change"], a.get("verdict"), "skipped" in a, a.get("frailty"),
                 a.get("settings", {}).get("draws")) for a in attempts]

    assert steps(lowered[2:]) == steps(plain[1:])
    assert lowered[2]["skipped"] == "expected 260 s of sampling after 167 s"
    assert reported[0].target_accept == 0.99 and lowered[-1]["verdict"] == "pass"
    note = fitting.retry_note(lowered)
    assert "attempt 2: target acceptance 0.99, same tuning and draws -> fail" in note
    assert ", target acceptance 0.99, patient effects" not in note   # frailty spec here
    assert "mass matrix, target acceptance 0.99" in note


def test_a_failed_shorter_tuning_is_followed_by_the_settings_tuning_at_the_default_target(
        monkeypatch):
    """A model whose own first attempt also tunes for fewer steps: a pass is reported at
    them; a failure is followed by the fit at 0.99 after the settings' 1,000 tuning steps,
    the same draws, then the ladder of a fit that started there."""
    reported = []
    once = run_ladder(monkeypatch, 10.0, lambda spec, s: True, first_target=0.9,
                      first_tune=300, reported=reported)
    assert [(a["settings"]["target_accept"], a["settings"]["tune"]) for a in once] == [
        (0.9, 300)]
    assert (reported[0].tune, reported[0].draws) == (300, 1000)
    assert once[0]["sample_seconds"] == pytest.approx(13.0)

    def passes(spec, s):
        return s.draws == 2000

    reported = []
    lowered = run_ladder(monkeypatch, 10.0, passes, first_target=0.9, first_tune=300,
                         reported=reported)
    plain = run_ladder(monkeypatch, 10.0, passes, first_target=0.99)
    assert [a["change"] for a in lowered[:2]] == [
        "as asked", "target acceptance 0.99, 1000 tuning steps, same draws"]
    assert [(a["settings"]["target_accept"], a["settings"]["tune"], a["settings"]["draws"])
            for a in lowered] == [(0.9, 300, 1000), (0.99, 1000, 1000), (0.99, 2000, 2000)]
    assert [a["change"] for a in lowered[2:]] == [a["change"] for a in plain[1:]]
    assert (reported[0].tune, reported[0].draws) == (2000, 2000)
    assert "attempt 2: target acceptance 0.99, 1000 tuning steps, same draws -> fail" in \
        fitting.retry_note(lowered)
    # fewer tuning steps asked for than the model's own are kept
    short = run_ladder(monkeypatch, 10.0, lambda spec, s: True, first_target=0.9,
                       first_tune=300, tune=200)
    assert short[0]["settings"]["tune"] == 200


@pytest.mark.parametrize("target", [0.9, 0.95])
def test_a_target_asked_for_keeps_the_settings_tuning(monkeypatch, target):
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: False, first_target=0.9,
                          first_tune=300, target=target)
    assert attempts[0]["settings"]["tune"] == 1000
    assert not any(a["change"].startswith("target acceptance") for a in attempts)
    unbudgeted = run_ladder(monkeypatch, 10.0, lambda spec, s: True, budget=0.0,
                            first_target=0.9, first_tune=300)
    assert (unbudgeted[0]["settings"]["target_accept"],
            unbudgeted[0]["settings"]["tune"]) == (0.99, 1000)


@pytest.mark.parametrize(("budget", "target", "first"), [(0.0, None, 0.99), (300.0, 0.9, 0.9),
                                                          (300.0, 0.95, 0.95)])
def test_no_default_target_follows_without_a_budget_or_after_a_target_asked_for(
        monkeypatch, budget, target, first):
    """Without a retry budget the model's own lower target is not used (nothing could
    follow a failure); a target asked for is kept throughout the ladder."""
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: False, budget=budget,
                          first_target=0.9, target=target)
    assert attempts[0]["settings"]["target_accept"] == first
    assert all(a["settings"]["target_accept"] == first for a in attempts if "settings" in a)
    assert not any(a["change"].startswith("target acceptance") for a in attempts)


def test_only_patient_effects_sampled_through_their_level_start_at_a_lower_target(tmp_path):
    from jdmbayes.kinds.longitudinal import first_target_accept
    from jdmbayes.kinds.registry import KINDS
    from tests.unit.test_longitudinal_specs import series_and_spec

    data, spec = series_and_spec(tmp_path, [[0, 2, 4, 8, 12]] * 4)
    score = dataclasses.replace(spec, likelihood="beta_binomial", upper=52)
    assert first_target_accept(data, dataclasses.replace(score, patient_effects="auto")) == 0.9
    for form, target in (("centred_level", 0.9), ("non_centred", 0.99),
                         ("centred_baseline", 0.99), ("centred", 0.99)):
        assert first_target_accept(data, dataclasses.replace(score, patient_effects=form)) \
            == target
    (tmp_path / "fewer").mkdir()
    fewer, _ = series_and_spec(tmp_path / "fewer", [[0, 2, 4, 8]] * 4)
    assert first_target_accept(fewer, dataclasses.replace(score, patient_effects="auto")) \
        == 0.99
    assert KINDS["milestones"].first_target_accept(None, None) == 0.99
    assert KINDS["episodes"].first_target_accept(None, None) == 0.99
    # and only they tune for fewer steps at first
    assert KINDS["longitudinal"].first_tune(
        data, dataclasses.replace(score, patient_effects="auto")) == 300
    assert KINDS["longitudinal"].first_tune(
        fewer, dataclasses.replace(score, patient_effects="auto")) is None
    assert KINDS["milestones"].first_tune(None, None) is None
    assert KINDS["episodes"].first_tune(None, None) is None


def test_each_attempt_a_retry_follows_has_its_loo_stopped_before_the_retry(monkeypatch):
    """The LOO log-likelihood of an attempt runs in the background while the gates are
    judged; a retry stops it before sampling (so it takes no CPU from the retry), the
    reported attempt's is left to the outputs, and stopped after them."""
    samples = []
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: spec.frailty == "non_centred",
                          samples=samples)
    assert [a["verdict"] for a in attempts] == ["fail", "fail", "pass"]
    # attempt k's is stopped when attempt k + 1 is about to start (k attempts started)
    assert [s.loo_loglik.stopped for s in samples] == [1, 2, 3]
    assert not hasattr(samples[0].loo_loglik, "at_outputs")
    assert samples[2].loo_loglik.at_outputs is False


def test_an_attempt_stopped_at_the_budget_leaves_the_last_finished_ones_loo(monkeypatch):
    # the doubled run overruns the budget: the first attempt is reported; its background
    # LOO was stopped for the retry, so the outputs compute it again (kinds.common)
    samples, reported = [], []
    attempts = run_ladder(monkeypatch, 10.0, lambda spec, s: False, budget=70.0,
                          reparameterise=False, cost=lambda s: 3.0 if s.draws == 2000 else 1.0,
                          samples=samples, reported=reported)
    assert "stopped" in attempts[1] and reported[0].draws == 1000
    assert len(samples) == 1 and samples[0].loo_loglik.at_outputs is True
