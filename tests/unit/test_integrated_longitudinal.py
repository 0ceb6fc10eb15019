"""Log-normal longitudinal models with the patient effects integrated out, and the
g-computation's one-dimensional integrals.

Known answers: the marginal log-likelihood is scipy's multivariate normal of the log values
(covariance sigma^2 I + Z Sigma Z') and brute-force quadrature of the conditional likelihood
over both patient effects; the conditional draws have the mean and covariance of the normal
posterior of a linear mixed model, computed here by matrix inversion; the population means
match Monte Carlo with a million new patients."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytensor
import pytest
from scipy import special, stats

from jdmbayes.estimands import longitudinal as pl
from jdmbayes.models.longitudinal import build_longitudinal_model, patient_effects_form
from jdmbayes.models.spec import load_prior_set
from tests.unit.test_longitudinal_specs import series_and_spec

# four patients (arms A, A, B, B), one of them with a single value
VISITS = [[0, 4, 8], [0, 3], [0, 2, 9, 20], [0]]
TRUTH = {"intercept": 0.3, "sigma_intercept": 0.4, "change": 0.5, "beta_group": -0.3,
         "sigma_change": 0.25, "rho": -0.5, "tau_weeks": 6.0, "noise": 0.2}


def model_and_point(tmp_path, **spec_changes):
    data, spec = series_and_spec(tmp_path, VISITS)
    spec = replace(spec, **spec_changes)
    model = build_longitudinal_model(data, spec, load_prior_set("default", spec))
    values = {"intercept": TRUTH["intercept"], "sigma_intercept": TRUTH["sigma_intercept"],
              "change": TRUTH["change"], "beta_group": np.array([TRUTH["beta_group"]]),
              "sigma_change": TRUTH["sigma_change"], "lkj_corr": (TRUTH["rho"] + 1) / 2,
              "tau_weeks": TRUTH["tau_weeks"], "noise": TRUTH["noise"]}
    point = {}
    for rv in model.free_RVs:
        value = np.asarray(values[rv.name], float)
        transform = model.rvs_to_transforms.get(rv)
        value_var = model.rvs_to_values[rv]
        point[value_var.name] = (transform.forward(value).eval() if transform is not None
                                 else value)
    output = model.replace_rvs_by_values([model["loglik_patient"]])[0]
    loglik = pytensor.function(model.value_vars, output)(
        *[point[v.name] for v in model.value_vars])
    return data, spec, model, loglik


def patient_design(data, i, spec):
    """Log values, fixed mean and Z = [1, h] of patient i at TRUTH."""
    use = data.patient == i
    week = data.week[use]
    h = 1 - np.exp(-week / TRUTH["tau_weeks"]) if spec.shape == "plateau" else week / 24.0
    arm_b = data.design.label("arm", data.design.patient_levels[i][0]) == "B"
    fixed = TRUTH["change"] + TRUTH["beta_group"] * arm_b
    mean = TRUTH["intercept"] + fixed * h
    return np.log(data.value[use]), mean, np.column_stack([np.ones_like(h), h])


def covariance(random_change=True, correlation=True):
    s_b, s_d = TRUTH["sigma_intercept"], TRUTH["sigma_change"] * random_change
    rho = TRUTH["rho"] * correlation
    return np.array([[s_b**2, rho * s_b * s_d], [rho * s_b * s_d, s_d**2]])


def test_auto_integrates_a_lognormal_measure_only(tmp_path):
    data, spec = series_and_spec(tmp_path, VISITS)
    assert patient_effects_form(data, spec) == "integrated"
    assert patient_effects_form(data, replace(spec, likelihood="beta_binomial",
                                              upper=52)) == "non_centred"


def test_auto_centres_the_levels_of_a_bounded_score_with_five_values_each(tmp_path):
    from jdmbayes.kinds.registry import kind_of

    # medians of 5 and 4 values per patient
    for visits, form, other in (([[0, 4, 8, 12, 16]] * 3 + [[0, 4]], "centred_level",
                                 "non_centred"),
                                ([[0, 4, 8, 12]] * 3 + [[0, 4, 8, 12, 16]], "non_centred",
                                 "centred_level")):
        data, spec = series_and_spec(tmp_path, visits)
        spec = replace(spec, likelihood="beta_binomial", upper=52)
        assert patient_effects_form(data, spec) == form
        # the retry ladder's other parameterisation
        assert kind_of(spec).reparameterised(data, spec).patient_effects == other
    for centred in ("centred", "centred_baseline"):
        assert kind_of(spec).reparameterised(
            data, replace(spec, patient_effects=centred)).patient_effects == "non_centred"


@pytest.mark.parametrize("changes", [{}, {"correlation": False}, {"random_change": False},
                                     {"shape": "linear", "final_week": 24}])
def test_marginal_loglik_is_the_multivariate_normal_of_the_log_values(tmp_path, changes):
    data, spec, model, loglik = model_and_point(tmp_path, **changes)
    assert "baseline" not in model.named_vars
    sigma = covariance(spec.random_change, spec.correlation)
    for i in range(data.n_patients):
        log_y, mean, z = patient_design(data, i, spec)
        cov = TRUTH["noise"] ** 2 * np.eye(len(log_y)) + z @ sigma @ z.T
        expected = stats.multivariate_normal(mean, cov).logpdf(log_y) - log_y.sum()
        assert loglik[i] == pytest.approx(expected, abs=1e-10)


def test_marginal_loglik_matches_brute_force_quadrature(tmp_path):
    """Integrate the conditional log-normal likelihood over both standard-normal patient
    effects (u, v) on a 80 x 80 Gauss-Hermite grid."""
    data, spec, _, loglik = model_and_point(tmp_path)
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    weights = weights / np.sqrt(2 * np.pi)
    u, v = np.meshgrid(nodes, nodes, indexing="ij")
    wuv = np.outer(weights, weights)
    s_b, s_d, rho = TRUTH["sigma_intercept"], TRUTH["sigma_change"], TRUTH["rho"]
    b, d = s_b * u, s_d * (rho * u + np.sqrt(1 - rho**2) * v)
    for i in range(data.n_patients):
        log_y, mean, z = patient_design(data, i, spec)
        mu = mean[:, None, None] + b[None] + z[:, 1, None, None] * d[None]
        conditional = stats.lognorm(s=TRUTH["noise"], scale=np.exp(mu)).logpdf(
            np.exp(log_y)[:, None, None]).sum(axis=0)
        brute = special.logsumexp(conditional, b=wuv)
        # the grid's own error is ~2e-8 here (the likelihood is narrower than the prior)
        assert loglik[i] == pytest.approx(brute, abs=1e-6)


def test_conditional_patient_effects_have_the_normal_posterior(tmp_path):
    data, spec, _, _ = model_and_point(tmp_path)
    size = 200_000
    post = {"intercept": np.full(size, TRUTH["intercept"]),
            "sigma_intercept": np.full(size, TRUTH["sigma_intercept"]),
            "change": np.full(size, TRUTH["change"]),
            "beta_group": np.full((size, 1), TRUTH["beta_group"]),
            "cell_deviation": np.zeros((size, 2)), "beta_covariate": np.zeros((size, 0)),
            "sigma_change": np.full(size, TRUTH["sigma_change"]),
            "rho_baseline_change": np.full(size, TRUTH["rho"]),
            "tau_weeks": np.full(size, TRUTH["tau_weeks"]), "noise": np.full(size, TRUTH["noise"]),
            "spline_coef": np.zeros((size, 0))}
    baseline, change = pl.conditional_patient_effects(post, data, spec,
                                                      np.random.default_rng(1))
    sigma = covariance()
    for i in range(data.n_patients):
        log_y, mean, z = patient_design(data, i, spec)
        precision = np.linalg.inv(sigma) + z.T @ z / TRUTH["noise"] ** 2
        cov = np.linalg.inv(precision)
        centre = cov @ z.T @ (log_y - mean) / TRUTH["noise"] ** 2
        arm_b = data.design.label("arm", data.design.patient_levels[i][0]) == "B"
        fixed = TRUTH["change"] + TRUTH["beta_group"] * arm_b
        drawn = np.column_stack([baseline[:, i] - TRUTH["intercept"], change[:, i] - fixed])
        se = np.sqrt(np.diag(cov) / size)
        np.testing.assert_allclose(drawn.mean(axis=0), centre, atol=5 * se.max())
        np.testing.assert_allclose(np.cov(drawn.T), cov, rtol=0.02, atol=1e-5)


@pytest.mark.parametrize(("likelihood", "location", "spread", "noise", "upper"), [
    ("beta_binomial", 1.2, 1.5, 8.0, 52), ("beta_binomial", -0.5, 3.0, 8.0, 52),
    ("censored_normal", 0.8, 0.3, 0.15, 52), ("lognormal", 5.6, 0.5, 0.3, 1.0)])
def test_population_means_match_monte_carlo(likelihood, location, spread, noise, upper):
    rng = np.random.default_rng(7)
    mu = location + spread * rng.standard_normal(1_000_000)
    values = pl.expected_value(likelihood, mu, noise, upper)
    got = pl.population_mean(likelihood, np.array(location), np.array(spread**2), noise, upper)
    assert float(got) == pytest.approx(values.mean(), abs=4 * values.std() / 1000)
    if likelihood != "lognormal":
        nodes = pl.QUADRATURE_NODES
        try:
            pl.QUADRATURE_NODES = 128
            finer = pl.population_mean(likelihood, np.array(location), np.array(spread**2),
                                       noise, upper)
        finally:
            pl.QUADRATURE_NODES = nodes
        assert float(got) == pytest.approx(float(finer), abs=2e-6 * upper)


def test_mean_change_integrates_correlated_baseline_and_change(tmp_path):
    """The g-computed mean change of a beta-binomial score equals Monte Carlo over new
    patients with correlated baseline and change (400,000 per draw)."""
    data, spec = series_and_spec(tmp_path, [[0, 4]] * 4, "summary_weeks = [12]")
    spec = replace(spec, likelihood="beta_binomial", upper=52)
    size = 3
    post = {"intercept": np.array([0.5, 1.0, -0.2]), "sigma_intercept": np.full(size, 0.8),
            "change": np.array([0.6, 0.2, 1.0]), "sigma_change": np.full(size, 0.5),
            "rho_baseline_change": np.array([-0.6, 0.0, 0.4]),
            "tau_weeks": np.full(size, 6.0), "noise": np.full(size, 10.0),
            "beta_group": np.full((size, 1), -0.3), "cell_deviation": np.zeros((size, 2)),
            "beta_covariate": np.zeros((size, 0)), "spline_coef": np.zeros((size, 0))}
    got = pl.derived_quantities(post, data, spec, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    u = rng.standard_normal((size, 400_000))
    w = post["rho_baseline_change"][:, None] * u + np.sqrt(
        1 - post["rho_baseline_change"][:, None] ** 2) * rng.standard_normal(u.shape)
    h = 1 - np.exp(-12 / 6.0)
    for group, shift in (("A", 0.0), ("B", -0.3)):
        base = post["intercept"][:, None] + 0.8 * u
        change = post["change"][:, None] + shift + 0.5 * w
        diff = 52 * (special.expit(base + change * h) - special.expit(base))
        expected = diff.mean(axis=1)
        se = diff.std(axis=1) / np.sqrt(u.shape[1])
        np.testing.assert_allclose(got[("crp", "mean_change_wk12", group)], expected,
                                   atol=float(5 * se.max()))


def test_new_patients_per_draw_are_capped():
    assert pl.new_patient_count(25, 40) == 40           # the bundled series: unchanged
    assert pl.new_patient_count(300, 40) == 7
    assert pl.new_patient_count(5000, 40) == 1


def test_integrated_is_accepted_for_a_bounded_score_and_unknown_forms_refused(tmp_path):
    from jdmbayes.errors import InputError
    from jdmbayes.models.spec import load_model_spec

    path = tmp_path / "score.toml"
    text = ('[model]\nname = "score"\nkind = "longitudinal"\nmeasure = "score"\n'
            'likelihood = "beta_binomial"\nupper = 52\ngrouping = ["arm"]\n'
            'patient_effects = "{form}"\n')
    path.write_text(text.format(form="integrated"))
    assert load_model_spec(str(path)).patient_effects == "integrated"
    path.write_text(text.format(form="marginal"))
    with pytest.raises(InputError) as err:
        load_model_spec(str(path))
    assert "patient_effects" in str(err.value) and "'marginal'" in str(err.value)
