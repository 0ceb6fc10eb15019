r"""Posterior predictions of longitudinal models, in NumPy from posterior draws.

* ``predict_observations``: a replicate of every observed value (the posterior predictive
  group); every draw stays on the scale (counts in 0..N, censored normal clipped to the
  floor and ceiling as censoring implies, log-normal positive).
* ``derived_quantities``: population-averaged expected scores by g-computation, as for the
  milestone models: every modelled patient keeps their covariates, is assigned the group and
  gets new patient effects from the population distribution. At every summary week
  :math:`w` (:func:`summary_weeks`): ``mean_change_wk<w>`` and
  ``p_change_ge_threshold_wk<w>``, the proportion of such patients whose expected change in
  the improving direction (spec ``improvement``) is at least the spec's ``threshold``; for a
  log-normal measure also ``mean_value_wk<w>``. Expected values at a week depend on the new
  patient's effects only through the link-scale mean :math:`\mu_t = \alpha + b + (m + d)
  h(t) + g(t)`, normal with mean :math:`\alpha + m h(t) + g(t)` and variance
  :math:`\sigma_{int}^2 + 2\rho\sigma_{int}\sigma_{change} h(t) + \sigma_{change}^2
  h(t)^2`, so means are integrals in one dimension: in closed form for a log-normal
  measure, by Gauss-Hermite quadrature (:data:`QUADRATURE_NODES` nodes) otherwise. The
  proportions need the joint law of baseline and change: Monte Carlo over new patients'
  baselines (``replicates`` per modelled patient, at most :data:`MAX_NEW_PATIENTS` per draw,
  common to all groups), each counted by the probability of their change given their
  baseline (:func:`threshold_share`; a censored normal measure counts simulated patients).
* contrasts: at every summary week the difference in mean change (``diff_mean_change_wk<w>``,
  'num-den') and, for a log-normal measure, the ratio of mean values (``ratio_mean_wk<w>``,
  'num/den'); and the whole-group effect in one row (``change_effect``: the group's main
  effect and its cell deviations, averaged over the other grouping columns' levels, on the
  model's link scale).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse, special, stats

from jdmbayes.estimands.milestones import (
    flat_draws,
    group_assignments,
    new_patient_count,
)
from jdmbayes.estimands.names import covariate_label
from jdmbayes.models.indexing import LongitudinalData
from jdmbayes.models.longitudinal import (
    TimeShape,
    gaussian_marginal,
    time_shape,
    values_per_patient,
)

# Gauss-Hermite nodes of the one-dimensional integrals over a new patient's effects; the
# integrands (expit, the censored normal's mean) are analytic, and 48 nodes agree with 128 to
# 2e-6 of the score's range at link-scale SDs up to 3 (tests/unit/test_integrated_longitudinal.py)
QUADRATURE_NODES = 48
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
    not have: no correlation is rho 0; the patients' ``baseline`` and ``patient_change``
    only when the draws have them, see :func:`with_patient_effects`)."""
    size = posterior.sizes["chain"] * posterior.sizes["draw"]
    names = ("intercept", "sigma_intercept", "change", "sigma_change", "tau_weeks", "noise",
             "beta_group", "cell_deviation", "beta_covariate", "rho_baseline_change")
    out = {name: flat_draws(posterior, name, size) for name in names}
    out.update({name: flat_draws(posterior, name, size) for name in
                ("baseline", "patient_change") if name in posterior})
    coef = shape.n_coef if shape is not None else 0
    out["spline_coef"] = flat_draws(posterior, "spline_coef", size, (coef,))
    return out


def with_patient_effects(post: dict, data: LongitudinalData, spec, rng) -> dict:
    """``post`` with every modelled patient's ``baseline`` and ``patient_change`` (S, n):
    as sampled, or, when the model integrated them out, new ones from the population
    distribution of each draw (prior draws: there are no data to condition on)."""
    if "baseline" in post:
        return post
    u, w = new_patient_effects(post, post["intercept"].shape[0], data.n_patients, rng)
    fixed = fixed_changes(post, data.design, data.design.patient_cell,
                          covariate_part(post, data))
    baseline = post["intercept"][:, None] + post["sigma_intercept"][:, None] * u
    return {**post, "baseline": baseline,
            "patient_change": fixed + post["sigma_change"][:, None] * w}


