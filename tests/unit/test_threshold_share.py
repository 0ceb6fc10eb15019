"""The share of new patients whose expected change reaches the threshold, each counted by the
probability of their change given their baseline, against counting 400,000 simulated
patients per draw, for both measures with a closed-form inverse, both directions and a
correlated baseline and change (no sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from jdmbayes.estimands.longitudinal import change_needed, expected_value, threshold_share


class Shape:
    """h(week) and the spline's departure g(week), one per draw."""

    def __init__(self, h, g):
        self.h, self.g = np.asarray(h, float)[:, None], np.asarray(g, float)[:, None]

    def values(self, week, post):
        return self.h

    def offset(self, week, post):
        return self.g


@pytest.mark.parametrize(("likelihood", "upper", "sign", "threshold", "post", "h", "g"), [
    # a CMAS-like score: gain of 5 points of 52 (alpha on the logit scale)
    ("beta_binomial", 52.0, 1.0, 5.0,
     {"intercept": [0.5, -0.5, 1.5], "sigma_intercept": [1.0, 0.6, 1.4],
      "change": [0.8, 0.2, 1.2], "sigma_change": [0.7, 0.4, 1.1],
      "rho_baseline_change": [0.0, -0.4, 0.5], "noise": [1.0, 1.0, 1.0]},
     [0.9, 0.6, 1.0], [0.0, 0.3, -0.2]),
    # a CAT-BM-like score: fall of 3 points of 17
    ("beta_binomial", 17.0, -1.0, 3.0,
     {"intercept": [-0.5, 0.0, 0.4], "sigma_intercept": [0.8, 1.2, 0.5],
      "change": [-1.0, -0.3, -1.6], "sigma_change": [0.5, 0.9, 0.3],
      "rho_baseline_change": [0.3, 0.0, -0.6], "noise": [1.0, 1.0, 1.0]},
     [0.7, 1.0, 0.4], [0.0, 0.0, 0.1]),
    # an LDH-like measure: fall of 50 U/L (log scale, noise SD 0.3)
    ("lognormal", 1.0, -1.0, 50.0,
     {"intercept": [5.7, 5.5, 6.0], "sigma_intercept": [0.4, 0.3, 0.5],
      "change": [-0.3, -0.3, -0.5], "sigma_change": [0.3, 0.0, 0.2],
      "rho_baseline_change": [-0.3, 0.0, 0.2], "noise": [0.3, 0.2, 0.4]},
     [0.8, 1.0, 0.5], [0.0, 0.05, 0.0]),
    # a threshold of 0 in the increasing direction
    ("lognormal", 1.0, 1.0, 0.0,
     {"intercept": [5.7, 5.5, 6.0], "sigma_intercept": [0.4, 0.3, 0.5],
      "change": [0.1, -0.1, 0.0], "sigma_change": [0.3, 0.2, 0.2],
      "rho_baseline_change": [-0.3, 0.0, 0.2], "noise": [0.3, 0.2, 0.4]},
     [0.8, 1.0, 0.5], [0.0, 0.0, 0.0]),
])
def test_share_agrees_with_counting_simulated_patients(likelihood, upper, sign, threshold,
                                                       post, h, g):
    post = {k: np.asarray(v, float) for k, v in post.items()}
    shape = Shape(h, g)
    rng = np.random.default_rng(7)
    m = 400_000
    u, z = rng.standard_normal((3, m)), rng.standard_normal((3, m))
    rho = post["rho_baseline_change"][:, None]
    w = rho * u + np.sqrt(1 - rho**2) * z
    baseline = post["intercept"][:, None] + post["sigma_intercept"][:, None] * u
    fixed = np.repeat(post["change"][:, None], m, axis=1)
    change = fixed + post["sigma_change"][:, None] * w
    noise = post["noise"][:, None]
    before = expected_value(likelihood, baseline, noise, upper)
    after = expected_value(likelihood, baseline + change * shape.h + shape.g, noise, upper)
    counted = (sign * (after - before) >= threshold).mean(axis=1)
    needed = change_needed(post, baseline, before, likelihood, upper, sign, threshold)
    share = threshold_share(post, shape, 24.0, needed, u, fixed, sign)
    assert share.shape == (3,) and np.all((share >= 0) & (share <= 1))
    assert np.all((counted > 0.02) & (counted < 0.98)), counted      # informative cases
    se = np.sqrt(counted * (1 - counted) / m)
    np.testing.assert_array_less(np.abs(share - counted), 4.5 * se + 1e-12)
    # no patient effect on the change: the share is the count of those whose fixed change
    # reaches the threshold, exactly
    still = dict(post, sigma_change=np.zeros(3))
    after = expected_value(likelihood, baseline + fixed * shape.h + shape.g, noise, upper)
    exact = (sign * (after - before) >= threshold).mean(axis=1)
    np.testing.assert_allclose(threshold_share(still, shape, 24.0, needed, u, fixed, sign),
                               exact, atol=1e-5)


def test_a_censored_normal_measure_is_left_to_counting():
    post = {k: np.ones(2) for k in ("intercept", "sigma_intercept", "change", "sigma_change",
                                    "noise")}
    zero = np.zeros((2, 5))
    assert change_needed(post, zero, zero, "censored_normal", 52.0, 1.0, 5.0) is None
