"""Longitudinal specs (issue 18): effects at the weeks the study asks about (the summary weeks
a spec names or the series' schedule gives, contrasts at each of them, the ratio of means of
a log-normal measure, a contrast's whole effect on the change in one row) and centred patient
effects that are the model's bivariate normal. No sampling: posterior draws are made up, so
every expected number is known."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from jdmbayes.data.validate import load_series
from jdmbayes.errors import InputError
from jdmbayes.estimands import longitudinal as pl
from jdmbayes.estimands.names import describe, is_key, null_value, weekly
from jdmbayes.models.indexing import index_longitudinal
from jdmbayes.models.spec import load_model_spec

SPEC = """
[model]
name = "crp"
kind = "longitudinal"
measure = "crp"
likelihood = "lognormal"
grouping = ["arm"]
contrasts = [["arm", "B", "A"]]
{weeks}
"""


def series_and_spec(tmp_path, visits, weeks_line=""):
    """Four patients (arms A, A, B, B) measured at ``visits[i]`` weeks."""
    folder = tmp_path / "series"
    folder.mkdir(exist_ok=True)
    (folder / "subjects.csv").write_text(
        "subject_id,followup_wk,arm\nP1,60,A\nP2,60,A\nP3,60,B\nP4,60,B\n")
    rows = [f"P{i + 1},crp,{w},{1 + w / 10}" for i, ws in enumerate(visits) for w in ws]
    (folder / "measurements.csv").write_text("subject_id,measure,week,value\n"
                                             + "\n".join(rows) + "\n")
    spec_path = tmp_path / "crp.toml"
    spec_path.write_text(textwrap.dedent(SPEC.format(weeks=weeks_line)))
    spec = load_model_spec(str(spec_path))
    return index_longitudinal(load_series(folder), spec), spec


def test_weeks_named_by_the_spec(tmp_path):
    data, spec = series_and_spec(tmp_path, [[0, 4]] * 4, "summary_weeks = [52, 12]")
    assert pl.summary_weeks(data, spec) == ((12.0, 52.0), "named by the spec")


def test_weeks_from_a_schedule(tmp_path):
    # weeks 4, 12 and 24 reach at least half the patients, 52 only one: the last common week
    # (24) and the scheduled week nearest half of it (12)
    visits = [[0, 4, 12, 24, 52], [0, 4, 12, 24], [0, 4, 12], [0, 4, 24]]
    data, spec = series_and_spec(tmp_path, visits)
    weeks, how = pl.summary_weeks(data, spec)
    assert weeks == (12.0, 24.0) and "visit schedule" in how


def test_weeks_from_irregular_visits(tmp_path):
    visits = [[0, 3, 11, 30], [0, 5, 13, 41], [0, 7, 17], [0, 2, 9, 23]]
    data, spec = series_and_spec(tmp_path, visits)
    weeks, how = pl.summary_weeks(data, spec)
    observed = np.array([w for ws in visits for w in ws if w > 0], float)
    expected = tuple(sorted({float(round(q)) for q in np.quantile(observed, [0.5, 0.9])}))
    assert weeks == expected and "irregular" in how


def test_bad_summary_weeks_refused(tmp_path):
    with pytest.raises(InputError) as err:
        series_and_spec(tmp_path, [[0, 4]] * 4, "summary_weeks = [0, 12]")
    assert "[summary_weeks]" in str(err.value)


def made_up_posterior(size, rng):
    return {"intercept": rng.normal(1.0, 0.1, size), "sigma_intercept": np.full(size, 0.2),
            "change": rng.normal(0.3, 0.1, size), "sigma_change": np.full(size, 0.1),
            "tau_weeks": np.full(size, 6.0), "noise": np.full(size, 0.3),
            "beta_group": rng.normal(-0.2, 0.05, (size, 1)),
            "cell_deviation": np.zeros((size, 2)), "beta_covariate": np.zeros((size, 0))}


def test_contrasts_at_every_week_ratio_of_means_and_whole_effect(tmp_path):
    data, spec = series_and_spec(tmp_path, [[0, 4]] * 4, "summary_weeks = [12, 24]")
    rng = np.random.default_rng(3)
    post = made_up_posterior(200, rng)
    quantities = pl.derived_quantities(post, data, spec, np.random.default_rng(4))
    out = pl.contrasts(quantities, data, spec, post)
    for week in ("12", "24"):
        np.testing.assert_allclose(out[("crp", f"diff_mean_change_wk{week}", "B-A")],
                                   quantities[("crp", f"mean_change_wk{week}", "B")]
                                   - quantities[("crp", f"mean_change_wk{week}", "A")])
        np.testing.assert_allclose(out[("crp", f"ratio_mean_wk{week}", "B/A")],
                                   quantities[("crp", f"mean_value_wk{week}", "B")]
                                   / quantities[("crp", f"mean_value_wk{week}", "A")])
    # one grouping column: the whole effect is the main effect itself
    np.testing.assert_allclose(out[("crp", "change_effect", "B-A")], post["beta_group"][:, 0])
    # log-normal with common random numbers across arms and exp(mu + noise^2/2) means: at
    # week w the arm B mean is the arm A mean with each simulated patient's log value moved
    # by beta * (1 - exp(-w / tau)); with beta the same for everyone the ratio is exactly
    # exp(beta * shape) when patients' changes are shifted alike
    shape24 = 1 - np.exp(-24 / 6.0)
    ratio = out[("crp", "ratio_mean_wk24", "B/A")]
    np.testing.assert_allclose(ratio, np.exp(post["beta_group"][:, 0] * shape24), rtol=1e-10)


def test_names_of_weekly_quantities():
    assert weekly("diff_mean_change_wk52_per_sd") == ("diff_mean_change", "52", "_per_sd")
    assert weekly("median_time_wk") is None
    assert describe("cmas", "mean_change_wk52", "overall") == "mean change in CMAS by week 52"
    assert describe("ldh", "ratio_mean_wk12", "B/A") == "ratio of mean LDH at week 12, B/A"
    assert is_key("cmas", "diff_mean_change_wk12", "B-A")
    assert is_key("cmas", "mean_change_wk52", "overall")
    assert not is_key("cmas", "mean_change_wk52", "B")
    assert null_value("ratio_mean_wk24") == 1.0 and null_value("diff_mean_change_wk6") == 0.0


def test_centred_patient_effects_are_the_bivariate_normal(tmp_path):
    """Centred form: the baseline, then the change given the baseline; together they must be
    the bivariate normal of the model's maths (scipy's multivariate normal)."""
    from dataclasses import replace

    from scipy import stats

    from jdmbayes.models.longitudinal import build_longitudinal_model
    from jdmbayes.models.spec import load_prior_set

    data, spec = series_and_spec(tmp_path, [[0, 4, 8]] * 4)
    spec = replace(spec, patient_effects="centred", shape="linear")
    model = build_longitudinal_model(data, spec, load_prior_set("default", spec))
    alpha, s_int, delta, s_change, rho = 4.0, 0.5, 0.2, 0.3, -0.6
    beta = -0.1
    baseline = np.array([3.5, 4.2, 4.9, 3.9])
    change = np.array([0.1, 0.5, -0.2, 0.3])
    point = model.initial_point()
    point.update({"intercept": alpha, "sigma_intercept_log__": np.log(s_int),
                  "change": delta, "sigma_change_log__": np.log(s_change),
                  "lkj_corr_logodds__": np.log((rho + 1) / 2 / (1 - (rho + 1) / 2)),
                  "beta_group": np.array([beta]), "baseline": baseline,
                  "patient_change": change})
    logp = model.compile_logp(vars=[model["baseline"], model["patient_change"]], sum=True)
    arm_b = np.array([data.design.label("arm", lv[0]) == "B"
                      for lv in data.design.patient_levels])
    cov = [[s_int**2, rho * s_int * s_change], [rho * s_int * s_change, s_change**2]]
    expected = sum(stats.multivariate_normal([alpha, delta + beta * b], cov).logpdf([x, y])
                   for x, y, b in zip(baseline, change, arm_b))
    assert float(logp(point)) == pytest.approx(expected, rel=1e-10)


def test_centred_baselines_with_non_centred_changes(tmp_path):
    """``centred_baseline``: the baselines are parameters with their normal prior and each
    change is built from the baseline's standardised value and a standard normal, so
    together they are the same bivariate normal as in the other forms."""
    from dataclasses import replace

    from scipy import stats

    from jdmbayes.models.longitudinal import build_longitudinal_model
    from jdmbayes.models.spec import load_prior_set

    data, spec = series_and_spec(tmp_path, [[0, 4, 8]] * 4)
    spec = replace(spec, patient_effects="centred_baseline", shape="linear")
    model = build_longitudinal_model(data, spec, load_prior_set("default", spec))
    free = {v.name for v in model.free_RVs}
    assert {"baseline", "z_change"} <= free and not {"z_intercept", "patient_change"} & free
    alpha, s_int, delta, s_change, rho, beta = 4.0, 0.5, 0.2, 0.3, -0.6, -0.1
    baseline = np.array([3.5, 4.2, 4.9, 3.9])
    z = np.array([0.3, -1.2, 0.8, 0.05])
    point = model.initial_point()
    point.update({"intercept": alpha, "sigma_intercept_log__": np.log(s_int),
                  "change": delta, "sigma_change_log__": np.log(s_change),
                  "lkj_corr_logodds__": np.log((rho + 1) / 2 / (1 - (rho + 1) / 2)),
                  "beta_group": np.array([beta]), "baseline": baseline, "z_change": z})
    logp = model.compile_logp(vars=[model["baseline"], model["z_change"]], sum=True)
    expected = (stats.norm(alpha, s_int).logpdf(baseline).sum()
                + stats.norm().logpdf(z).sum())
    assert float(logp(point)) == pytest.approx(expected, rel=1e-10)
    arm_b = np.array([data.design.label("arm", lv[0]) == "B"
                      for lv in data.design.patient_levels])
    u = (baseline - alpha) / s_int
    change = delta + beta * arm_b + s_change * (rho * u + np.sqrt(1 - rho**2) * z)
    computed = model.compile_fn(model.replace_rvs_by_values([model["patient_change"]])[0],
                                inputs=model.value_vars, on_unused_input="ignore")
    np.testing.assert_allclose(computed(point), change, rtol=1e-12)


@pytest.mark.parametrize("shape", ["plateau", "linear"])
def test_centred_level_is_the_same_model_in_other_coordinates(tmp_path, shape):
    """``centred_level`` samples each patient's level at the mean of their own h(t) and the
    change given it. Mapped to (baseline, change), its joint density (likelihood included)
    equals the ``centred_baseline`` form's, each corrected by its own Jacobian; and its
    deterministic baselines and changes are the point's."""
    from dataclasses import replace

    from jdmbayes.models.longitudinal import build_longitudinal_model
    from jdmbayes.models.spec import load_prior_set

    data, spec = series_and_spec(tmp_path, [[0, 4, 8, 30], [0, 12], [0, 2, 50], [0, 6, 9]])
    spec = replace(spec, shape=shape, likelihood="beta_binomial", upper=52)
    data.value[:] = np.array([10, 14, 20, 30, 12, 18, 5, 9, 40, 22, 25, 26], float)
    priors = load_prior_set("default", spec)
    old = build_longitudinal_model(data, replace(spec, patient_effects="centred_baseline"),
                                   priors)
    new = build_longitudinal_model(data, replace(spec, patient_effects="centred_level"),
                                   priors)
    assert {"level", "z_change"} <= {v.name for v in new.free_RVs}
    alpha, s_b, delta, s_d, rho, beta, tau = -0.3, 0.7, 0.4, 0.5, 0.45, -0.2, 11.0
    b = np.array([-0.9, 0.2, -0.4, 0.6])
    d = np.array([0.8, -0.1, 1.3, 0.35])
    arm_b = np.array([data.design.label("arm", lv[0]) == "B"
                      for lv in data.design.patient_levels])
    m = delta + beta * arm_b
    h = (1 - np.exp(-data.week / tau)) if shape == "plateau" else data.week / spec.final_week
    h_mean = np.bincount(data.patient, h) / np.bincount(data.patient)
    common = {"intercept": alpha, "sigma_intercept_log__": np.log(s_b), "change": delta,
              "sigma_change_log__": np.log(s_d), "beta_group": np.array([beta]),
              "lkj_corr_logodds__": np.log((rho + 1) / (1 - rho)),
              "noise_log__": np.log(30.0)}
    if shape == "plateau":
        common["tau_weeks_log__"] = np.log(tau)
    u = (b - alpha) / s_b
    old_point = {**old.initial_point(), **common, "baseline": b,
                 "z_change": ((d - m) / s_d - rho * u) / np.sqrt(1 - rho**2)}
    level = b + h_mean * d
    mean_level = alpha + h_mean * m
    var_level = s_b**2 + 2 * h_mean * rho * s_b * s_d + h_mean**2 * s_d**2
    sd_change = s_b * s_d * np.sqrt(1 - rho**2) / np.sqrt(var_level)
    z = (d - m - (rho * s_b * s_d + h_mean * s_d**2) / var_level * (level - mean_level)
         ) / sd_change
    new_point = {**new.initial_point(), **common, "level": level, "z_change": z}
    old_bd = float(old.compile_logp()(old_point)) - 4 * np.log(s_d * np.sqrt(1 - rho**2))
    new_bd = float(new.compile_logp()(new_point)) - np.log(sd_change).sum()
    assert new_bd == pytest.approx(old_bd, rel=1e-10, abs=1e-10)
    effects = new.compile_fn(new.replace_rvs_by_values([new["baseline"],
                                                        new["patient_change"]]),
                             inputs=new.value_vars, on_unused_input="ignore")(new_point)
    np.testing.assert_allclose(effects[0], b, rtol=1e-12)
    np.testing.assert_allclose(effects[1], d, rtol=1e-12)


@pytest.mark.parametrize(("randomised", "control", "says"), [
    (True, "placebo", "with 'placebo' as the control group: contrasts against it estimate"),
    (True, None, "it declares no untreated control group"),
    (False, "placebo", "may be confounded (also those against the control group 'placebo')"),
    (None, None, "without an untreated comparison group changes over time cannot"),
])
def test_grant_text_describes_the_declared_design(randomised, control, says):
    from jdmbayes.results.grant import series_design

    manifest = {"data": {"description": "Two arms", "randomised": randomised,
                         "control": control},
                "models": {"m": {"spec": {"model": {"grouping": ["arm"]}}}}}
    assert says in series_design(manifest)
