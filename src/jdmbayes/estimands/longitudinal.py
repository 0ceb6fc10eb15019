"""Posterior predictions of longitudinal models, in NumPy from posterior draws.

* ``predict_observations``: a replicate of every observed value (the posterior predictive
  group); every draw stays on the scale (counts in 0..N, censored normal clipped to the
  floor and ceiling as censoring implies, log-normal positive).
* ``derived_quantities``: population-averaged expected scores by g-computation, as for the
  milestone models: every modelled patient keeps their covariates, is assigned the group and
  gets new patient effects from the population distribution (``replicates`` per patient).
  At every summary week :math:`w` (:func:`summary_weeks`): ``mean_change_wk<w>`` and
  ``p_change_ge_threshold_wk<w>``, the proportion of such patients whose expected change in
  the improving direction (spec ``improvement``) is at least the spec's ``threshold``; for a
  log-normal measure also ``mean_value_wk<w>``.
* contrasts: at every summary week the difference in mean change (``diff_mean_change_wk<w>``,
  'num-den') and, for a log-normal measure, the ratio of mean values (``ratio_mean_wk<w>``,
  'num/den'); and the whole-group effect in one row (``change_effect``: the group's main
  effect and its cell deviations, averaged over the other grouping columns' levels, on the
  model's link scale).
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

from jdmbayes.estimands.milestones import flat_draws, group_assignments
from jdmbayes.estimands.names import covariate_label
from jdmbayes.models.indexing import LongitudinalData
from jdmbayes.models.longitudinal import TimeShape, time_shape


def expected_value(likelihood: str, mu, noise, upper):
    """E[y | mu] on the measure's own scale."""
    if likelihood == "beta_binomial":
        return upper * special.expit(mu)
    if likelihood == "censored_normal":
        a, b = (0.0 - mu) / noise, (1.0 - mu) / noise
        inside = mu * (stats.norm.cdf(b) - stats.norm.cdf(a)) + noise * (
            stats.norm.pdf(a) - stats.norm.pdf(b))
        return upper * (inside + stats.norm.sf(b))
    if likelihood == "lognormal":
        return np.exp(mu + noise**2 / 2)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def draw_values(likelihood: str, mu, noise, upper, rng):
    if likelihood == "beta_binomial":
        # extreme draws (vague priors) give p of exactly 0 or 1 in floating point, which
        # numpy's beta sampler rejects; 1e-12 from the edge changes no count in 0..N
        p = np.clip(special.expit(mu), 1e-12, 1 - 1e-12)
        return rng.binomial(int(upper), rng.beta(p * noise, (1 - p) * noise)).astype(float)
    if likelihood == "censored_normal":
        return upper * np.clip(rng.normal(mu, noise), 0.0, 1.0)
    if likelihood == "lognormal":
        return np.exp(rng.normal(mu, noise))
    raise ValueError(f"unknown likelihood {likelihood!r}")


def posterior_arrays(posterior, shape: TimeShape | None = None) -> dict:
    """(S, ...) draws of the variables the predictions use (zeros for those the model does
    not have: no correlation is rho 0)."""
    size = posterior.sizes["chain"] * posterior.sizes["draw"]
    out = {name: flat_draws(posterior, name, size) for name in
           ("intercept", "sigma_intercept", "change", "sigma_change", "tau_weeks", "noise",
            "baseline", "patient_change", "beta_group", "cell_deviation", "beta_covariate",
            "rho_baseline_change")}
    coef = shape.n_coef if shape is not None else 0
    out["spline_coef"] = flat_draws(posterior, "spline_coef", size, (coef,))
    return out


def new_patient_effects(post: dict, size: int, count: int, rng) -> tuple[np.ndarray, ...]:
    """(u, w): standard normal baseline and change effects of ``count`` new patients per
    draw, correlated with the draw's rho."""
    u = rng.standard_normal((size, count))
    w = rng.standard_normal((size, count))
    rho = post.get("rho_baseline_change")
    if rho is not None and np.any(rho != 0):
        rho = rho[:, None]
        w = rho * u + np.sqrt(1.0 - rho**2) * w
    return u, w


