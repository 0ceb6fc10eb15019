"""The milestone model's likelihood equals the gap-time closed form, term by term."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, stats

from jdmbayes.models.indexing import (
    EXACT,
    INTERVAL,
    LATENT,
    RIGHT,
    MilestoneData,
    build_group_design,
)
from jdmbayes.models.milestones import build_milestone_model
from jdmbayes.models.spec import load_model_spec, load_prior_set


def tiny_data(kind, hi, lo):
    subjects = pd.DataFrame({"subject_id": [f"S{i}" for i in range(len(kind))],
                             "drug": "a", "dose_start_mg_bid": 5.0})
    spec = dataclasses.replace(load_model_spec("rash_milestones"), grouping=(), contrasts=(),
                               frailty="centred")   # the conditional form: terms by frailty
    design = build_group_design(subjects, spec, "subjects.csv")
    return MilestoneData(subjects["subject_id"].tolist(), spec.outcomes, np.array(kind),
                         np.array(hi, float), np.array(lo, float),
                         np.full(len(kind), 100.0), design), spec


def point_loglik(model, values):
    fn = model.compile_fn(model.replace_rvs_by_values([model.potentials[0]])[0],
                          inputs=model.value_vars, point_fn=True, on_unused_input="ignore")
    point = model.initial_point()
    point.update(values)
    return float(fn(point))


def test_exact_right_interval_and_left_terms_match_scipy():
    kind = [[EXACT, EXACT, INTERVAL], [EXACT, EXACT, RIGHT], [EXACT, RIGHT, 4], [EXACT, EXACT,
                                                                                INTERVAL]]
    hi = [[1.0, 2.5, 12.0], [0.6, 2.0, 30.0], [1.5, 20.0, 1.0], [1.0, 3.0, 8.0]]
    lo = [[0, 0, 8.0], [0, 0, 0], [0, 0, 0], [0, 0, 0.0]]   # last: left-censored (0, 8]
    data, spec = tiny_data(kind, hi, lo)
    prior_set = load_prior_set("default", spec)
    model = build_milestone_model(data, spec, prior_set)
    alpha = np.array([0.1, 0.5, 2.2])
    sigma = np.array([0.4, 0.5, 0.9])
    frailty = np.array([0.2, -0.1, 0.3, 0.0])
    values = {"intercept": alpha, "dispersion_log__": np.log(sigma),
              "sigma_patient_log__": np.log(0.5), "frailty": frailty}
    got = point_loglik(model, values)

    def dist(i, k):
        return stats.weibull_min(c=1 / sigma[k], scale=np.exp(alpha[k] + frailty[i]))

    expected = 0.0
    expected += dist(0, 0).logpdf(1.0) + dist(0, 1).logpdf(1.5)
    expected += np.log(dist(0, 2).sf(8.0 - 2.5) - dist(0, 2).sf(12.0 - 2.5))
    expected += dist(1, 0).logpdf(0.6) + dist(1, 1).logpdf(1.4) + dist(1, 2).logsf(28.0)
    expected += dist(2, 0).logpdf(1.5) + dist(2, 1).logsf(18.5)          # then nothing
    expected += dist(3, 0).logpdf(1.0) + dist(3, 1).logpdf(2.0) + dist(3, 2).logcdf(5.0)
    assert got == pytest.approx(expected, rel=1e-9)


def test_latent_time_marginalises_to_the_interval_probability():
    """A middle milestone in (2, 5] followed by an exact one at 9: integrating the latent
    time out of the model's density must give the double integral of the closed form."""
    data, spec = tiny_data([[EXACT, LATENT, EXACT]], [[1.0, 5.0, 9.0]], [[0, 2.0, 0]])
    model = build_milestone_model(data, spec, load_prior_set("default", spec))
    alpha, sigma = np.array([0.0, 0.8, 1.2]), np.array([0.5, 0.7, 0.6])
    fixed = {"intercept": alpha, "dispersion_log__": np.log(sigma),
             "sigma_patient_log__": np.log(0.5), "frailty": np.array([0.0])}
    fn = model.compile_fn(model.replace_rvs_by_values([model.potentials[0]])[0],
                          inputs=model.value_vars, point_fn=True, on_unused_input="ignore")
    point = model.initial_point()
    point.update(fixed)

    def density_in_v(v):
        point["v_latent_interval__"] = np.array([np.log(v / (1 - v))])
        return np.exp(float(fn(point)))

    got, _ = integrate.quad(density_in_v, 1e-9, 1 - 1e-9, limit=200)
    d = [stats.weibull_min(c=1 / s, scale=np.exp(a)) for a, s in zip(alpha, sigma)]
    expected, _ = integrate.quad(lambda t: d[1].pdf(t - 1.0) * d[2].pdf(9.0 - t), 2.0, 5.0)
    expected *= d[0].pdf(1.0)
    assert got == pytest.approx(expected, rel=1e-6)