def covariate_part(post: dict, data: LongitudinalData):
    design = data.design
    return post["beta_covariate"] @ design.covariates.T if design.covariate_names else 0.0


def patient_summer(data: LongitudinalData):
    """A function (draws, values) -> (draws, n): the sums over each patient's values."""
    count = data.patient.size
    summing = sparse.csr_matrix((np.ones(count), (data.patient, np.arange(count))),
                                shape=(data.n_patients, count))

    def per_patient(x: np.ndarray) -> np.ndarray:
        return (summing @ x.T).T

    return per_patient


# draws per block when the patient effects are drawn from their conditional law (bounds the
# memory to a block's (draws, values) arrays)
CONDITIONAL_BLOCK = 250


def conditional_patient_effects(post: dict, data: LongitudinalData, spec, rng
                                ) -> tuple[np.ndarray, np.ndarray]:
    """(S, n) baselines and changes of the modelled patients drawn from their exact
    conditional law given each posterior draw and the patient's values, for a log-normal
    model with the patient effects integrated out
    (:mod:`jdmbayes.models.longitudinal`'s docstring; the same
    :func:`~jdmbayes.models.longitudinal.gaussian_marginal`)."""
    size, n = post["intercept"].shape[0], data.n_patients
    shape = time_shape(data, spec)
    fixed = fixed_changes(post, data.design, data.design.patient_cell,
                          covariate_part(post, data))
    per_patient = patient_summer(data)
    count = values_per_patient(data)[None, :]
    log_value = np.log(data.value)
    baseline, change = np.empty((size, n)), np.empty((size, n))
    for start in range(0, size, CONDITIONAL_BLOCK):
        block = slice(start, min(start + CONDITIONAL_BLOCK, size))
        draws = {k: v[block] for k, v in post.items()}
        h = shape.values(data.week, draws)
        resid = (log_value - draws["intercept"][:, None] - fixed[block][:, data.patient] * h
                 - shape.offset(data.week, draws))
        s_b, s_d = draws["sigma_intercept"][:, None], draws["sigma_change"][:, None]
        cov = draws["rho_baseline_change"][:, None] * s_b * s_d
        noise_var = draws["noise"][:, None] ** 2
        sums = {"n": count, "h": per_patient(h), "hh": per_patient(h * h), "r": per_patient(resid),
                "hr": per_patient(h * resid), "log": np.log}
        parts = gaussian_marginal(sums, s_b**2, cov, s_d**2, noise_var)
        mean_b = parts["p11"] * sums["r"] + parts["p12"] * sums["hr"]
        mean_d = parts["p12"] * sums["r"] + parts["p22"] * sums["hr"]
        c11, c12, c22 = (noise_var * parts[k] for k in ("p11", "p12", "p22"))
        l11 = np.sqrt(c11)
        l21 = c12 / np.where(l11 > 0, l11, 1.0)
        l22 = np.sqrt(np.maximum(c22 - l21**2, 0.0))
        z1 = rng.standard_normal(mean_b.shape)
        z2 = rng.standard_normal(mean_b.shape)
        baseline[block] = draws["intercept"][:, None] + mean_b + l11 * z1
        change[block] = fixed[block] + mean_d + l21 * z1 + l22 * z2
    return baseline, change


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


def population_mean(likelihood: str, location, variance, noise, upper) -> np.ndarray:
    """E[expected value] over a new patient whose link-scale mean is normal with
    ``location`` and ``variance`` (arrays that broadcast): closed form for a log-normal
    measure, Gauss-Hermite quadrature otherwise."""
    if likelihood == "lognormal":
        return np.exp(location + (variance + noise**2) / 2)
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    spread = np.sqrt(np.maximum(variance, 0.0))
    total = 0.0
    for node, weight in zip(nodes, weights / np.sqrt(2 * np.pi)):
        total = total + weight * expected_value(likelihood, location + spread * node, noise,
                                                upper)
    return total