def predict_observations(post: dict, data: LongitudinalData, spec, rng) -> np.ndarray:
    """(S, n_obs) replicated observations of the modelled patients."""
    mu = time_shape(data, spec).mean(post["baseline"][:, data.patient],
                                     post["patient_change"][:, data.patient], data.week, post)
    return draw_values(spec.likelihood, mu, post["noise"][:, None], spec.upper or 1.0, rng)


def group_location(post: dict, design, size: int) -> np.ndarray:
    """(S, C) group part of each cell's change: main effects plus pooled cell deviations."""
    location = post["beta_group"] @ design.cell_effects.T if design.effect_labels else \
        np.zeros((size, max(len(design.cells), 1)))
    if design.has_cell_deviations:
        location = location + post["cell_deviation"]
    return location


def summary_weeks(data: LongitudinalData, spec) -> tuple[tuple[float, ...], str]:
    """The weeks changes and contrasts are reported at, and how they were chosen: the spec's
    ``summary_weeks``; else from the series' visit schedule, the last week at which at least
    half the modelled patients have a value and the visit week nearest half of it; else
    (irregular visits) the median and the 90th percentile of the visit weeks, rounded."""
    if spec.summary_weeks:
        return tuple(spec.summary_weeks), "named by the spec"
    weeks = data.week[data.week > 0]
    if weeks.size == 0:
        return (float(spec.final_week),), "no visit after baseline: the spec's final_week"
    patients = {w: np.unique(data.patient[data.week == w]).size for w in np.unique(weeks)}
    common = sorted(w for w, n in patients.items() if n >= data.n_patients / 2)
    if common:
        last = common[-1]
        half = min(common, key=lambda w: (abs(w - last / 2), w))
        chosen = sorted({float(half), float(last)})
        return tuple(chosen), ("from the visit schedule: the last week at which at least half "
                               "the patients have a value, and the scheduled week nearest "
                               "half of it")
    chosen = sorted({float(max(1.0, round(q))) for q in np.quantile(weeks, [0.5, 0.9])})
    return tuple(chosen), ("from irregular visits: the median and the 90th percentile of the "
                           "visit weeks, rounded")


def week_label(week: float) -> str:
    return f"{week:g}"


def derived_quantities(post: dict, data: LongitudinalData, spec, rng,
                       ) -> dict[tuple[str, str, str], np.ndarray]:
    design = data.design
    size, n, r = post["intercept"].shape[0], data.n_patients, spec.replicates
    location = group_location(post, design, size)
    covariates = post["beta_covariate"] @ design.covariates.T if design.covariate_names else 0.0
    u, w = new_patient_effects(post, size, n * r, rng)
    baseline = post["intercept"][:, None] + post["sigma_intercept"][:, None] * u
    shape = time_shape(data, spec)
    noise = post["noise"][:, None]
    upper = spec.upper or 1.0
    sign = -1.0 if spec.improvement == "decrease" else 1.0
    weeks, _ = summary_weeks(data, spec)
    out = {}
    for group, cells in group_assignments(data).items():
        per_patient = location[:, cells] + covariates
        change = (post["change"][:, None] + np.repeat(per_patient, r, axis=1)
                  + post["sigma_change"][:, None] * w)

        def expected(week, change=change):
            mu = shape.mean(baseline, change, week, post)
            return expected_value(spec.likelihood, mu, noise, upper)

        at0 = expected(0.0)
        key = spec.measure
        # each week's expected values are computed once (they are the largest arrays here:
        # draws x patients x replicates); the rows keep their order
        proportions = {}
        final = None
        for week in weeks:
            at = expected(week)
            out[(key, f"mean_change_wk{week_label(week)}", group)] = (at - at0).mean(axis=1)
            if spec.likelihood == "lognormal":
                out[(key, f"mean_value_wk{week_label(week)}", group)] = at.mean(axis=1)
            proportions[(key, f"p_change_ge_threshold_wk{week_label(week)}", group)] = (
                sign * (at - at0) >= spec.threshold).mean(axis=1)
            if week == spec.final_week:
                final = at.mean(axis=1)
            del at
        out.update(proportions)
        out[(key, "mean_final", group)] = (final if final is not None
                                           else expected(spec.final_week).mean(axis=1))
    return out