def test_two_chained_latent_times_marginalise_to_the_double_integral():
    """Two middle milestones in overlapping intervals, (2, 6] and (4, 8], then an exact one
    at 10: the second latent time starts at the first, and integrating both out of the
    model's density gives the closed-form double integral."""
    data, spec = tiny_data([[LATENT, LATENT, EXACT]], [[6.0, 8.0, 10.0]], [[2.0, 4.0, 0]])
    model = build_milestone_model(data, spec, load_prior_set("default", spec))
    alpha, sigma = np.array([1.0, 0.6, 0.9]), np.array([0.6, 0.7, 0.5])
    fn = model.compile_fn(model.replace_rvs_by_values([model.potentials[0]])[0],
                          inputs=model.value_vars, point_fn=True, on_unused_input="ignore")
    point = model.initial_point()
    point.update({"intercept": alpha, "dispersion_log__": np.log(sigma),
                  "sigma_patient_log__": np.log(0.5), "frailty": np.array([0.0])})

    def density(v2, v1):
        point["v_latent_interval__"] = np.log(np.array([v1, v2]) / (1 - np.array([v1, v2])))
        return np.exp(float(fn(point)))

    got, _ = integrate.dblquad(density, 1e-9, 1 - 1e-9, 1e-9, 1 - 1e-9, epsabs=1e-13)
    d = [stats.weibull_min(c=1 / s, scale=np.exp(a)) for a, s in zip(alpha, sigma)]
    expected, _ = integrate.dblquad(lambda t2, t1: d[0].pdf(t1) * d[1].pdf(t2 - t1)
                                    * d[2].pdf(10.0 - t2), 2.0, 6.0,
                                    lambda t1: max(4.0, t1), 8.0, epsabs=1e-13)
    assert got == pytest.approx(expected, rel=1e-5)


def test_latent_times_of_several_patients_are_each_patients_own():
    """Patients whose latent cells are built together (milestone by milestone) have the
    log-likelihood of the same patients built one at a time."""
    kind = [[LATENT, LATENT, EXACT], [EXACT, LATENT, INTERVAL], [LATENT, EXACT, RIGHT]]
    hi = [[6.0, 8.0, 10.0], [1.0, 5.0, 12.0], [3.0, 4.5, 30.0]]
    lo = [[2.0, 4.0, 0], [0, 2.0, 8.0], [1.0, 0, 0]]
    values = {"intercept": np.array([1.0, 0.6, 0.9]),
              "dispersion_log__": np.log([0.6, 0.7, 0.5]), "sigma_patient_log__": np.log(0.5)}
    v = {0: [0.3, 0.6], 1: [0.45], 2: [0.8]}
    data, spec = tiny_data(kind, hi, lo)
    together = build_milestone_model(data, spec, load_prior_set("default", spec))
    # the latent cells of the joint model in its own order (patient, milestone)
    joint_v = [v[i][j] for i, j in ((0, 0), (0, 1), (1, 0), (2, 0))]
    assert [(i, k) for i, k in data.latent] == [(0, 0), (0, 1), (1, 1), (2, 0)]
    total = point_loglik(together, {**values, "frailty": np.array([0.1, -0.2, 0.3]),
                                    "v_latent_interval__": np.log(np.array(joint_v)
                                                                  / (1 - np.array(joint_v)))})
    separate = 0.0
    for i, f in enumerate((0.1, -0.2, 0.3)):
        one, _ = tiny_data([kind[i]], [hi[i]], [lo[i]])
        model = build_milestone_model(one, spec, load_prior_set("default", spec))
        vi = np.array(v[i])
        separate += point_loglik(model, {**values, "frailty": np.array([f]),
                                         "v_latent_interval__": np.log(vi / (1 - vi))})
    assert total == pytest.approx(separate, rel=1e-12)
