"""The longitudinal kind: a bounded or positive measure over visits, with a random baseline and a
random change to a plateau per patient.

Model: :func:`jdmbayes.models.longitudinal.build_longitudinal_model`; predictive quantities:
:mod:`jdmbayes.estimands.longitudinal`; simulated designs: :mod:`jdmbayes.estimands.simulate`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr

import jdmbayes.estimands.longitudinal as pl
import jdmbayes.estimands.patient_marginal as pl_marginal
from jdmbayes.estimands.milestones import MAX_NEW_PATIENTS, new_patient_count
from jdmbayes.estimands.simulate import simulate_longitudinal
from jdmbayes.inference.diagnostics import diagnose
from jdmbayes.inference.draws import (
    PREDICTIVE_CHECK_DRAWS,
    draw_step,
    every_kth_draw,
    group_dataset,
    set_group,
)
from jdmbayes.inference.fitted import ModelResult
from jdmbayes.inference.power_scaling import power_scaling_table
from jdmbayes.inference.sampling import DEFAULT_TARGET_ACCEPT, SamplerSettings, sample_prior
from jdmbayes.inference.summarise import summarise_parameters, summarise_quantities
from jdmbayes.kinds.common import (
    ModelKind,
    PriorPredictive,
    data_groups,
    gated_variables,
    quantile_row,
    set_loo_loglik,
)
from jdmbayes.models.indexing import LongitudinalData, index_longitudinal
from jdmbayes.models.longitudinal import (
    LEVEL_TARGET_ACCEPT,
    LEVEL_TUNE,
    build_longitudinal_model,
    patient_effects_form,
    time_shape,
)
from jdmbayes.models.measure_scale import scale_priors, scaling_note
from jdmbayes.models.spec import PARAMETERS as PRIOR_PARAMETERS
from jdmbayes.models.spec import SPEC_KEYS, ModelSpec, PriorSet

PARAMETERS = ("intercept", "sigma_intercept", "change", "beta_group", "sigma_cell",
              "cell_deviation", "beta_covariate", "sigma_change", "rho_baseline_change",
              "tau_weeks", "spline_coef", "noise")
BAND = "95% equal-tailed posterior predictive"


# a schedule of at most this many distinct (rounded) visit weeks is a schedule: checked week by
# week; otherwise values are binned into visit windows of at least MIN_WINDOW_PATIENTS
SCHEDULED_WEEKS = 12
MIN_WINDOW_PATIENTS = 10


# an integrated bounded score's record of where its quadrature put each patient's nodes
QUADRATURE_NODES = ("effect_mode", "effect_chol")


def derived_effects(data, spec: ModelSpec) -> tuple[str, ...]:
    """Baselines and changes are parameters when sampled centred, else functions of them or
    (integrated) exact draws given them: gated through the parameters."""
    return {"centred": (), "centred_baseline": ("patient_change",),
            "centred_level": ("baseline", "patient_change")}.get(
        patient_effects_form(data, spec), ("baseline", "patient_change", *QUADRATURE_NODES))


def visit_windows(week: np.ndarray, patient: np.ndarray) -> tuple[np.ndarray, bool]:
    """(n_obs,) window index of each value, and whether visits were binned: on a schedule,
    its rounded week; for irregular visits, baseline (week 0) and then windows between
    quantiles of the later visit weeks, each merged into its neighbour until every window
    holds at least ``MIN_WINDOW_PATIENTS`` patients."""
    rounded = np.round(week)
    if np.unique(rounded).size <= SCHEDULED_WEEKS:
        return np.unique(rounded, return_inverse=True)[1], False
    later = week > 0
    edges = np.unique(np.quantile(week[later], np.linspace(0, 1, 9)))
    index = np.where(later, np.clip(np.searchsorted(edges, week, side="left"), 1,
                                    len(edges) - 1), 0)
    while (labels := np.unique(index[later])).size > 1:
        small = [k for k in labels if np.unique(patient[index == k]).size < MIN_WINDOW_PATIENTS]
        if not small:
            break
        position = int(np.flatnonzero(labels == small[0])[0])
        neighbour = labels[position + 1] if position + 1 < labels.size else labels[position - 1]
        index[index == small[0]] = neighbour
    return np.unique(index, return_inverse=True)[1], True


def trajectory_checks(data, replicated: np.ndarray) -> dict[str, pd.DataFrame]:
    """Observed values against predictive bands, per patient visit and per group and visit
    week (or visit window, when visits are irregular)."""
    low, mid, high = np.quantile(replicated, [0.025, 0.5, 0.975], axis=0)
    rows = pd.DataFrame({"patient": data.patient + 1, "week": data.week,
                         "observed": data.value, "predicted_low": low,
                         "predicted_median": mid, "predicted_high": high, "band": BAND})
    rows["inside_band"] = (rows["observed"] >= low) & (rows["observed"] <= high)
    labels = data.design.patient_cell_labels
    window, binned = visit_windows(data.week, data.patient)
    group_rows = []
    cell = labels[data.patient]
    for group in sorted(set(cell)):
        for k in np.unique(window[cell == group]):
            use = (cell == group) & (window == k)
            means = replicated[:, use].mean(axis=1)
            a, b = np.quantile(means, [0.025, 0.975])
            weeks = data.week[use]
            group_rows.append({"group": group,
                               "week": float(weeks.mean() if binned else np.round(weeks[0])),
                               "week_from": float(weeks.min()), "week_to": float(weeks.max()),
                               "n": int(use.sum()),
                               "patients": int(np.unique(data.patient[use]).size),
                               "observed_mean": float(data.value[use].mean()),
                               "predicted_mean": float(means.mean()), "predicted_low": a,
                               "predicted_high": b, "band": BAND,
                               "binning": (f"visit windows of at least {MIN_WINDOW_PATIENTS} "
                                           "patients" if binned else "scheduled weeks")})
    return {"ppc_trajectories": rows, "ppc_groups": pd.DataFrame(group_rows)}


PRIOR_CHECK_LEVELS = (0.05, 0.25, 0.5, 0.75, 0.95)


def prior_check(data, spec: ModelSpec, prior, rng: np.random.Generator) -> pd.DataFrame:
    """Prior predictive check: each quantile of the observed values (5%, 25%, ... 95%)
    against the distribution of the same quantile in values drawn from the prior at the
    same patients' visits (its 5%, 50% and 95%, over prior draws)."""
    post = pl.with_patient_effects(pl.posterior_arrays(prior, time_shape(data, spec)), data,
                                   spec, rng)
    simulated = pl.predict_observations(post, data, spec, rng)
    levels = np.array(PRIOR_CHECK_LEVELS)
    observed = np.quantile(data.value, levels)
    drawn = np.quantile(simulated, levels, axis=1)             # (levels, prior draws)
    low, mid, high = np.nanquantile(drawn, [0.05, 0.5, 0.95], axis=1)
    inside = (observed >= low) & (observed <= high)
    return pd.DataFrame({"quantile": levels, "observed": observed, "prior_low": low,
                         "prior_median": mid, "prior_high": high, "inside_band": inside,
                         "band": "90% of prior predictive draws", "draws": drawn.shape[1]})