def effect_variance(post: dict, h: np.ndarray) -> np.ndarray:
    """(S, 1) variance of baseline + change x h over new patients, h of shape (S, 1)."""
    s_b, s_d = post["sigma_intercept"][:, None], post["sigma_change"][:, None]
    rho = np.asarray(post.get("rho_baseline_change", 0.0))
    rho = rho[:, None] if rho.ndim else rho
    return s_b**2 + 2 * rho * s_b * s_d * h + s_d**2 * h**2


def change_needed(post: dict, baseline, before, likelihood: str, upper: float, sign: float,
                  threshold: float):
    """(S, M) the link-scale change ``c h + g`` each new patient needs for an expected change
    of ``threshold`` in the improving direction (``sign``) from their ``baseline`` (whose
    expected value is ``before``): the inverse of :func:`expected_value` at ``before + sign
    threshold``, less the baseline; +-inf where none can reach it (a score's ceiling or
    floor). The same at every week and for every group; None where the measure's mean has
    no closed-form inverse (censored normal)."""
    target = before + sign * threshold
    with np.errstate(divide="ignore", invalid="ignore"):
        if likelihood == "beta_binomial":
            reachable = (target > 0) & (target < upper)
            level = special.logit(target / upper)
        elif likelihood == "lognormal":
            reachable = target > 0
            level = np.log(np.where(reachable, target, 1.0)) - post["noise"][:, None] ** 2 / 2
        else:
            return None
    return np.where(reachable, level - baseline, sign * np.inf)


def threshold_share(post: dict, shape: TimeShape, week: float, needed, u, fixed_change,
                    sign: float):
    """(S,) share of new patients whose expected change by ``week`` in the improving
    direction (``sign``) is at least the threshold ``needed`` stands for
    (:func:`change_needed`), each counted by their probability of it given their baseline
    (the part of their change not explained by the baseline integrated out: conditional
    Monte Carlo); None at week 0.

    The expected value is increasing in the link-scale mean ``b + c h + g`` (h > 0 after
    week 0, g the spline's departure), so the condition is a bound on the change c, which
    given the baseline's standard normal draw ``u`` is normal with mean
    ``fixed_change + sigma_change rho u`` and SD ``sigma_change sqrt(1 - rho^2)``."""
    h, g = shape.values(week, post), shape.offset(week, post)               # (S, 1) each
    if not np.all(h > 0):        # week 0: no change yet to bound
        return None
    rho = np.asarray(post.get("rho_baseline_change", 0.0))
    rho = rho[:, None] if rho.ndim else np.full_like(h, float(rho))
    s_d = post["sigma_change"][:, None]
    z = np.subtract(needed, g)        # the bound on c, less its mean given the baseline
    z /= h
    z -= fixed_change
    if np.any(rho != 0):
        z -= (s_d * rho) * u
    spread = s_d * np.sqrt(1.0 - rho**2)                                    # (S, 1)
    moving = spread[:, 0] > 0
    share = np.empty(z.shape[0])
    if moving.any():
        part = z[moving] / spread[moving]
        part *= -sign
        share[moving] = special.ndtr(part, out=part).mean(axis=1)
    if not moving.all():         # no patient effect on the change: whose mean reaches it
        share[~moving] = (sign * z[~moving] <= 0).mean(axis=1)
    return share


def mean_values(post: dict, shape: TimeShape, fixed_change: np.ndarray, week: float,
                likelihood: str, upper: float) -> np.ndarray:
    """(S, n) each patient's expected value at ``week`` averaged over new patient effects,
    ``fixed_change`` (S, n) being their change without a patient effect."""
    h = shape.values(week, post)                                          # (S, 1)
    location = post["intercept"][:, None] + fixed_change * h + shape.offset(week, post)
    return population_mean(likelihood, location, effect_variance(post, h),
                           post["noise"][:, None], upper)


