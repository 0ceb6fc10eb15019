"""Each AFT likelihood term against scipy's closed forms, including far tails."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
import pytest
from scipy import stats

from jdmbayes.models import families

ETA, SIGMA = 1.3, 0.6
TIMES = np.array([0.05, 0.7, 2.0, 3.67, 11.0, 60.0])


def scipy_dist(family):
    scale = np.exp(ETA)
    return {"weibull": stats.weibull_min(c=1 / SIGMA, scale=scale),
            "lognormal": stats.lognorm(s=SIGMA, scale=scale),
            "loglogistic": stats.fisk(c=1 / SIGMA, scale=scale)}[family]


def ev(expr):
    return np.asarray(expr.eval(), float)


@pytest.mark.parametrize("family", ("weibull", "lognormal", "loglogistic"))
def test_log_density_and_survival_match_scipy(family):
    log_t = pt.as_tensor(np.log(TIMES))
    dist = scipy_dist(family)
    np.testing.assert_allclose(ev(families.log_density(family, log_t, ETA, SIGMA)),
                               dist.logpdf(TIMES), rtol=1e-10)
    # PyMC's normal_lccdf (erfcx-based) is accurate to ~1e-6 relative: negligible here
    rtol = 2e-6 if family == "lognormal" else 1e-10
    np.testing.assert_allclose(ev(families.log_survival(family, log_t, ETA, SIGMA)),
                               dist.logsf(TIMES), rtol=rtol)
    np.testing.assert_allclose(families.np_log_survival(family, TIMES, ETA, SIGMA),
                               dist.logsf(TIMES), rtol=1e-8)


@pytest.mark.parametrize("family", ("weibull", "lognormal", "loglogistic"))
def test_interval_term_matches_closed_form_and_is_stable(family):
    dist = scipy_dist(family)
    lo, hi = np.array([0.5, 4.0, 8.0, 200.0]), np.array([0.9, 8.0, 8.000001, 260.0])
    got = ev(families.log_interval(family, pt.as_tensor(np.log(lo)), pt.as_tensor(np.log(hi)),
                                   ETA, SIGMA))
    # a 1e-6-week interval: S(L) - S(R) ~ f(L) * width, which naive subtraction loses
    with np.errstate(divide="ignore"):
        expected = np.log(dist.sf(lo) - dist.sf(hi))
    expected[2] = np.log(dist.pdf(8.0000005) * 1e-6)
    expected[3] = dist.logsf(lo[3]) + np.log1p(-np.exp(dist.logsf(hi[3]) - dist.logsf(lo[3])))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert np.isfinite(got).all()


@pytest.mark.parametrize("family", ("weibull", "lognormal", "loglogistic"))
def test_simulated_errors_have_the_family_distribution(family):
    rng = np.random.default_rng(7)
    times = np.exp(ETA + SIGMA * families.np_standard_error(family, rng, 40000))
    result = stats.kstest(times, scipy_dist(family).cdf)
    assert result.pvalue > 0.001
    median = np.exp(ETA + SIGMA * families.np_median_log_epsilon(family))
    assert median == pytest.approx(scipy_dist(family).median(), rel=1e-12)
