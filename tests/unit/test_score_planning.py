"""The single-arm score analysis without sampling: the integrand against PyMC's own model,
each patient's integral against brute-force quadrature, the population mean change against
Monte Carlo, and simulated trials against their truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from jdmbayes.models.spec import load_prior_set
from jdmbayes.planning import score_analysis as sa
from jdmbayes.planning.design import load_design
from jdmbayes.planning.laplace_kernel import _log_integrand, digamma, trigamma
from jdmbayes.planning.trials import simulate_scores

THETA = {"intercept": np.array([0.3]), "sigma_intercept": np.array([1.6]),
         "change": np.array([1.1]), "sigma_change": np.array([1.0]),
         "tau_weeks": np.array([7.0]), "noise": np.array([60.0])}


@pytest.fixture(scope="module")
def design():
    return load_design("single_arm_cmas")


def test_digamma_and_trigamma_match_scipy():
    for x in (1e-8, 1e-3, 0.3, 1.0, 5.9, 6.1, 40.0, 3000.0):
        assert digamma(x) == pytest.approx(special.digamma(x), rel=1e-10, abs=1e-10)
        assert trigamma(x) == pytest.approx(special.polygamma(1, x), rel=1e-10)


def test_the_integrand_is_the_package_models_log_density(design):
    # the PyMC model the trial is analysed with, at a point: its log density equals the
    # hyperparameters' prior plus, per patient, the kernel's log integrand minus log(2 pi),
    # less the log binomial coefficients, data-only terms the sampled density leaves out
    # (models.longitudinal.data_constant)
    rng = np.random.default_rng(0)
    analysis = sa.ScoreAnalysis(design, 6, load_prior_set("default", sa.score_spec(design)))
    obs = simulate_scores(design, 8.0, THETA, 6, rng)
    model = analysis.model
    import pymc as pm

    with model:
        pm.set_data(obs)
    logp = model.compile_logp(jacobian=True)
    point = model.initial_point()
    x = np.array([0.2, math.log(1.3), 0.9, math.log(0.8), math.log(6.0), math.log(80.0)])
    for j, name in enumerate(v.name for v in analysis.model.value_vars
                             if not v.name.startswith("z_")):
        point[name] = np.asarray(x[j])
    z_b, z_c = rng.normal(size=6), rng.normal(size=6)
    point["z_intercept"], point["z_change"] = z_b, z_c
    theta = analysis.theta(x)
    upper = design.upper
    constant = (special.gammaln(upper + 1) - special.gammaln(obs["obs_value"] + 1)
                - special.gammaln(upper - obs["obs_value"] + 1))
    offsets = np.searchsorted(obs["obs_patient"], np.arange(7))
    lg_phi = math.lgamma(upper + theta["noise"][0]) - math.lgamma(theta["noise"][0])
    kernel = sum(_log_integrand(z_b[i], z_c[i], *(float(theta[k][0]) for k in sa.HYPER),
                                upper, lg_phi, offsets[i], offsets[i + 1], obs["obs_week"],
                                obs["obs_value"], constant) - math.log(2 * math.pi)
                 for i in range(6))
    assert float(logp(point)) == pytest.approx(
        float(analysis._prior(x[None, :])[0]) + kernel - constant.sum(), abs=1e-8)


def brute_force(theta, week, value, upper):
    grid = np.linspace(-9, 9, 1201)
    zb, zc = np.meshgrid(grid, grid, indexing="ij")
    mu = (theta["intercept"][0] + theta["sigma_intercept"][0] * zb[..., None]
          + (theta["change"][0] + theta["sigma_change"][0] * zc[..., None])
          * (1 - np.exp(-week / theta["tau_weeks"][0])))
    p, phi = special.expit(mu), theta["noise"][0]
    log = (special.gammaln(upper + 1) - special.gammaln(value + 1)
           - special.gammaln(upper - value + 1) + special.betaln(value + p * phi,
                                                                 upper - value + (1 - p) * phi)
           - special.betaln(p * phi, (1 - p) * phi)).sum(-1) - 0.5 * (zb**2 + zc**2) \
        - math.log(2 * math.pi)
    top = log.max()
    return top + math.log(np.exp(log - top).sum() * (grid[1] - grid[0]) ** 2)


@pytest.mark.parametrize("values", [[20, 24, 30, 33, 35], [0, 0, 0, 0, 1], [50, 52, 52, 52, 52],
                                    [10, 40, 12, 45, 30]])
def test_each_patients_integral_matches_brute_force(values):
    week, value = np.array([0.0, 4, 8, 12, 24]), np.array(values, float)
    exact = brute_force(THETA, week, value, 52.0)
    patient = np.zeros(5, int)
    # measured: Laplace's method is within 0.03 of the log integral even for a patient at
    # the floor or ceiling, 3 nodes per axis (the default) within 0.025, 5 within 0.003
    for nodes, tolerance in ((1, 0.03), (3, 0.025), (5, 0.003)):
        old, sa.AGQ_NODES = sa.AGQ_NODES, nodes
        try:
            found = float(sa.patient_marginal(THETA, patient, week, value, 1, 52.0)[0])
        finally:
            sa.AGQ_NODES = old
        assert found == pytest.approx(exact, abs=tolerance), nodes


def test_mean_change_is_the_population_average_over_new_patients():
    rng = np.random.default_rng(1)
    u, v = rng.standard_normal(2_000_000), rng.standard_normal(2_000_000)
    base = THETA["intercept"][0] + THETA["sigma_intercept"][0] * u
    change = THETA["change"][0] + THETA["sigma_change"][0] * v
    h = 1 - math.exp(-24 / THETA["tau_weeks"][0])
    monte_carlo = 52 * np.mean(special.expit(base + change * h) - special.expit(base))
    assert sa.mean_change(THETA, 24.0, 52.0)[0] == pytest.approx(monte_carlo, abs=0.01)
    delta = sa.change_for_mean(THETA, 7.5, 24.0, 52.0)
    assert sa.mean_change({**THETA, "change": np.array([delta])}, 24.0, 52.0)[0] == \
        pytest.approx(7.5, abs=1e-9)
    # a mean change the score's range cannot give gets the nearest attainable one
    assert sa.change_for_mean(THETA, 60.0, 24.0, 52.0) == sa.LIMIT
    assert sa.change_for_mean(THETA, -60.0, 24.0, 52.0) == -sa.LIMIT


def test_simulated_trials_have_the_drawn_mean_change(design):
    # a very large single arm without dropout: the observed mean change by week 24 is the
    # population mean change asked for
    rng = np.random.default_rng(2)
    from dataclasses import replace

    no_dropout = replace(design, dropout_per_year=0.0)
    obs = simulate_scores(no_dropout, 9.0, THETA, 40_000, rng)
    at0 = obs["obs_value"][obs["obs_week"] == 0]
    at24 = obs["obs_value"][obs["obs_week"] == 24]
    assert at24.mean() - at0.mean() == pytest.approx(9.0, abs=0.25)
    # sorted by patient, baseline for everyone, whole counts within the score's range
    assert np.all(np.diff(obs["obs_patient"]) >= 0) and at0.size == 40_000
    assert np.all((obs["obs_value"] >= 0) & (obs["obs_value"] <= 52))
    assert np.all(obs["obs_value"] == np.round(obs["obs_value"]))
    # with dropout some later visits are missing, never the baseline
    dropped = simulate_scores(replace(design, dropout_per_year=2.0), 9.0, THETA, 2000, rng)
    assert (dropped["obs_week"] == 0).sum() == 2000
    assert (dropped["obs_week"] == 24).sum() < 2000 * 0.9