def fixed_changes(post: dict, design, cells: np.ndarray, covariates) -> np.ndarray:
    """(S, n) change without the patient effect: population change, the group's effects in
    ``cells`` and the patients' covariate effects."""
    size = post["intercept"].shape[0]
    return post["change"][:, None] + group_location(post, design, size)[:, cells] + covariates


def derived_quantities(post: dict, data: LongitudinalData, spec, rng,
                       ) -> dict[tuple[str, str, str], np.ndarray]:
    design = data.design
    size, n = post["intercept"].shape[0], data.n_patients
    r = new_patient_count(n, spec.replicates)
    covariates = covariate_part(post, data)
    u, w = new_patient_effects(post, size, n * r, rng)
    baseline = post["intercept"][:, None] + post["sigma_intercept"][:, None] * u
    shape = time_shape(data, spec)
    noise = post["noise"][:, None]
    upper = spec.upper or 1.0
    sign = -1.0 if spec.improvement == "decrease" else 1.0
    weeks, _ = summary_weeks(data, spec)
    before = expected_value(spec.likelihood, baseline, noise, upper)     # at week 0
    needed = change_needed(post, baseline, before, spec.likelihood, upper, sign,
                           spec.threshold)
    out = {}
    for group, cells in group_assignments(data).items():
        fixed = fixed_changes(post, design, cells, covariates)
        # without covariates, patients in one cell share their fixed change: the means are
        # computed once per cell and weighted by its patients
        if design.covariate_names:
            distinct, weight = fixed, np.full(n, 1.0 / n)
        else:
            first, counts = np.unique(cells, return_index=True, return_counts=True)[1:]
            distinct, weight = fixed[:, first], counts / n

        fixed_new = np.repeat(fixed, r, axis=1)          # each new patient's

        def expected(week, fixed_new=fixed_new):
            change = fixed_new + post["sigma_change"][:, None] * w
            mu = shape.mean(baseline, change, week, post)
            return expected_value(spec.likelihood, mu, noise, upper)

        def mean_at(week, distinct=distinct, weight=weight):
            return mean_values(post, shape, distinct, week, spec.likelihood, upper) @ weight

        mean0 = mean_at(0.0)
        key = spec.measure
        proportions = {}
        for week in weeks:
            mean = mean_at(week)
            out[(key, f"mean_change_wk{week_label(week)}", group)] = mean - mean0
            if spec.likelihood == "lognormal":
                out[(key, f"mean_value_wk{week_label(week)}", group)] = mean
            # the proportions' arrays are the largest here: draws x new patients
            name = (key, f"p_change_ge_threshold_wk{week_label(week)}", group)
            share = None if needed is None else threshold_share(
                post, shape, week, needed, u, fixed_new, sign)
            if share is None:    # a censored normal measure: count simulated patients
                share = (sign * (expected(week) - before) >= spec.threshold).mean(axis=1)
            proportions[name] = share
        out.update(proportions)
        out[(key, "mean_final", group)] = mean_at(float(spec.final_week))
    return out


def covariate_effects(post: dict, data: LongitudinalData, spec
                      ) -> dict[tuple[str, str, str], np.ndarray]:
    """Each covariate's effect on the mean change by every summary week, on the score's own
    scale, by g-computation over the modelled patients (each keeps their group and other
    covariates; new patient effects integrated out as in :func:`derived_quantities`): a
    numeric covariate raised by one unit and by one SD against as observed; a text one at
    its level against its reference."""
    design = data.design
    if not design.covariate_names:
        return {}
    upper = spec.upper or 1.0
    shape = time_shape(data, spec)
    weeks, _ = summary_weeks(data, spec)

    def fixed(covariates: np.ndarray) -> np.ndarray:
        return fixed_changes(post, design, design.patient_cell,
                             post["beta_covariate"] @ covariates.T)

    # at baseline h = 0: the change, so the covariates' effect on it, does not enter
    at0 = mean_values(post, shape, fixed(design.covariates), 0.0, spec.likelihood, upper)

    def mean_change(covariates: np.ndarray, week: float) -> np.ndarray:
        at = mean_values(post, shape, fixed(covariates), week, spec.likelihood, upper)
        return (at - at0).mean(axis=1)

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
