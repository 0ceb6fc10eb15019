"""A bounded score's patient baseline and change integrated out of the likelihood by
adaptive Gauss-Hermite quadrature (``patient_effects = "integrated"``): each patient's
log-likelihood equals brute-force integration on a dense grid, stays finite far from the
data, and the patients' effects drawn afterwards follow their exact conditional law."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import get_mode
from pytensor.graph.traversal import ancestors
from scipy import special

from jdmbayes.estimands.patient_marginal import laplace_corrected_effects, value_derivatives
from jdmbayes.models.longitudinal import (
    build_longitudinal_model,
    integrand_logp,
    observation_logp,
)
from jdmbayes.models.spec import load_prior_set
from tests.unit.test_longitudinal_specs import series_and_spec
from tests.unit.test_patient_marginal import VISITS, brute_force, posterior

# the integrated model's functions are called a few times each: compiled without JIT (its
# Newton steps make a graph that numba compiles for minutes)
ONE_CALL = get_mode("FAST_COMPILE")
CASES = {"beta_binomial": ([20, 31, 40, 12, 18, 30, 25, 44, 52, 35], 15.0),
         "censored_normal": ([0, 20, 31, 12, 18, 30, 52, 44, 52, 35], 0.15)}


def integrated_model(tmp_path, likelihood):
    data, spec = series_and_spec(tmp_path, VISITS)
    values, _ = CASES[likelihood]
    data = replace(data, value=np.asarray(values, float))
    spec = replace(spec, likelihood=likelihood, upper=52, patient_effects="integrated",
                   shape="plateau")
    return data, spec, build_longitudinal_model(data, spec, load_prior_set("default", spec))


def point_fn(model, names):
    outputs = model.replace_rvs_by_values([model[name] for name in names])
    return model.compile_fn(outputs, inputs=model.value_vars, point_fn=True,
                            on_unused_input="ignore", mode=ONE_CALL)


def point_of(model, post, s, noise, log_scale=0.0):
    """The model's value variables at draw ``s`` of ``post``; ``log_scale`` moves both
    patient spreads by that much on the log scale."""
    point = model.initial_point()
    rho = post["rho_baseline_change"][s]
    point.update({"intercept": post["intercept"][s], "change": post["change"][s],
                  "sigma_intercept_log__": np.log(post["sigma_intercept"][s]) + log_scale,
                  "sigma_change_log__": np.log(post["sigma_change"][s]) + log_scale,
                  "lkj_corr_logodds__": np.log((1 + rho) / (1 - rho)),
                  "tau_weeks_log__": np.log(post["tau_weeks"][s]),
                  "beta_group": np.full(point["beta_group"].shape, post["beta_group"][s, 0]),
                  "noise_log__": np.log(noise)})
    return point


@pytest.mark.parametrize("likelihood", ["beta_binomial", "censored_normal"])
def test_integrand_logp_is_the_model_likelihood(likelihood):
    value = np.array([0.0, 7.0, 30.0, 51.0, 52.0])
    mu = np.array([-1.0, 0.1, 1.2, 2.5, 0.4]) if likelihood == "beta_binomial" else \
        np.array([-0.3, 0.2, 0.6, 0.9, 1.1])
    # float64 (a Python float would become a float32 constant in PyTensor)
    noise = np.float64(12.0 if likelihood == "beta_binomial" else 0.2)
    direct = integrand_logp(likelihood, value, mu, noise, 52).eval()
    # the sampled model uses the same written-out terms (observation_logp); the
    # beta-binomial's are checked against PyMC's own distribution
    np.testing.assert_array_equal(direct, observation_logp(likelihood, value, mu, noise,
                                                           52).eval())
    if likelihood == "beta_binomial":
        p = special.expit(mu)
        reference = pm.logp(pm.BetaBinomial.dist(n=52, alpha=p * noise,
                                                 beta=(1 - p) * noise), value).eval()
        np.testing.assert_allclose(direct, reference, rtol=1e-10, atol=1e-10)
    # PyMC's log normal cdf and SciPy's log_ndtr agree to about 5e-8 (relative)
    np.testing.assert_allclose(direct, value_derivatives(likelihood, value, mu, noise, 52,
                                                         derivatives=False)[0], rtol=1e-7)


# stated accuracy of the 5 x 5 adaptive rule on the log scale, per patient (measured: at
# most 4e-4 for the beta-binomial, 4.4e-3 for the censored normal, whose floor value makes
# one patient's integrand the prior cut by a normal cdf)
TOLERANCE = {"beta_binomial": 1e-3, "censored_normal": 6e-3}


@pytest.mark.parametrize("likelihood", ["beta_binomial", "censored_normal"])
def test_integrated_equals_brute_force_integration(tmp_path, likelihood):
    data, spec, model = integrated_model(tmp_path, likelihood)
    _, noise = CASES[likelihood]
    post = {**posterior(), "noise": np.full(2, noise)}
    truth = brute_force(post, data, spec, noise)
    fn = point_fn(model, ["loglik_patient"])
    for s in range(2):
        got = fn(point_of(model, post, s, noise))[0]
        np.testing.assert_allclose(got, truth[s], atol=TOLERANCE[likelihood])


@pytest.mark.parametrize("likelihood", ["beta_binomial", "censored_normal"])
def test_integrated_is_finite_far_from_the_data(tmp_path, likelihood):
    """Patient spreads e^2.5 times and a hundredth of the test's: Newton steps from 0 reach
    modes many prior SDs out or a spike near 0, and every log-likelihood stays finite and
    below the log of the largest value the data allow (a probability at most 1 for the
    beta-binomial)."""
    data, spec, model = integrated_model(tmp_path, likelihood)
    _, noise = CASES[likelihood]
    post = {**posterior(), "noise": np.full(2, noise)}
    fn = point_fn(model, ["loglik_patient"])
    for log_scale in (2.5, np.log(0.01)):
        for noise_factor in (1.0, 0.05 if likelihood == "censored_normal" else 20.0):
            got = fn(point_of(model, post, 0, noise * noise_factor, log_scale))[0]
            assert np.all(np.isfinite(got)), (log_scale, noise_factor, got)
            if likelihood == "beta_binomial":
                assert np.all(got <= 1e-9)


def conditional_moments_on_grid(post, data, spec, noise, i):
    """Exact conditional mean and SD of patient ``i``'s baseline and change given the
    values (draw 0), by a 801 x 801 grid."""
    grid = np.linspace(-8, 8, 801)
    u, v = np.meshgrid(grid, grid, indexing="ij")
    rho = post["rho_baseline_change"][0]
    use = data.patient == i
    h = 1 - np.exp(-data.week[use] / post["tau_weeks"][0])
    arm_b = data.design.label("arm", data.design.patient_levels[i][0]) == "B"
    fixed = post["change"][0] + post["beta_group"][0, 0] * arm_b
    base = post["intercept"][0] + post["sigma_intercept"][0] * u
    change = fixed + post["sigma_change"][0] * (rho * u + np.sqrt(1 - rho**2) * v)
    total = -0.5 * (u**2 + v**2)
    for y, hj in zip(data.value[use], h):
        total = total + value_derivatives(spec.likelihood, y, base + change * hj, noise,
                                          spec.upper, False)[0]
    weight = np.exp(total - special.logsumexp(total))
    return [(np.sum(weight * x), np.sqrt(np.sum(weight * x**2) - np.sum(weight * x)**2))
            for x in (base, change)]


@pytest.mark.parametrize("likelihood", ["beta_binomial", "censored_normal"])
def test_patient_effects_drawn_afterwards_follow_their_conditional_law(tmp_path, likelihood):
    data, spec, model = integrated_model(tmp_path, likelihood)
    _, noise = CASES[likelihood]
    post = {**posterior(), "noise": np.full(2, noise)}
    mode, chol = point_fn(model, ["effect_mode", "effect_chol"])(point_of(model, post, 0,
                                                                        noise))
    draws = 20_000
    repeated = {k: np.repeat(v[:1], draws, axis=0) for k, v in post.items()}
    baseline, change = laplace_corrected_effects(
        repeated, data, spec, np.repeat(mode[None], draws, axis=0),
        np.repeat(chol[None], draws, axis=0), np.random.default_rng(3))
    for i in range(data.n_patients):
        for drawn, (mean, sd) in zip((baseline[:, i], change[:, i]),
                                     conditional_moments_on_grid(post, data, spec, noise, i)):
            # 20,000 draws that are nearly independent: means within 4 Monte Carlo SEs,
            # SDs within 4%
            assert abs(drawn.mean() - mean) < 4 * sd / np.sqrt(draws), (i, drawn.mean(), mean)
            assert abs(drawn.std() / sd - 1) < 0.04, (i, drawn.std(), sd)


def test_elementary_trigamma_replaces_pytensors_own():
    from pytensor.scalar.math import TriGamma

    from jdmbayes.models.quadrature import trigamma, with_elementary_trigamma

    x = np.geomspace(1e-4, 1e4, 401)
    np.testing.assert_allclose(trigamma(x), special.polygamma(1, x), rtol=1e-11)
    mu = pt.dvector("mu")
    second = pt.grad(pt.grad(integrand_logp("beta_binomial", np.array([3.0, 40.0]), mu,
                                            np.float64(9.0), 52).sum(), mu).sum(), mu)
    replaced = with_elementary_trigamma(second)

    def has_trigamma(expr):
        return any(isinstance(getattr(getattr(v.owner, "op", None), "scalar_op", None),
                              TriGamma) for v in ancestors([expr]))

    assert has_trigamma(second) and not has_trigamma(replaced)
    at = np.array([-0.7, 1.9])
    np.testing.assert_allclose(replaced.eval({mu: at}), second.eval({mu: at}), rtol=1e-10)


def test_no_gradient_flows_through_the_newton_steps_after_pymcs_rewrites(tmp_path):
    """PyMC rewrites the log density before its gradient (``rewrite_pregrad``); the
    gradient must still stop at the quadrature's node placement: no second derivative of
    a value's log-likelihood (trigamma, for the beta-binomial) in the sampler's gradient,
    and a stopped value's gradient is 0."""
    from pymc.pytensorf import rewrite_pregrad
    from pytensor.gradient import disconnected_grad
    from pytensor.scalar.math import TriGamma

    from jdmbayes.models.quadrature import stop_gradient

    x = pt.dvector("x")
    at = {x: np.array([2.0, 3.0])}
    for stop, expected in ((stop_gradient, special.digamma([2.0, 3.0])),
                           (disconnected_grad, special.digamma([2.0, 3.0])
                            + np.array([2.0, 3.0]) * special.polygamma(1, [2.0, 3.0]))):
        # PyTensor's own stop is removed by the rewrite (its gradient then includes the
        # trigamma term): the reason for stop_gradient
        rewritten = rewrite_pregrad((stop(pt.psi(x)) * x).sum())
        np.testing.assert_allclose(pytensor_grad(rewritten, x).eval(at), expected, rtol=1e-10)

    _, _, model = integrated_model(tmp_path, "beta_binomial")
    logp = rewrite_pregrad(model.logp())
    gradient = pytensor_grad(logp, model.value_vars)
    assert not any(isinstance(getattr(getattr(v.owner, "op", None), "scalar_op", None),
                              TriGamma) for v in ancestors(gradient))


def pytensor_grad(cost, wrt):
    from pytensor.gradient import grad

    return grad(cost, wrt)
