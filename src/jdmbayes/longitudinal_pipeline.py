"""Fit one longitudinal model end to end (the longitudinal half of :mod:`jdmbayes.pipeline`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from . import predict_longitudinal as pl
from .diagnostics import diagnose
from .draws import group_dataset, set_group
from .indexing import index_longitudinal
from .longitudinal_model import build_longitudinal_model
from .pipeline import ModelResult, data_groups, gated_variables, sample_model
from .power_scaling import power_scaling_table
from .sampling import SamplerSettings
from .spec import ModelSpec, PriorSet
from .summarise import summarise_parameters, summarise_quantities
from .validate import Series

LONGITUDINAL_PARAMETERS = ["intercept", "sigma_intercept", "change", "beta_group", "sigma_cell",
                           "cell_deviation", "beta_covariate", "sigma_change", "tau_weeks",
                           "noise"]
BAND = "95% equal-tailed posterior predictive"


def trajectory_checks(data, replicated: np.ndarray) -> dict[str, pd.DataFrame]:
    """Observed values against predictive bands, per patient visit and per group and week."""
    low, mid, high = np.quantile(replicated, [0.025, 0.5, 0.975], axis=0)
    rows = pd.DataFrame({"patient": data.patient + 1, "week": data.week,
                         "observed": data.value, "predicted_low": low,
                         "predicted_median": mid, "predicted_high": high, "band": BAND})
    rows["inside_band"] = (rows["observed"] >= low) & (rows["observed"] <= high)
    labels = data.design.patient_cell_labels
    group_rows = []
    cell = labels[data.patient]
    for group in sorted(set(cell)):
        for week in sorted(set(np.round(data.week[cell == group]))):
            use = (cell == group) & (np.round(data.week) == week)
            means = replicated[:, use].mean(axis=1)
            a, b = np.quantile(means, [0.025, 0.975])
            group_rows.append({"group": group, "week": float(week), "n": int(use.sum()),
                               "observed_mean": float(data.value[use].mean()),
                               "predicted_mean": float(means.mean()), "predicted_low": a,
                               "predicted_high": b, "band": BAND})
    return {"ppc_trajectories": rows, "ppc_groups": pd.DataFrame(group_rows)}


def fit_longitudinal(series: Series, spec: ModelSpec, prior_set: PriorSet,
                     settings: SamplerSettings, ci_prob: float, ci_kind: str,
                     report=None) -> ModelResult:
    data = index_longitudinal(series, spec)
    sampled, prior = sample_model(lambda: build_longitudinal_model(data, spec, prior_set), spec,
                                  prior_set, settings,
                                  {"patient": data.patient, "week": data.week,
                                   "value": data.value}, data.design, spec.measure, report)
    idata = sampled.idata
    rng = np.random.default_rng([settings.seed, 2])
    post = pl.posterior_arrays(idata.posterior)
    chains, draws = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    replicated = pl.predict_observations(post, data, spec, rng)
    set_group(idata, "posterior_predictive", xr.Dataset({"value_pred": xr.DataArray(
        replicated.reshape(chains, draws, -1), dims=("chain", "draw", "obs"),
        coords={"obs": np.arange(len(data.value))})}))
    set_group(idata, "observed_data", xr.Dataset({"value": ("obs", data.value)},
                                                 coords={"obs": np.arange(len(data.value))}))
    set_group(idata, "prior", group_dataset(prior, "prior"))
    set_group(idata, "constant_data", data_groups(prior, data.subject_ids, data.design))

    quantities = pl.derived_quantities(post, data, spec, rng)
    quantities.update(pl.contrasts(quantities, data, spec.contrasts, spec.measure))
    rows = summarise_parameters(idata.posterior, spec.name, LONGITUDINAL_PARAMETERS, ci_prob,
                                ci_kind)
    for row in rows:
        row["outcome"] = spec.measure
    rows += summarise_quantities(quantities, chains, spec.name, ci_prob, ci_kind)
    tables = trajectory_checks(data, replicated)
    tables["psense"] = power_scaling_table(idata, quantities, spec.name, list(prior_set.priors))
    diagnostics = diagnose(idata, gated_variables(idata.posterior,
                                                  ("baseline", "patient_change")), spec.measure)
    notes_missing = data.missing["note"].replace("", "no note").value_counts()
    direction = "rise" if spec.improvement == "increase" else "fall"
    notes = [f"{data.n_patients} patients, {len(data.value)} values of '{spec.measure}' "
             f"({spec.likelihood}); {len(data.missing)} missing value(s) left out of the "
             "likelihood" + (": " + "; ".join(f"{n} x '{note}'" for note, n in
                                               notes_missing.items()) if len(data.missing)
                             else "") + ".",
             f"p_change_ge_threshold_wk24: proportion of patients whose expected "
             f"{spec.measure} at week 24 is at least {spec.threshold:g} better than baseline "
             f"(improvement = a {direction}).",
             f"mean_final: expected value at week {spec.final_week:g} (last scheduled visit); "
             "contrasts are differences in mean_change_wk24 ('num-den').",
             f"{int(tables['ppc_trajectories']['inside_band'].sum())} of "
             f"{len(data.value)} observed values inside their 95% predictive band."]
    return ModelResult(spec.name, spec, prior_set, idata, rows, diagnostics, tables, notes,
                       sampled.timings())
