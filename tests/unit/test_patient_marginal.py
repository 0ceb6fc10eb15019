"""Each patient's marginal log-likelihood (baseline and change integrated out by adaptive
Gauss-Hermite quadrature) against brute-force integration on a dense grid, and against the
exact Gaussian marginal for a log-normal measure."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import special

from jdmbayes.estimands.patient_marginal import marginal_loglik, trigamma, value_derivatives
from jdmbayes.models.longitudinal import gaussian_loglik, gaussian_marginal
from tests.unit.test_longitudinal_specs import series_and_spec

VISITS = [[0, 4, 8], [0, 3], [0, 2, 9, 20], [0]]


def posterior(size=2):
    return {"intercept": np.array([0.4, 0.9])[:size], "sigma_intercept": np.full(size, 0.8),
            "change": np.array([0.7, 0.3])[:size], "sigma_change": np.full(size, 0.6),
            "rho_baseline_change": np.array([-0.5, 0.3])[:size],
            "tau_weeks": np.full(size, 5.0), "beta_group": np.full((size, 1), -0.4),
            "cell_deviation": np.zeros((size, 2)), "beta_covariate": np.zeros((size, 0)),
            "spline_coef": np.zeros((size, 0))}


def brute_force(post, data, spec, noise):
    """log of the integral on a 801 x 801 grid over [-8, 8]^2 (trapezoid)."""
    grid = np.linspace(-8, 8, 801)
    u, v = np.meshgrid(grid, grid, indexing="ij")
    out = np.empty((post["intercept"].size, data.n_patients))
    for s in range(post["intercept"].size):
        rho = post["rho_baseline_change"][s]
        for i in range(data.n_patients):
            use = data.patient == i
            week = data.week[use]
            h = 1 - np.exp(-week / post["tau_weeks"][s])
            arm_b = data.design.label("arm", data.design.patient_levels[i][0]) == "B"
            fixed = post["change"][s] + post["beta_group"][s, 0] * arm_b
            base = post["intercept"][s] + post["sigma_intercept"][s] * u
            change = fixed + post["sigma_change"][s] * (rho * u + np.sqrt(1 - rho**2) * v)
            total = -0.5 * (u**2 + v**2) - np.log(2 * np.pi)
            for y, hj in zip(data.value[use], h):
                total = total + value_derivatives(spec.likelihood, y, base + change * hj,
                                                  noise, spec.upper or 1.0, False)[0]
            step = grid[1] - grid[0]
            out[s, i] = special.logsumexp(total) + 2 * np.log(step)
    return out


@pytest.mark.parametrize(("likelihood", "values", "noise"), [
    ("beta_binomial", [20, 31, 40, 12, 18, 30, 25, 44, 52, 35], 15.0),
    ("censored_normal", [0, 20, 31, 12, 18, 30, 52, 44, 52, 35], 0.15)])
def test_adaptive_quadrature_matches_brute_force(tmp_path, likelihood, values, noise):
    data, spec = series_and_spec(tmp_path, VISITS)
    data = replace(data, value=np.asarray(values, float))
    spec = replace(spec, likelihood=likelihood, upper=52, patient_effects="centred")
    post = {**posterior(), "noise": np.full(2, noise)}
    got = marginal_loglik(post, data, spec)
    # 5 x 5 adaptive points: within 0.01 of the grid (the integrands are nearly Gaussian)
    np.testing.assert_allclose(got, brute_force(post, data, spec, noise), atol=0.01)


def test_lognormal_marginal_is_the_exact_gaussian_one(tmp_path):
    data, spec = series_and_spec(tmp_path, VISITS)
    spec = replace(spec, patient_effects="centred", shape="plateau")
    post = {**posterior(), "noise": np.full(2, 0.2)}
    got = marginal_loglik(post, data, spec)
    for s in range(2):
        h = 1 - np.exp(-data.week / post["tau_weeks"][s])
        arm_b = np.array([data.design.label("arm", lv[0]) == "B"
                          for lv in data.design.patient_levels])
        fixed = post["change"][s] + post["beta_group"][s, 0] * arm_b
        resid = np.log(data.value) - post["intercept"][s] - fixed[data.patient] * h

        def total(x):
            return np.bincount(data.patient, x, minlength=data.n_patients)

        sums = {"n": total(np.ones_like(h)), "h": total(h), "hh": total(h * h),
                "r": total(resid), "hr": total(h * resid), "rr": total(resid**2),
                "log": np.log}
        s_b, s_d = post["sigma_intercept"][s], post["sigma_change"][s]
        rho = post["rho_baseline_change"][s]
        parts = gaussian_marginal(sums, s_b**2, rho * s_b * s_d, s_d**2, 0.04)
        exact = gaussian_loglik(sums, parts, 0.04, total(np.log(data.value)))
        # a Gaussian integrand: the adaptive rule is exact up to rounding
        np.testing.assert_allclose(got[s], exact, atol=1e-8)


@pytest.mark.parametrize("likelihood", ["beta_binomial", "censored_normal"])
def test_derivatives_match_finite_differences(likelihood):
    value = np.array([0.0, 7.0, 30.0, 52.0])
    mu = np.array([-0.3, 0.2, 0.6, 0.9]) if likelihood == "censored_normal" else \
        np.array([-1.0, 0.1, 1.2, 2.5])
    noise = 0.2 if likelihood == "censored_normal" else 12.0
    _, first, second = value_derivatives(likelihood, value, mu, noise, 52)
    eps = 1e-5
    up = value_derivatives(likelihood, value, mu + eps, noise, 52)
    down = value_derivatives(likelihood, value, mu - eps, noise, 52)
    np.testing.assert_allclose(first, (up[0] - down[0]) / (2 * eps), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(second, (up[1] - down[1]) / (2 * eps), rtol=1e-6, atol=1e-8)


def test_trigamma_matches_scipy():
    x = np.concatenate([np.geomspace(1e-6, 1e6, 2001),
                        np.random.default_rng(3).uniform(0.01, 60.0, 20000)])
    np.testing.assert_allclose(trigamma(x), special.polygamma(1, x), rtol=2e-11, atol=0)


def test_newton_does_not_halve_steps_lost_in_rounding(tmp_path, monkeypatch):
    """Near the mode a step's promised rise is below the integrand's rounding: it is taken
    whole, not halved HALVINGS times at the cost of an evaluation of the whole block each
    (before: 163 evaluations in the line searches of 8 Newton steps here). Integrand
    evaluations without derivatives: the 25 quadrature points plus at most three per
    Newton step."""
    import jdmbayes.estimands.patient_marginal as pm

    # ten values per patient, nearly binomial (large noise): values of the integrand in
    # the hundreds, whose rounding exceeds a converged step's rise
    data, spec = series_and_spec(tmp_path, [[0, 2, 4, 8, 12, 16, 20, 24, 30, 36]] * 4)
    rng = np.random.default_rng(8)
    data = replace(data, value=rng.binomial(52, 0.6, data.value.size).astype(float))
    spec = replace(spec, likelihood="beta_binomial", upper=52, patient_effects="centred")
    draws = 200
    post = {k: np.repeat(v[:1], draws, axis=0) for k, v in posterior().items()}
    post["intercept"] = post["intercept"] + 0.3 * rng.standard_normal(draws)
    post["noise"] = rng.uniform(100.0, 3000.0, draws)
    calls = {True: 0, False: 0}
    original = pm.log_integrand

    def counted(at, u, v, derivatives=True):
        calls[derivatives] += 1
        return original(at, u, v, derivatives)

    monkeypatch.setattr(pm, "log_integrand", counted)
    got = pm.marginal_loglik(post, data, spec, compiled=False)
    newton_steps = calls[True] - 1
    assert newton_steps > 0
    assert calls[False] - pm.NODES**2 <= 3 * newton_steps, calls
    # the compiled loop, patient by patient, gives the same numbers
    np.testing.assert_allclose(pm.marginal_loglik(post, data, spec), got, rtol=0, atol=1e-9)
    # and the answer is the brute-force one
    for s in range(2):
        one = {k: v[s:s + 1] for k, v in post.items()}
        np.testing.assert_allclose(got[s], brute_force(one, data, spec, post["noise"][s])[0],
                                   atol=0.01)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_draws_value_depends_on_that_draw_alone(tmp_path, monkeypatch, compiled):
    """Blocks of draws run on threads, and Newton stops draw by draw (patient by patient in
    the compiled loop): each draw's marginal log-likelihood is the same, bit for bit,
    computed alone, in any block, on one thread or several (the blocks are stacked in draw
    order)."""
    import jdmbayes.estimands.blocks as blocks
    import jdmbayes.estimands.patient_marginal as pm

    data, spec = series_and_spec(tmp_path, [[0, 2, 4, 8, 12, 16]] * 4)
    rng = np.random.default_rng(11)
    # values at the bounds and strong overdispersion: curvature clipped, so some draws
    # converge slowly while others are done
    data = replace(data, value=rng.choice([0.0, 3.0, 26.0, 49.0, 52.0], data.value.size))
    spec = replace(spec, likelihood="beta_binomial", upper=52, patient_effects="centred")
    draws = 7
    post = {k: np.repeat(v[:1], draws, axis=0) for k, v in posterior().items()}
    post["intercept"] = post["intercept"] + 1.5 * rng.standard_normal(draws)
    post["noise"] = np.array([1.2, 400.0, 2.0, 30.0, 1.5, 900.0, 5.0])
    monkeypatch.setattr(pm, "DRAW_BLOCK", 2)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 1)
    one_thread = pm.marginal_loglik(post, data, spec, compiled)
    monkeypatch.setattr(blocks, "usable_cores", lambda: 3)
    np.testing.assert_array_equal(pm.marginal_loglik(post, data, spec, compiled), one_thread)
    for s in (0, 3, 6):
        alone = pm.marginal_loglik({k: v[s:s + 1] for k, v in post.items()}, data, spec,
                                     compiled)
        np.testing.assert_array_equal(alone[0], one_thread[s])
    # the rows are the draws' own: reversing the draws reverses the rows
    reversed_post = {k: v[::-1] for k, v in post.items()}
    np.testing.assert_array_equal(pm.marginal_loglik(reversed_post, data, spec, compiled),
                                  one_thread[::-1])


def test_blocks_hold_a_bounded_number_of_values():
    """200 draws of the 300-patient score's 1,794 values per block, 22 of 16,000 (2,000
    patients x 8), 1 of a million."""
    from jdmbayes.estimands.patient_marginal import draws_per_block

    assert [draws_per_block(n) for n in (205, 1794, 16000, 10**6)] == [200, 200, 22, 1]


def test_compiled_loop_matches_numpy_on_varied_draws(tmp_path):
    """The compiled beta-binomial loop against the NumPy reference on draws from vague to
    sharp (noise 0.8 to 5,000, intercepts far from 0, strong correlation), values at and
    between the bounds: the same numbers to rounding (patient-by-patient stops move the
    mode by less than the tolerance, where the integrand is flat)."""
    rng = np.random.default_rng(21)
    data, spec = series_and_spec(tmp_path, [[0, 2, 4, 8, 12, 16, 30], [0, 6], [0],
                                            [0, 1, 3, 9, 27]])
    # values in no particular order of patients
    mixed = rng.permutation(data.value.size)
    data = replace(data, patient=data.patient[mixed], week=data.week[mixed],
                   value=rng.choice([0.0, 1.0, 9.0, 26.0, 51.0, 52.0], data.value.size))
    spec = replace(spec, likelihood="beta_binomial", upper=52, patient_effects="centred")
    draws = 60
    post = {k: np.repeat(v[:1], draws, axis=0) for k, v in posterior().items()}
    post["intercept"] = 2.0 * rng.standard_normal(draws)
    post["sigma_intercept"] = rng.uniform(0.05, 2.5, draws)
    post["sigma_change"] = rng.uniform(0.05, 2.0, draws)
    post["rho_baseline_change"] = rng.uniform(-0.95, 0.95, draws)
    post["noise"] = np.exp(rng.uniform(np.log(0.8), np.log(5000.0), draws))
    reference = marginal_loglik(post, data, spec, compiled=False)
    got = marginal_loglik(post, data, spec)
    assert np.isfinite(reference).all()
    np.testing.assert_allclose(got, reference, rtol=1e-10, atol=1e-8)


def test_compiled_digamma_and_trigamma_match_scipy():
    from jdmbayes.estimands.marginal_kernel import digamma as psi
    from jdmbayes.estimands.marginal_kernel import trigamma as psi1

    x = np.concatenate([np.geomspace(1e-6, 1e6, 2001),
                        np.random.default_rng(3).uniform(0.01, 60.0, 2000)])
    np.testing.assert_allclose([psi(t) for t in x], special.digamma(x), rtol=1e-13,
                               atol=1e-13)
    np.testing.assert_allclose([psi1(t) for t in x], special.polygamma(1, x), rtol=1e-12)


def test_degenerate_draws_give_no_error_and_agree_where_finite(tmp_path):
    """Draws whose link-scale means overflow (p exactly 0 or 1, so a Beta parameter is 0 and
    digamma divides by zero) give no exception from the compiled loop (division by zero
    follows NumPy); the draws NumPy's reference computes agree with it.

    Where p is exactly 1 (a link-scale mean above about 37), a value at the upper bound has
    probability 1, its limit, and the compiled loop finds it (each value's terms are rising
    factorials, 0 for no factor); the reference's lgamma(0) - lgamma(0) is nan there. Those
    patients are checked against the mirrored series (values N - y, every effect's sign
    flipped), where 1 - p is not 0 at the same points, and, where p is 1 at every point, 0.
    A value of 0 is then impossible in floating point: -inf."""
    data, spec = series_and_spec(tmp_path, [[0, 2, 4], [0, 6], [0], [0, 1, 3]])
    data = replace(data, value=np.array([52.0, 52, 52, 0, 0, 52, 26, 52, 0]))
    spec = replace(spec, likelihood="beta_binomial", upper=52, patient_effects="centred")
    post = {k: np.repeat(v[:1], 4, axis=0) for k, v in posterior().items()}
    post["intercept"] = np.array([40.0, -60.0, 800.0, 0.0])
    post["sigma_intercept"] = np.array([5.0, 5.0, 5.0, 400.0])
    post["noise"] = np.array([1e4, 0.5, 3.0, 2.0])
    with np.errstate(all="ignore"):
        reference = marginal_loglik(post, data, spec, compiled=False)
    got = marginal_loglik(post, data, spec)
    finite = np.isfinite(reference)
    assert 0 < finite.sum() < finite.size
    np.testing.assert_allclose(got[finite], reference[finite], rtol=1e-10, atol=1e-9)
    mirrored_post = {**post, **{k: -post[k] for k in ("intercept", "change", "beta_group",
                                                      "cell_deviation")}}
    with np.errstate(all="ignore"):
        mirrored = marginal_loglik(mirrored_post, replace(data, value=52.0 - data.value),
                                   spec, compiled=False)
    at_upper, at_zero = [0, 2], [1, 3]      # patients with every value 52; with a 0
    assert not finite[np.ix_([0, 2, 3], at_upper)].any()
    np.testing.assert_allclose(got[np.ix_([0, 3], at_upper)],
                               mirrored[np.ix_([0, 3], at_upper)], rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(got[2, at_upper], 0.0, atol=1e-12)
    assert np.isneginf(got[np.ix_([0, 2], at_zero)]).all()


def test_log_rising_is_the_log_of_the_exact_product():
    """log(x (x + 1) ... (x + m - 1)) against the product computed exactly (60 decimal
    digits), relative to the value where it is above 1: within 1.2e-15 (a few units in the
    last place) with up to 26 factors, where the difference of two log-gammas loses up to
    6e-11 (large x: both log-gammas near 1e7); with more factors it is that difference,
    within 1e-11."""
    from decimal import Decimal, localcontext

    from jdmbayes.estimands.marginal_kernel import RISING_PRODUCT_FACTORS, log_rising

    rng = np.random.default_rng(1)
    x = np.exp(rng.uniform(np.log(1e-8), np.log(1e6), 3000))
    m = rng.integers(0, 53, x.size)
    exact = np.empty(x.size)
    with localcontext() as context:
        context.prec = 60
        for i in range(x.size):
            product = Decimal(1)
            for k in range(int(m[i])):
                product *= Decimal(float(x[i])) + k
            exact[i] = float(product.ln())
    got = np.array([log_rising(float(xi), int(mi)) for xi, mi in zip(x, m)])
    error = np.abs(got - exact) / np.maximum(np.abs(exact), 1.0)
    few = m <= RISING_PRODUCT_FACTORS
    assert error[few].max() <= 1.2e-15
    assert error[~few].max() <= 1e-11
    assert (got[m == 0] == 0).all() and log_rising(0.0, 0) == 0.0
    old = special.gammaln(x + m) - special.gammaln(x)
    assert (np.abs(old - exact) / np.maximum(np.abs(exact), 1.0))[few].max() > 1e-12