# the retry ladder's other parameterisation of sampled patient effects: effects the data
# leave loose are non-centred; non-centred ones get their levels centred
OTHER_FORM = {"centred": "non_centred", "centred_baseline": "non_centred",
              "centred_level": "non_centred",
              "non_centred": "centred_level"}

FORM_WORDS = {"centred": "sampled centred", "non_centred": "sampled non-centred",
              "centred_baseline": "sampled with the baselines centred and the changes "
                                  "non-centred",
              "centred_level": "sampled through each patient's level at the mean time of "
                               "their values (centred) and the change given it "
                               "(non-centred)",
              "integrated": "integrated out of the likelihood (exactly) and drawn "
                            "afterwards from their conditional law",
              "integrated_quadrature": "integrated out of the likelihood by adaptive "
                                       "Gauss-Hermite quadrature (5 x 5 points) and drawn "
                                       "afterwards from their conditional law (Laplace "
                                       "proposals corrected by Metropolis-Hastings)"}


def add_conditional_patient_effects(idata, post: dict, data: LongitudinalData,
                                    spec: ModelSpec, rng: np.random.Generator) -> dict:
    """Put each patient's ``baseline`` and ``patient_change``, drawn from their conditional
    law given each posterior draw, into the posterior (integrated form: exact for a
    log-normal measure, else corrected Laplace draws from the quadrature's record, which is
    then dropped);
    returns ``post`` (:func:`~jdmbayes.estimands.longitudinal.posterior_arrays`) with them."""
    posterior = idata.posterior
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    if spec.likelihood == "lognormal":
        baseline, change = pl.conditional_patient_effects(post, data, spec, rng)
    else:
        size = chains * draws
        mode, chol = (posterior[name].values.reshape(size, data.n_patients, -1)
                      for name in QUADRATURE_NODES)
        baseline, change = pl_marginal.laplace_corrected_effects(post, data, spec, mode, chol,
                                                                 rng)
        set_group(idata, "posterior", group_dataset(idata, "posterior").drop_vars(
            list(QUADRATURE_NODES)))
        posterior = idata.posterior
    coords = {"patient": np.arange(1, data.n_patients + 1)}       # the model's coordinates
    for name, values in (("baseline", baseline), ("patient_change", change)):
        posterior[name] = xr.DataArray(values.reshape(chains, draws, -1),
                                       dims=("chain", "draw", "patient"), coords=coords)
    return {**post, "baseline": baseline, "patient_change": change}