def covariate_effects(post: dict, data: LongitudinalData, spec, rng
                      ) -> dict[tuple[str, str, str], np.ndarray]:
    """Each covariate's effect on the mean change by every summary week, on the score's own
    scale, by g-computation over the modelled patients (each keeps their group and other
    covariates, with new patient effects shared by both arms): a numeric covariate raised by
    one unit and by one SD against as observed; a text one at its level against its
    reference."""
    design = data.design
    if not design.covariate_names:
        return {}
    size, n, r = post["intercept"].shape[0], data.n_patients, spec.replicates
    location = group_location(post, design, size)[:, design.patient_cell]
    u, w = new_patient_effects(post, size, n * r, rng)
    baseline = post["intercept"][:, None] + post["sigma_intercept"][:, None] * u
    noise, upper = post["noise"][:, None], spec.upper or 1.0
    shape = time_shape(data, spec)
    at0 = expected_value(spec.likelihood, baseline, noise, upper)
    weeks, _ = summary_weeks(data, spec)

    def mean_change(covariates: np.ndarray, week: float) -> np.ndarray:
        per_patient = location + post["beta_covariate"] @ covariates.T
        change = (post["change"][:, None] + np.repeat(per_patient, r, axis=1)
                  + post["sigma_change"][:, None] * w)
        mu = shape.mean(baseline, change, week, post)
        return (expected_value(spec.likelihood, mu, noise, upper) - at0).mean(axis=1)

    out = {}
    for week in weeks:
        name = f"diff_mean_change_wk{week_label(week)}"
        for j, column in enumerate(design.covariate_names):
            info = design.covariate_info[column]
            high, low = design.covariates.copy(), design.covariates.copy()
            if info["kind"] == "indicator":
                high[:, j], low[:, j] = 1.0, 0.0
                out[(spec.measure, name, covariate_label(info, "-"))] = (
                    mean_change(high, week) - mean_change(low, week))
                continue
            label = covariate_label(info, "-")
            per_sd = high.copy()
            per_sd[:, j] += 1.0
            high[:, j] += 1.0 / info["sd"]
            observed = mean_change(low, week)
            out[(spec.measure, f"{name}_per_unit", label)] = mean_change(high, week) - observed
            out[(spec.measure, f"{name}_per_sd", label)] = mean_change(per_sd, week) - observed
    return out


def contrasts(quantities: dict, data: LongitudinalData, spec, post: dict) -> dict:
    """Per spec contrast: at every summary week the difference in mean change ('num-den')
    and, for a log-normal measure, the ratio of mean values ('num/den'); and the whole-group
    effect on the change (``change_effect``, link scale: main effect plus cell deviations,
    averaged over the other grouping columns' levels), one row."""
    design = data.design
    weeks, _ = summary_weeks(data, spec)
    measure = spec.measure
    size = post["intercept"].shape[0]
    location = group_location(post, design, size)
    out = {}
    for column, numerator, denominator in spec.contrasts:
        labels = [design.label(column, i) for i in range(len(design.levels[column]))]
        num_index = design.level_position(column, numerator)
        den_index = design.level_position(column, denominator)
        num, den = labels[num_index], labels[den_index]
        for week in weeks:
            label = week_label(week)
            out[(measure, f"diff_mean_change_wk{label}", f"{num}-{den}")] = (
                quantities[(measure, f"mean_change_wk{label}", num)]
                - quantities[(measure, f"mean_change_wk{label}", den)])
            if spec.likelihood == "lognormal":
                out[(measure, f"ratio_mean_wk{label}", f"{num}/{den}")] = (
                    quantities[(measure, f"mean_value_wk{label}", num)]
                    / quantities[(measure, f"mean_value_wk{label}", den)])
        out[(measure, "change_effect", f"{num}-{den}")] = design.level_difference(
            location, column, num_index, den_index)
    return out
