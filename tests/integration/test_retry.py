"""The retry ladder (issue 12.4): a fit that fails a gate tries what the advice says, within
its time budget, records every attempt in the manifest, and reports the first that passes."""

from __future__ import annotations

import json

import jdmbayes
from jdmbayes.cli import main
from tests.conftest import BUNDLED


def test_a_failing_fit_is_refitted_as_the_advice_says_and_every_attempt_recorded(tmp_path):
    # 4 x 100 draws cannot reach a bulk ESS of 400: the first attempt must fail
    fit = jdmbayes.fit("gc_discontinuation", data=BUNDLED, seed=3, draws=100, tune=100,
                       ci_prob=0.95, ci_kind="eti", retry_budget=600)
    result = fit["gc_discontinuation"]
    attempts = result.attempts
    assert attempts[0]["verdict"] == "fail" and "ess_bulk" in attempts[0]["failed_gates"]
    assert len(attempts) >= 2
    # each attempt doubles tuning and draws; one outcome has no frailty to reparameterise,
    # so the ladder goes from doubling to the low-rank mass matrix
    assert [a["settings"]["draws"] for a in attempts] == [100 * 2 ** i
                                                          for i in range(len(attempts))]
    if len(attempts) == 3:
        assert attempts[2]["settings"]["mass_matrix"] == "low_rank"
    # the reported draws are the last attempt's, and they say so
    assert result.diagnostics["verdict"] == attempts[-1]["verdict"]
    # each attempt is judged on its draws before any output: the same gates as reported
    for key in ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences"):
        assert attempts[-1][key] == result.diagnostics[key]
    assert attempts[-1]["failed_gates"] == [f["gate"] for f in result.diagnostics["failures"]]
    assert result.settings == attempts[-1]["settings"]
    draws = result.idata.posterior.sizes["draw"]
    assert draws == attempts[-1]["settings"]["draws"]
    assert any(n.startswith("Retried: the first fit failed") for n in result.notes)
    assert all(a["verdict"] == "fail" for a in attempts[:-1])   # stopped at the first pass
    out = fit.write(tmp_path / "run")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["models"]["gc_discontinuation"]["attempts"] == json.loads(
        json.dumps(attempts))
    if attempts[-1]["verdict"] == "pass":
        assert "failed a diagnostic gate at first and was refitted" in (
            out / "grant.md").read_text()


def test_no_retry_past_the_budget_and_none_at_zero(tmp_path):
    out = tmp_path / "run"
    code = main(["fit", "--model", "gc_discontinuation", "--draws", "100", "--tune", "100",
                 "--retry-budget", "0.001", "--out", str(out)])
    assert code == 3
    attempts = json.loads((out / "manifest.json").read_text())[
        "models"]["gc_discontinuation"]["attempts"]
    assert attempts[0]["verdict"] == "fail"
    assert [a.get("skipped", "") != "" for a in attempts[1:]] == [True, True]
    fit = jdmbayes.fit("gc_discontinuation", data=BUNDLED, draws=100, tune=100, ci_prob=0.95,
                       ci_kind="eti", retry_budget=0)
    assert len(fit["gc_discontinuation"].attempts) == 1


def test_a_time_limit_stops_the_sampler_and_leaves_a_run_within_it_unchanged():
    # the retry ladder stops an attempt that reaches its budget (nutpie's background
    # sampler, cancelled); a run that finishes within its limit has the draws of a run
    # without one
    import numpy as np
    import pymc as pm
    import pytest

    from jdmbayes.inference.sampling import SamplerSettings, SamplingStopped, sample_posterior

    with pm.Model() as model:
        mu = pm.Normal("mu", 0, 10)
        sigma = pm.HalfNormal("sigma", 5)
        pm.Normal("y", mu, sigma, observed=np.array([1.2, 0.4, 2.2, 1.9, 0.7]))
    short = SamplerSettings(draws=300, tune=300, seed=11)
    free = sample_posterior(model, short, "time-limit-test").idata
    limited = sample_posterior(model, short, "time-limit-test", time_limit=1e6).idata
    for name in ("mu", "sigma"):
        assert np.array_equal(free.posterior[name].values, limited.posterior[name].values)
    # 4 chains of 2 million draws would take minutes: stopped at once instead
    with pytest.raises(SamplingStopped) as stopped:
        sample_posterior(model, SamplerSettings(draws=2_000_000, tune=300, seed=11),
                         "time-limit-test", time_limit=0.5)
    assert stopped.value.limit == 0.5 and stopped.value.seconds >= 0.5