def longitudinal_marginal_loo(data: LongitudinalData, spec: ModelSpec) -> bool:
    """``ModelKind.marginal_loo``: the patients' effects are sampled, so LOO integrates them
    out of each patient's likelihood from the draws (:func:`longitudinal_integrated_loglik`)."""
    return patient_effects_form(data, spec) != "integrated"


def longitudinal_integrated_loglik(data: LongitudinalData, spec: ModelSpec,
                                   posterior) -> np.ndarray:
    """``ModelKind.marginal_loglik``: the marginal log-likelihood of each patient's values,
    (chains, draws, patients), their sampled effects integrated out from the draws by
    adaptive Gauss-Hermite quadrature
    (:func:`jdmbayes.estimands.patient_marginal.marginal_loglik`). Patient-level LOO, model
    comparison and power-scaling then judge each patient's values as a whole."""
    post = pl.posterior_arrays(posterior, time_shape(data, spec))
    return pl_marginal.marginal_loglik(post, data, spec).reshape(
        posterior.sizes["chain"], posterior.sizes["draw"], data.n_patients)


def longitudinal_outputs(data: LongitudinalData, spec: ModelSpec, prior_set: PriorSet,
                         sampled, prior, settings: SamplerSettings, ci_prob: float,
                         ci_kind: str) -> ModelResult:
    """Replicated values, population-averaged changes, contrasts, checks and summary rows."""
    idata = sampled.idata
    rng = np.random.default_rng([settings.seed, 2])
    form = patient_effects_form(data, spec)
    post = pl.posterior_arrays(idata.posterior, time_shape(data, spec))
    if form == "integrated":
        post = add_conditional_patient_effects(idata, post, data, spec,
                                               np.random.default_rng([settings.seed, 5]))
    chains = idata.posterior.sizes["chain"]
    # the predictive replicates every k-th draw of each chain, at most PREDICTIVE_CHECK_DRAWS
    step = draw_step(post["intercept"].shape[0], PREDICTIVE_CHECK_DRAWS)
    replicated = pl.predict_observations(
        {k: every_kth_draw(v, chains, step) for k, v in post.items()}, data, spec, rng)
    set_group(idata, "posterior_predictive", xr.Dataset({"value_pred": xr.DataArray(
        replicated.reshape(chains, -1, len(data.value)), dims=("chain", "draw", "obs"),
        coords={"obs": np.arange(len(data.value)),
                "draw": idata.posterior["draw"].values[::step]})}))
    set_group(idata, "observed_data", xr.Dataset({"value": ("obs", data.value)},
                                                 coords={"obs": np.arange(len(data.value))}))
    set_group(idata, "prior", group_dataset(prior, "prior"))
    set_group(idata, "constant_data", data_groups(prior, data.subject_ids, data.design))

    # the new patients of the proportions come from a stream of their own, so that they do
    # not depend on how many draws the predictive replicated
    quantities = pl.derived_quantities(post, data, spec,
                                       np.random.default_rng([settings.seed, 7]))
    quantities.update(pl.contrasts(quantities, data, spec, post))
    quantities.update(pl.covariate_effects(post, data, spec))
    rows = summarise_parameters(idata.posterior, spec.name, list(PARAMETERS), ci_prob,
                                ci_kind)
    for row in rows:
        row["outcome"] = spec.measure
    rows += summarise_quantities(quantities, chains, spec.name, ci_prob, ci_kind)
    tables = trajectory_checks(data, replicated)
    tables["prior_check"] = prior_check(data, spec, group_dataset(prior, "prior"),
                                        np.random.default_rng([settings.seed, 4]))
    # the patients' log-likelihood for LOO, from its background thread where it has run
    # since the draws were judged (power-scaling and the diagnostics use it)
    set_loo_loglik(LONGITUDINAL, data, spec, prior_set, sampled)
    tables["psense"] = power_scaling_table(idata, quantities, spec.name, list(prior_set.priors))
    diagnostics = diagnose(idata, gated_variables(idata.posterior,
                                                  derived_effects(data, spec)), spec.measure,
                           loglik_kind="marginal", earlier=sampled.gated)
    notes_missing = data.missing["note"].replace("", "no note").value_counts()
    weeks, how = pl.summary_weeks(data, spec)
    direction = "rise" if spec.improvement == "increase" else "fall"
    notes = [f"{data.n_patients} patients, {len(data.value)} values of '{spec.measure}' "
             f"({spec.likelihood}); {len(data.missing)} missing value(s) left out of the "
             "likelihood" + (": " + "; ".join(f"{n} x '{note}'" for note, n in
                                               notes_missing.items()) if len(data.missing)
                             else "") + ".",
             f"Summary weeks {', '.join(f'{w:g}' for w in weeks)} ({how}); the series' "
             "times are shown in weeks.",
             f"Time shape: {spec.shape}; patient baseline and change "
             + ("correlated (LKJ prior)" if spec.correlation and spec.random_change
                else "independent") + ", " + FORM_WORDS[
                    "integrated_quadrature" if form == "integrated"
                    and spec.likelihood != "lognormal" else form]
             + ((" (the default for a log-normal measure)" if form == "integrated" else
                 " (chosen from the data: median values per patient)")
                if spec.patient_effects == "auto" else " (by spec)") + ".",
             f"p_change_ge_threshold_wk<w>: proportion of patients whose expected "
             f"{spec.measure} at week w is at least {spec.threshold:g} better than baseline "
             f"(improvement = a {direction}).",
             f"mean_final: expected value at week {spec.final_week:g} (last scheduled visit); "
             "contrasts are differences in mean_change_wk<w> ('num-den')"
             + (" and ratios of mean values, mean_value_wk<w> ('num/den')"
                if spec.likelihood == "lognormal" else "")
             + "; change_effect is a group's whole effect on the change (main effect and "
             "cell deviations summed, link scale).",
             "Population-averaged values integrate over a new patient's baseline and change "
             + ("in closed form" if spec.likelihood == "lognormal" else
                f"by Gauss-Hermite quadrature ({pl.QUADRATURE_NODES} nodes)")
             + "; the proportions improving are Monte Carlo over "
             f"{new_patient_count(data.n_patients, spec.replicates)} new patient(s) per "
             f"modelled patient and draw (spec replicates = {spec.replicates}, at most "
             f"{MAX_NEW_PATIENTS} per draw).",
             f"{int(tables['ppc_trajectories']['inside_band'].sum())} of "
             f"{len(data.value)} observed values inside their 95% predictive band"
             + ("." if step == 1 else f" (replicated from one draw in {step} of each "
                f"chain: {replicated.shape[0]} draws)."),
             scaling_note(prior_set, spec.measure),
             f"Prior predictive check: {int(tables['prior_check']['inside_band'].sum())} of "
             f"{len(PRIOR_CHECK_LEVELS)} quantiles of the observed values (5% to 95%) inside "
             "the 90% band of the same quantile in data drawn from the prior (prior_check.csv)."]
    return ModelResult(spec.name, spec, prior_set, idata, rows, diagnostics, tables, notes,
                       sampled.timings())


