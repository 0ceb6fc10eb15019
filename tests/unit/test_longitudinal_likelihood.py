"""Longitudinal likelihood terms against scipy, and the expected value used for changes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from jdmbayes.estimands.longitudinal import draw_values, expected_value
from jdmbayes.models.longitudinal import observation_logp

MU = np.array([-1.2, 0.0, 0.4, 2.5])


def test_beta_binomial_matches_scipy():
    y = np.array([3.0, 26.0, 40.0, 52.0])
    phi = 12.0
    got = observation_logp("beta_binomial", y, MU, phi, 52).eval()
    p = special.expit(MU)
    expected = stats.betabinom(52, p * phi, (1 - p) * phi).logpmf(y)
    np.testing.assert_allclose(got, expected, rtol=1e-8)


def test_censored_normal_puts_floor_and_ceiling_mass_on_the_bounds():
    y = np.array([0.0, 13.0, 47.0, 52.0])
    mu, sigma = np.array([0.1, 0.3, 0.8, 0.95]), 0.12
    got = observation_logp("censored_normal", y, mu, sigma, 52).eval()
    expected = np.array([stats.norm(mu[0], sigma).logcdf(0.0),
                         stats.norm(mu[1], sigma).logpdf(13 / 52) - np.log(52),
                         stats.norm(mu[2], sigma).logpdf(47 / 52) - np.log(52),
                         stats.norm(mu[3], sigma).logsf(1.0)])
    # the bound masses use PyMC's normal_lcdf approximation (~1e-8 relative)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_lognormal_matches_scipy():
    y = np.array([250.0, 340.0, 420.0, 610.0])
    mu = np.log(y) + np.array([0.1, -0.2, 0.0, 0.3])
    got = observation_logp("lognormal", y, mu, 0.25, None).eval()
    # PyMC's normalising constant differs from scipy's by ~4e-9 (absolute)
    np.testing.assert_allclose(got, stats.lognorm(s=0.25, scale=np.exp(mu)).logpdf(y),
                               rtol=1e-8)


@pytest.mark.parametrize("likelihood,mu,noise,upper", [
    ("beta_binomial", 0.7, 8.0, 52), ("censored_normal", 0.9, 0.2, 52),
    ("lognormal", 5.8, 0.3, 1.0)])
def test_expected_value_matches_simulation_and_draws_stay_on_the_scale(likelihood, mu, noise,
                                                                      upper):
    rng = np.random.default_rng(5)
    draws = draw_values(likelihood, np.full(200000, mu), noise, upper, rng)
    assert draws.mean() == pytest.approx(expected_value(likelihood, mu, noise, upper),
                                         rel=5e-3)
    if likelihood != "lognormal":
        assert draws.min() >= 0 and draws.max() <= upper
    else:
        assert draws.min() > 0


@pytest.mark.parametrize("likelihood", ["beta_binomial", "censored_normal"])
def test_the_sampled_models_log_density_holds_no_random_generator(likelihood):
    """nutpie compiles the log density with every shared variable as a data array: a random
    generator in the graph (as ``pm.logp`` of a ``pm.Censored`` left) makes the fit die
    before sampling. The bundled CMAS spec with each bounded-score likelihood."""
    import dataclasses

    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.registry import kind_of
    from jdmbayes.models.spec import load_model_spec, load_prior_set
    from tests.conftest import BUNDLED

    spec = dataclasses.replace(load_model_spec("cmas"), likelihood=likelihood)
    kind = kind_of(spec)
    data = kind.index(load_series(str(BUNDLED)), spec)
    prior_set = kind.resolve_priors(data, spec, load_prior_set(spec.prior_set, spec))
    logp = kind.build(data, spec, prior_set).compile_logp()
    shared = {type(v).__name__ for v in logp.f.get_shared()}
    assert shared == {"TensorSharedVariable"}, shared


def test_sampled_score_leaves_only_the_binomial_coefficients_out_of_the_log_density():
    """The bundled CMAS model (beta-binomial, patient effects sampled): ``loglik_patient``
    is each patient's sum of SciPy's beta-binomial log pmf at the model's means, and the
    sampler's log density differs from the full one by exactly the sum of the log binomial
    coefficients (the data-only terms left out of every step)."""
    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.registry import kind_of
    from jdmbayes.models.spec import load_model_spec, load_prior_set
    from tests.conftest import BUNDLED

    spec = load_model_spec("cmas")
    kind = kind_of(spec)
    data = kind.index(load_series(str(BUNDLED)), spec)
    prior_set = kind.resolve_priors(data, spec, load_prior_set(spec.prior_set, spec))
    model = kind.build(data, spec, prior_set)
    point = model.initial_point()
    point["noise_log__"] = np.log(9.0)
    for name in point:          # away from the initial point's zeros: every term matters
        if name.startswith(("z_", "beta_")):
            point[name] = np.linspace(-0.8, 0.9, np.size(point[name])).reshape(
                np.shape(point[name]))
    outputs = model.replace_rvs_by_values([model["loglik_patient"], model["baseline"],
                                           model["patient_change"], model["tau_weeks"]])
    loglik, baseline, change, tau = model.compile_fn(
        outputs, inputs=model.value_vars, point_fn=True, on_unused_input="ignore")(point)
    mu = baseline[data.patient] + change[data.patient] * (1 - np.exp(-data.week / tau))
    p = special.expit(mu)
    expected = np.bincount(data.patient, stats.betabinom(52, p * 9.0, (1 - p) * 9.0).logpmf(
        data.value), minlength=data.n_patients)
    np.testing.assert_allclose(loglik, expected, rtol=1e-10)
    potential = model.compile_fn(model.replace_rvs_by_values([model["likelihood"]])[0],
                                 inputs=model.value_vars, point_fn=True,
                                 on_unused_input="ignore")(point)
    binomial = special.gammaln(53) - special.gammaln(data.value + 1) - special.gammaln(
        53 - data.value)
    assert loglik.sum() - potential == pytest.approx(binomial.sum(), rel=1e-12)
