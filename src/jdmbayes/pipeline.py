"""Fit one model end to end: index -> build -> sample -> predict -> diagnose -> summarise."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

from . import predict_milestones as pm_pred
from .diagnostics import diagnose
from .draws import group_dataset, set_group
from .errors import InputError
from .indexing import index_milestones
from .milestone_model import build_milestone_model
from .observed_curves import survival_check_table
from .power_scaling import power_scaling_table
from .priors import hyperparameter_values, log_prior_dataset
from .sampling import SamplerSettings, built_model, sample_posterior, sample_prior
from .spec import ModelSpec, PriorSet
from .summarise import summarise_parameters, summarise_quantities
from .validate import Series

PRIOR_DRAWS = 500
MILESTONE_PARAMETERS = ["intercept", "dispersion", "beta_group", "sigma_cell", "cell_deviation",
                        "beta_covariate", "sigma_patient"]


@dataclass
class ModelResult:
    name: str
    spec: ModelSpec
    prior_set: PriorSet
    idata: xr.DataTree
    summary_rows: list[dict]
    diagnostics: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)   # name -> PNG, once rendered
    log: list[str] = field(default_factory=list)   # warnings and log lines of the fit


def structure_key(spec: ModelSpec, prior_set: PriorSet, arrays: dict) -> str:
    """What a compiled model depends on: the spec, the prior families and the data.

    The observation arrays are hashed whole (not just their shapes): a cached model holds
    the data it was built with, so another dataset is built afresh. (The censoring kinds are
    data in the graph; only latent interval-censored cells are structure, and simulation-
    based calibration swaps datasets into one compiled model itself: :mod:`jdmbayes.sbc`.)
    Hyperparameter values are not part of the key: they are swapped in as data.
    """
    digest = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
              for k, v in arrays.items()}
    text = json.dumps([spec.name, spec.raw, prior_set.family_signature(), digest],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sample_model(build, spec: ModelSpec, prior_set: PriorSet, settings: SamplerSettings,
                 data_arrays: dict, design, loglik_name: str, report=None):
    """Build (at most once per structure: ``build()``), compile (likewise), sample, move the
    per-patient log-likelihood to its group, add the ``log_prior`` group and draw the prior.

    A prior set that differs from an earlier one only in hyperparameter values reuses the
    built and compiled model: the values are data. Returns the sampling result (with
    ``reused_model``) and the prior draws.
    """
    key = structure_key(spec, prior_set, {**data_arrays, **design.key_arrays()})
    model, reused_model = built_model(key, build)
    values = hyperparameter_values(prior_set)
    with model:
        pm.set_data({k: v for k, v in values.items() if k in model.named_vars})
    sampled = sample_posterior(model, settings, key, values, report, spec.name)
    if report is not None:
        report(model=spec.name, stage="summarising")
    split_loglik(sampled.idata, loglik_name)
    set_group(sampled.idata, "log_prior",
              log_prior_dataset(prior_set, group_dataset(sampled.idata, "posterior")))
    sampled.reused_model = reused_model
    return sampled, sample_prior(model, PRIOR_DRAWS, settings.seed)


def data_groups(prior: xr.DataTree, subject_ids, design) -> xr.Dataset:
    """constant_data: the model's data containers plus the patient map (identifiers)."""
    return group_dataset(prior, "constant_data").assign(
        subject_id=("patient", np.array(subject_ids, dtype=str)),
        cell_label=("patient", design.patient_cell_labels))


def gated_variables(posterior, derived: tuple[str, ...]) -> list[str]:
    """The posterior variables the diagnostic gates judge: all but ``derived`` ones and the
    cell deviations when they are derived from other parameters (not centred)."""
    derived_cells = "z_cell" in posterior or "w_interaction" in posterior
    skip = set(derived) | ({"cell_deviation"} if derived_cells else set())
    return [v for v in posterior.data_vars if v not in skip]


def split_loglik(idata: xr.DataTree, name: str) -> None:
    posterior = group_dataset(idata, "posterior")
    set_group(idata, "log_likelihood",
              xr.Dataset({name: posterior["loglik_patient"].rename(name)}))
    set_group(idata, "posterior", posterior.drop_vars("loglik_patient"))


