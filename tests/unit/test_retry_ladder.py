"""The retry ladder's order, lengths and budget (kinds.fit), with sampling replaced by a clock:
which attempt runs, with which settings and parameterisation, is arithmetic on the budget of
sampling seconds (compilation left out)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest

from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.kinds import fit as fitting
from jdmbayes.models.spec import ModelSpec


def gates(verdict: str) -> dict:
    return {"verdict": verdict, "failures": [] if verdict == "pass" else
            [{"gate": "r_hat", "problem": "", "try": ""}], "r_hat_max": 1.0,
            "ess_bulk_min": 500.0, "ess_tail_min": 500.0, "divergences": 0}


def run_ladder(monkeypatch, seconds_per_1000: float, passes_when, budget: float = 300.0,
               reparameterise: bool = True) -> list[dict]:
    """Fit with a fake kind whose sampling takes ``seconds_per_1000`` per 1,000 tuning and
    draws (on a fake clock) and passes when ``passes_when(spec, settings)``."""
    clock = [0.0]
    monkeypatch.setattr(fitting.time, "perf_counter", lambda: clock[0])

    def sample_once(kind, data, spec, prior_set, settings, report):
        # compiling takes as long again (a cold cache): the budget must not count it
        seconds = seconds_per_1000 * (settings.tune + settings.draws) / 1000
        clock[0] += 2 * seconds
        return (SimpleNamespace(sample_seconds=seconds), None,
                gates("pass" if passes_when(spec, settings) else "fail"))

    def other(data, spec):
        return dataclasses.replace(spec, frailty={"centred": "non_centred"}.get(
            spec.frailty, "centred")) if reparameterise else None

    kind = SimpleNamespace(index=lambda series, spec: SimpleNamespace(
        excluded=[], rows={}, design=SimpleNamespace(covariate_info=[])),
        resolve_priors=lambda data, spec, prior_set: prior_set, reparameterised=other,
        outputs=lambda *args: SimpleNamespace(notes=[], rows_note=lambda: ""),
        key_parameters=(), figures=())
    monkeypatch.setattr(fitting, "kind_of", lambda spec: kind)
    monkeypatch.setattr(fitting, "_sample_once", sample_once)
    spec = ModelSpec(name="m", kind="milestones", path=None, raw={}, frailty="centred")
    settings = SamplerSettings(draws=1000, tune=1000, retry_budget_s=budget)
    return fitting.fit_model(None, spec, None, settings, 0.95, "eti").attempts


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
