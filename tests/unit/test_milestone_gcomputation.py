"""Population-averaged milestone quantities by g-computation against their closed forms:
with a log-normal family, the first milestone of a new patient is log-normal with the
frailty's and the error's variances added, whatever block of draws it is computed in."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from jdmbayes.data.validate import load_series
from jdmbayes.estimands.milestones import (
    DRAW_BLOCK,
    MAX_NEW_PATIENTS,
    Draws,
    derived_quantities,
    group_survival_curves,
    new_patient_count,
    population_times,
)
from jdmbayes.models.indexing import index_milestones
from jdmbayes.models.spec import load_model_spec
from tests.conftest import BUNDLED

ALPHA, DISPERSION, SIGMA_PATIENT = np.array([2.3, 2.9, 3.4]), np.array([0.6, 0.5, 0.7]), 0.5


def fixed_draws(size: int, data) -> Draws:
    design = data.design
    return Draws(chains=1, draws=size, intercept=np.tile(ALPHA, (size, 1)),
                 dispersion=np.tile(DISPERSION, (size, 1)),
                 beta_group=np.zeros((size, len(design.effect_labels))),
                 cell_deviation=np.zeros((size, max(len(design.cells), 1))),
                 beta_covariate=np.zeros((size, design.covariates.shape[1])),
                 sigma_patient=np.full(size, SIGMA_PATIENT),
                 frailty=np.zeros((size, data.n_patients)),
                 frailty_sd=np.zeros((size, data.n_patients)))


def test_first_milestone_matches_its_closed_form_in_every_block():
    data = index_milestones(load_series(BUNDLED), load_model_spec("rash_milestones"))
    size, replicates = DRAW_BLOCK + 50, 20                 # two blocks, the second partial
    quantities = derived_quantities(fixed_draws(size, data), data, "lognormal", replicates,
                                    np.random.default_rng(11))
    first = data.outcomes[0]
    spread = np.hypot(SIGMA_PATIENT, DISPERSION[0])
    new_patients = data.n_patients * replicates
    for week in (4, 12, 24):
        p = stats.norm.cdf((np.log(week) - ALPHA[0]) / spread)
        for group in ("overall", *(g for g in _groups(quantities) if g != "overall")):
            got = quantities[(first, f"p_event_by_wk{week}", group)]
            assert got.shape == (size,) and np.all((got >= 0) & (got <= 1))
            for rows in (slice(0, DRAW_BLOCK), slice(DRAW_BLOCK, size)):
                part = got[rows]
                se = np.sqrt(p * (1 - p) / (new_patients * part.size))
                assert abs(part.mean() - p) < 4.5 * se, (week, group, rows, part.mean(), p)
    median = quantities[(first, "median_time_wk", "overall")]
    # the sample median of n new patients: SD about 1.2533 * spread * e^alpha / sqrt(n)
    se = 1.2533 * spread * np.exp(ALPHA[0]) / np.sqrt(new_patients * size)
    assert abs(median.mean() - np.exp(ALPHA[0])) < 4.5 * se + 0.01


def test_probabilities_integrate_the_last_gaps_error_out():
    """Each new patient counts by their probability of the milestone given their frailty and
    earlier milestones: without a frailty, the first milestone's probability is its closed
    form in every draw, not a share of simulated patients (steps of 1/(new patients))."""
    import dataclasses

    data = index_milestones(load_series(BUNDLED), load_model_spec("rash_milestones"))
    size = 40
    draws = dataclasses.replace(fixed_draws(size, data), sigma_patient=np.zeros(size))
    first = data.outcomes[0]
    for family, cdf in (("lognormal", stats.norm.cdf), ("loglogistic", stats.logistic.cdf),
                        ("weibull", lambda z: -np.expm1(-np.exp(z)))):
        quantities = derived_quantities(draws, data, family, 20, np.random.default_rng(3))
        for week in (4, 12, 24):
            truth = cdf((np.log(week) - ALPHA[0]) / DISPERSION[0])
            got = quantities[(first, f"p_event_by_wk{week}", "overall")]
            np.testing.assert_allclose(got, truth, rtol=1e-12, atol=1e-15)


def test_later_milestones_agree_with_simulated_times():
    """The second milestone (a sum of two gaps sharing the frailty): the probabilities'
    average over draws against 2,000,000 patients simulated directly."""
    data = index_milestones(load_series(BUNDLED), load_model_spec("rash_milestones"))
    size, replicates = 300, 20
    quantities = derived_quantities(fixed_draws(size, data), data, "lognormal", replicates,
                                    np.random.default_rng(4))
    rng = np.random.default_rng(5)
    m = 2_000_000
    u = SIGMA_PATIENT * rng.standard_normal(m)
    second = (np.exp(ALPHA[0] + u + DISPERSION[0] * rng.standard_normal(m))
              + np.exp(ALPHA[1] + u + DISPERSION[1] * rng.standard_normal(m)))
    for week in (12, 24, 52):
        truth = (second <= week).mean()
        got = quantities[(data.outcomes[1], f"p_event_by_wk{week}", "overall")].mean()
        # no more spread than counting 300 x 480 simulated patients, plus the reference's
        se = np.hypot(np.sqrt(truth * (1 - truth) / (size * data.n_patients * replicates)),
                      np.sqrt(truth * (1 - truth) / m))
        assert abs(got - truth) < 4.5 * se, (week, got, truth)


def test_survival_curves_match_the_closed_form():
    data = index_milestones(load_series(BUNDLED), load_model_spec("rash_milestones"))
    grid = np.array([4.0, 10.0, 30.0])
    rows = group_survival_curves(fixed_draws(DRAW_BLOCK + 50, data), data, "lognormal", grid,
                                 np.random.default_rng(12), 0.9, max_draws=300,
                                 replicates=20)
    first = data.outcomes[0]
    spread = np.hypot(SIGMA_PATIENT, DISPERSION[0])
    overall = [r for r in rows if r["outcome"] == first and r["group"] == "overall"]
    assert [r["time_wk"] for r in overall] == list(grid)
    for r in overall:
        truth = stats.norm.sf((np.log(r["time_wk"]) - ALPHA[0]) / spread)
        # the median across draws of each draw's survival among 480 new patients
        assert abs(r["survival_median"] - truth) < 0.03
        assert r["survival_low"] <= r["survival_median"] <= r["survival_high"]


def _groups(quantities) -> list[str]:
    return sorted({group for (_, _, group) in quantities})


def test_new_patients_per_draw_are_capped():
    """At most MAX_NEW_PATIENTS new patients per draw (rounded up to whole replicates of every
    modelled patient), at least one per patient: memory and time stay bounded at any size."""
    data = index_milestones(load_series(BUNDLED), load_model_spec("rash_milestones"))
    assert new_patient_count(24, 40) == 40                 # the bundled series: unchanged
    draws = fixed_draws(10, data)
    shapes = {times.shape for _, _, times in
              population_times(draws, data, "weibull", 200, np.random.default_rng(1))}
    # 84 = ceil(MAX_NEW_PATIENTS / 24), not the 200 asked for
    assert MAX_NEW_PATIENTS == 2000 and shapes == {(10, 3, 24 * 84)}


def test_probabilities_count_overflowed_earlier_times_as_not_reached():
    """Under very wide priors a simulated earlier time can overflow (inf, or NaN from inf x
    0): such a patient has not reached the earlier milestone, as when the times were
    counted, and the share stays a number."""
    from jdmbayes.estimands.milestones import event_probabilities

    times = np.array([[[1.0, np.nan, np.inf, 2.0], [3.0, np.nan, np.inf, 50.0]]])
    shares = event_probabilities("weibull", (4, 12), times, np.zeros((1, 2, 4)),
                                 np.array([[0.5, 0.5]]), 1)
    # patients 1 and 4 reached the first milestone at 1 and 2 weeks; the gap's median is
    # exp(sigma * log log 2) = 0.69 weeks, so by 4 weeks the second is nearly certain
    first = 1 - np.exp(-((4 - 1.0) ** 2)) + 1 - np.exp(-((4 - 2.0) ** 2))
    assert np.isfinite(shares).all()
    assert shares[0][0] == pytest.approx(first / 4, rel=1e-12)


def test_blocks_on_threads_give_the_values_of_one_thread(monkeypatch):
    """The blocks of draws run on threads; every random number is drawn before them, so
    the values are those of one thread, to the bit, whatever the threads' order."""
    import time

    from jdmbayes.estimands import blocks

    data = index_milestones(load_series(BUNDLED), load_model_spec("rash_milestones"))
    size = 3 * DRAW_BLOCK + 7
    rng = np.random.default_rng(8)
    draws = fixed_draws(size, data)
    draws.sigma_patient = rng.uniform(0.2, 0.9, size)       # every draw its own values
    draws.beta_group = rng.normal(0, 0.4, draws.beta_group.shape)

    class Shuffled(blocks.ThreadPoolExecutor):    # the first block finishes last
        def submit(self, fn, *args, **kwargs):
            def slow_first(*a, **k):
                time.sleep(0.05 * (a[0].start == 0))
                return fn(*a, **k)
            return super().submit(slow_first, *args, **kwargs)

    monkeypatch.setattr(blocks, "ThreadPoolExecutor", Shuffled)
    results = {}
    for threads in (1, 3):
        monkeypatch.setattr(blocks, "usable_cores", lambda threads=threads: threads)
        results[threads] = derived_quantities(draws, data, "weibull", 10,
                                              np.random.default_rng(4))
    assert list(results[1]) == list(results[3])
    for key, values in results[1].items():
        np.testing.assert_array_equal(values, results[3][key], err_msg=str(key))
    assert len({results[1][("rash_improvement", "p_event_by_wk12", "overall")][i]
                for i in range(size)}) == size