def fit_milestones(series: Series, spec: ModelSpec, prior_set: PriorSet,
                   settings: SamplerSettings, ci_prob: float, ci_kind: str,
                   report=None) -> ModelResult:
    data = index_milestones(series, spec)
    sampled, prior = sample_model(lambda: build_milestone_model(data, spec, prior_set), spec,
                                  prior_set, settings,
                                  {"kind": data.kind, "hi": data.hi, "lo": data.lo},
                                  data.design, "milestones", report)
    idata = sampled.idata

    rng = np.random.default_rng([settings.seed, 1])
    draws = pm_pred.extract_draws(idata.posterior, data)
    times = pm_pred.predict_observed_patients(draws, data, spec.family, rng)
    shape = (draws.chains, draws.draws)
    set_group(idata, "posterior_predictive", xr.Dataset({"time_pred": xr.DataArray(
        times.reshape(*shape, *times.shape[1:]), dims=("chain", "draw", "patient", "outcome"),
        coords={"patient": np.arange(1, data.n_patients + 1), "outcome": list(data.outcomes)})}))
    coords = {"patient": np.arange(1, data.n_patients + 1), "outcome": list(data.outcomes)}
    set_group(idata, "observed_data", xr.Dataset({
        "time_hi": (("patient", "outcome"), data.hi), "time_lo": (("patient", "outcome"), data.lo),
        "kind": (("patient", "outcome"), data.kind)}, coords=coords))
    set_group(idata, "prior", group_dataset(prior, "prior"))
    set_group(idata, "constant_data", data_groups(
        prior, data.subject_ids, data.design).assign(followup_wk=("patient", data.followup)))

    quantities = pm_pred.derived_quantities(draws, data, spec.family, spec.replicates, rng)
    quantities.update(pm_pred.contrasts(draws, data, spec.contrasts, spec.family))
    rows = summarise_parameters(idata.posterior, spec.name, MILESTONE_PARAMETERS, ci_prob,
                                ci_kind)
    rows += summarise_quantities(quantities, draws.chains, spec.name, ci_prob, ci_kind)

    counts = pm_pred.predicted_event_counts(times, data)
    observed = pm_pred.observed_event_counts(data)
    ppc_rows = []
    for k, outcome in enumerate(data.outcomes):
        low, high = np.quantile(counts[:, k], [0.025, 0.975])
        ppc_rows.append({"outcome": outcome, "statistic": "n_events_within_followup",
                         "observed": int(observed[k]), "predicted_mean": counts[:, k].mean(),
                         "predicted_low": low, "predicted_high": high,
                         "band": "95% equal-tailed posterior predictive",
                         "p_predicted_ge_observed": float((counts[:, k] >= observed[k]).mean())})
    grid = np.linspace(0, float(data.followup.max()), 61)
    tables = {"ppc_counts": pd.DataFrame(ppc_rows),
              "ppc_survival": survival_check_table(data.outcomes, data.kind, data.lo, data.hi,
                                                   times, grid),
              "psense": power_scaling_table(idata, quantities, spec.name,
                                            list(prior_set.priors)),
              "survival_by_group": pd.DataFrame(pm_pred.group_survival_curves(
                  draws, data, spec.family, np.linspace(0, 52, 53), rng, ci_prob))}
    diagnostics = diagnose(idata, gated_variables(idata.posterior, ()), "milestones")
    notes = [f"{data.n_patients} patients; family {spec.family}; "
             f"observations: {int((data.kind == 0).sum())} exact, "
             f"{int((data.kind == 1).sum())} right-censored, "
             f"{int((data.kind == 2).sum())} interval-censored, "
             f"{int((data.kind == 3).sum())} interval-censored with latent times.",
             "Population-averaged quantities: g-computation over the modelled patients"
             + (" with new frailties" if len(data.outcomes) > 1 else "")
             + f", {spec.replicates} simulated patients per patient and draw."]
    return ModelResult(spec.name, spec, prior_set, idata, rows, diagnostics, tables, notes,
                       sampled.timings())


def index_model(series: Series, spec: ModelSpec):
    """The arrays ``spec`` is fitted to (every spec-against-series rule is checked here)."""
    if spec.kind == "milestones":
        return index_milestones(series, spec)
    from .indexing import index_longitudinal

    return index_longitudinal(series, spec)


def check_models(series: Series, specs: list[ModelSpec]) -> None:
    """Every problem of every spec against the series, before anything is sampled or
    written: one ``InputError`` listing them all."""
    problems = []
    for spec in specs:
        try:
            index_model(series, spec)
        except InputError as error:
            problems.extend(p for p in error.problems if p not in problems)
    if problems:
        raise InputError(problems)


def fit_model(series: Series, spec: ModelSpec, prior_set: PriorSet, settings: SamplerSettings,
              ci_prob: float, ci_kind: str, report=None) -> ModelResult:
    """One model end to end; ``report`` hears of its progress (:mod:`jdmbayes.console`)."""
    if spec.kind == "milestones":
        return fit_milestones(series, spec, prior_set, settings, ci_prob, ci_kind, report)
    from .longitudinal_pipeline import fit_longitudinal

    return fit_longitudinal(series, spec, prior_set, settings, ci_prob, ci_kind, report)