def longitudinal_prior_predictive(series, data: LongitudinalData, spec: ModelSpec,
                                  prior_set: PriorSet, draws: int, seed: int) -> PriorPredictive:
    rng = np.random.default_rng([seed, 3])
    prior = sample_prior(build_longitudinal_model(data, spec, prior_set), draws, seed).prior
    post = pl.with_patient_effects(pl.posterior_arrays(prior, time_shape(data, spec)), data,
                                   spec, np.random.default_rng([seed, 6]))
    quantities = pl.derived_quantities(post, data, spec, rng)
    quantities.update(pl.contrasts(quantities, data, spec, post))
    weeks = np.unique(np.append(np.arange(0.0, spec.final_week, 1.0), spec.final_week))
    size = post["intercept"].shape[0]
    patient = rng.integers(0, data.n_patients, size)
    mu = time_shape(data, spec).mean(post["baseline"][np.arange(size), patient][:, None],
                                     post["patient_change"][np.arange(size), patient][:, None],
                                     weeks, post)
    values = pl.draw_values(spec.likelihood, mu, post["noise"][:, None], spec.upper or 1.0, rng)
    rows = [quantile_row(values[:, w], model=spec.name, outcome=spec.measure,
                         quantity=f"value_wk{week:g}", group="a modelled patient")
            for w, week in enumerate(weeks) if week in (0.0, 12.0, spec.final_week)]
    rows += [quantile_row(v, model=spec.name, outcome=o, quantity=q, group=g)
             for (o, q, g), v in quantities.items()]
    expected = pl.expected_value(spec.likelihood, mu, post["noise"][:, None], spec.upper or 1.0)
    return PriorPredictive(spec.name, spec.kind, rows, weeks=weeks, trajectories=values,
                           expected=expected, measure=spec.measure, upper=spec.upper)


def longitudinal_simulator(series, data: LongitudinalData, spec: ModelSpec):
    """``simulate(truth, rng)``: every observed value drawn at ``truth`` (same patients,
    visits and missing values)."""

    def simulate(truth: dict, rng: np.random.Generator) -> LongitudinalData:
        return simulate_longitudinal(data, spec, truth, rng)

    return simulate


def first_target_accept(data: LongitudinalData, spec: ModelSpec) -> float:
    """The first attempt's target acceptance when the settings leave it to the model:
    :data:`LEVEL_TARGET_ACCEPT` for patient effects sampled through each patient's level,
    else the default."""
    return (LEVEL_TARGET_ACCEPT if patient_effects_form(data, spec) == "centred_level"
            else DEFAULT_TARGET_ACCEPT)


def first_tune(data: LongitudinalData, spec: ModelSpec) -> int | None:
    """The first attempt's tuning steps where the settings leave its target to the model:
    :data:`LEVEL_TUNE` for patient effects sampled through each patient's level, else the
    settings' own (None)."""
    return LEVEL_TUNE if patient_effects_form(data, spec) == "centred_level" else None


LONGITUDINAL = ModelKind(
    derived=lambda data, spec: derived_effects(data, spec),
    name="longitudinal",
    spec_keys=frozenset(SPEC_KEYS["longitudinal"]),
    prior_sections=tuple(s for s in PRIOR_PARAMETERS if s.startswith("longitudinal_")),
    index=index_longitudinal,
    build=build_longitudinal_model,
    observed_arrays=lambda data: {"patient": data.patient, "week": data.week,
                                  "value": data.value},
    loglik_name=lambda spec: spec.measure,
    marginal_loo=longitudinal_marginal_loo,
    marginal_loglik=longitudinal_integrated_loglik,
    outputs=longitudinal_outputs,
    prior_predictive=longitudinal_prior_predictive,
    simulator=longitudinal_simulator,
    observation_data=lambda spec, real, simulated: {"obs_value": simulated.value},
    parameters=PARAMETERS,
    key_parameters=("intercept", "change", "beta_group", "tau_weeks", "spline_coef", "noise",
                    "sigma_change", "rho_baseline_change"),
    figures=("rank", "forest", "prior_posterior", "trajectories", "prior_check"),
    resolve_priors=lambda data, spec, prior_set: scale_priors(prior_set, spec, data.value),
    reparameterised=lambda data, spec, gates=None: (
        None if patient_effects_form(data, spec) == "integrated"
        else dataclasses.replace(spec,
                                 patient_effects=OTHER_FORM[patient_effects_form(data, spec)])),
    first_target_accept=first_target_accept,
    first_tune=first_tune,
)
