"""The milestone kind: ordered time-to-event milestones sharing a patient frailty.

Model: :func:`jdmbayes.models.milestones.build_milestone_model`; predictive quantities:
:mod:`jdmbayes.estimands.milestones`; simulated designs: :mod:`jdmbayes.estimands.simulate`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

import jdmbayes.estimands.milestones as pm_pred
from jdmbayes.estimands.frailty_marginal import milestone_marginal_loglik
from jdmbayes.estimands.observed_curves import survival_check_table
from jdmbayes.estimands.simulate import simulate_milestones, visit_schedule
from jdmbayes.inference.diagnostics import diagnose
from jdmbayes.inference.draws import group_dataset, set_group
from jdmbayes.inference.fitted import ModelResult
from jdmbayes.inference.power_scaling import power_scaling_table
from jdmbayes.inference.sampling import SamplerSettings, sample_prior
from jdmbayes.inference.summarise import summarise_parameters, summarise_quantities
from jdmbayes.kinds.common import (
    FRAILTY_DERIVED,
    SAMPLED_FRAILTY,
    ModelKind,
    PriorPredictive,
    data_groups,
    gated_variables,
    quantile_row,
    set_loo_loglik,
)
from jdmbayes.models.indexing import MilestoneData, index_milestones
from jdmbayes.models.milestones import (
    build_milestone_model,
    frailty_form,
    latent_pattern,
    observation_data,
    retry_frailty_spec,
)
from jdmbayes.models.spec import SPEC_KEYS, ModelSpec, PriorSet

FRAILTY_WORDS = {"centred": "sampled, centred", "non_centred": "sampled, non-centred",
                 "hierarchically_centred": "sampled, hierarchically centred (each "
                                           "patient's location carries the group effects "
                                           "and mean intercept)",
                 "integrated": "integrated out of each patient's likelihood (adaptive "
                               "Gauss-Hermite)"}

PARAMETERS = ("intercept", "dispersion", "beta_group", "sigma_cell", "cell_deviation",
              "beta_covariate", "sigma_patient")


def milestone_outputs(data: MilestoneData, spec: ModelSpec, prior_set: PriorSet, sampled,
                      prior, settings: SamplerSettings, ci_prob: float,
                      ci_kind: str) -> ModelResult:
    """Predictive times, population-averaged quantities, contrasts, checks and summary rows."""
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
    quantities.update(pm_pred.covariate_effects(draws, data))
    rows = summarise_parameters(idata.posterior, spec.name, list(PARAMETERS), ci_prob,
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
    # the patients' log-likelihood for LOO (power-scaling and the diagnostics use it), from
    # its background thread where it has run since the draws were judged
    set_loo_loglik(MILESTONES, data, spec, prior_set, sampled)
    tables = {"ppc_counts": pd.DataFrame(ppc_rows),
              "ppc_survival": survival_check_table(data.outcomes, data.kind, data.lo, data.hi,
                                                   times, grid),
              "psense": power_scaling_table(idata, quantities, spec.name,
                                            list(prior_set.priors)),
              "survival_by_group": pd.DataFrame(pm_pred.group_survival_curves(
                  draws, data, spec.family, np.linspace(0, 52, 53), rng, ci_prob))}
    diagnostics = diagnose(idata, gated_variables(idata.posterior, FRAILTY_DERIVED),
                           "milestones", loglik_kind="marginal", earlier=sampled.gated)
    notes = [f"{data.n_patients} patients; family {spec.family}; "
             f"observations: {int((data.kind == 0).sum())} exact, "
             f"{int((data.kind == 1).sum())} right-censored, "
             f"{int((data.kind == 2).sum())} interval-censored, "
             f"{int((data.kind == 3).sum())} interval-censored with latent times.",
             *([f"Patient frailty: {FRAILTY_WORDS[frailty_form(data, spec)]}"
                + (" (chosen from the data: median milestones observed per patient)"
                   if spec.frailty == "auto" else " (by spec)") + "."]
               if len(data.outcomes) > 1 else []),
             "Population-averaged quantities: g-computation over the modelled patients"
             + (" with new frailties" if len(data.outcomes) > 1 else "")
             + f", {pm_pred.new_patient_count(data.n_patients, spec.replicates)} simulated "
             f"patient(s) per patient and draw (spec replicates = {spec.replicates}, at most "
             f"{pm_pred.MAX_NEW_PATIENTS} per draw)."]
    return ModelResult(spec.name, spec, prior_set, idata, rows, diagnostics, tables, notes,
                       sampled.timings())


def milestone_marginal_loo(data: MilestoneData, spec: ModelSpec) -> bool:
    """``ModelKind.marginal_loo``: a frailty shared by a patient's milestones is sampled, so
    LOO integrates it out of each patient's likelihood from the draws."""
    return len(data.outcomes) >= 2 and frailty_form(data, spec) in SAMPLED_FRAILTY


def milestone_integrated_loglik(data: MilestoneData, spec: ModelSpec,
                                posterior) -> np.ndarray:
    """``ModelKind.marginal_loglik``: each patient's log-likelihood, (chains, draws,
    patients), the sampled frailty integrated out draw by draw
    (:mod:`jdmbayes.estimands.frailty_marginal`)."""
    return milestone_marginal_loglik(posterior, data, spec.family).reshape(
        posterior.sizes["chain"], posterior.sizes["draw"], data.n_patients)


def milestone_prior_predictive(series, data: MilestoneData, spec: ModelSpec, prior_set: PriorSet,
                               draws: int, seed: int) -> PriorPredictive:
    rng = np.random.default_rng([seed, 3])
    prior = sample_prior(build_milestone_model(data, spec, prior_set), draws, seed).prior
    # an integrated frailty's mode and spread are conditional on the data: not prior draws
    prior = prior.to_dataset().drop_vars(["frailty_mode", "frailty_sd"], errors="ignore")
    sampled = pm_pred.extract_draws(prior, data)
    times = pm_pred.predict_observed_patients(sampled, data, spec.family, rng)
    quantities = pm_pred.derived_quantities(sampled, data, spec.family, spec.replicates, rng)
    quantities.update(pm_pred.contrasts(sampled, data, spec.contrasts, spec.family))
    rows = [quantile_row(times[:, :, k], model=spec.name, outcome=o,
                         quantity="patient_time_wk", group="modelled patients")
            for k, o in enumerate(data.outcomes)]
    rows += [quantile_row(v, model=spec.name, outcome=o, quantity=q, group=g)
             for (o, q, g), v in quantities.items()]
    return PriorPredictive(spec.name, spec.kind, rows,
                           times={o: times[:, :, k].ravel() for k, o in enumerate(data.outcomes)})


def milestone_simulator(series, data: MilestoneData, spec: ModelSpec):
    """``simulate(truth, rng)``: milestone times drawn at ``truth`` and observed as the real
    series observes them (its visits, follow-up and censoring)."""
    visits = visit_schedule(series, data.subject_ids, data.followup)

    def simulate(truth: dict, rng: np.random.Generator) -> MilestoneData:
        return simulate_milestones(data, visits, spec.family, truth, rng)

    return simulate


def milestone_observation_data(spec: ModelSpec, real: MilestoneData,
                               simulated: MilestoneData) -> dict:
    """The data a compiled milestone model swaps in for a simulated dataset: its latent cells
    must be the real series' (latent times are structure, not data)."""
    if not np.array_equal(latent_pattern(simulated), latent_pattern(real)):
        raise ValueError(f"{spec.name}: a simulated dataset has latent times where the real series "
                         "has none; calibration needs one compiled model")
    return observation_data(simulated)


MILESTONES = ModelKind(
    derived=lambda data, spec: FRAILTY_DERIVED,
    reparameterised=retry_frailty_spec,
    name="milestones",
    spec_keys=frozenset(SPEC_KEYS["milestones"]),
    prior_sections=("milestones",),
    index=index_milestones,
    build=build_milestone_model,
    observed_arrays=lambda data: {"kind": data.kind, "hi": data.hi, "lo": data.lo},
    loglik_name=lambda spec: "milestones",
    marginal_loo=milestone_marginal_loo,
    marginal_loglik=milestone_integrated_loglik,
    outputs=milestone_outputs,
    prior_predictive=milestone_prior_predictive,
    simulator=milestone_simulator,
    observation_data=milestone_observation_data,
    parameters=PARAMETERS,
    key_parameters=("intercept", "dispersion", "beta_group", "sigma_cell", "sigma_patient"),
    figures=("rank", "forest", "prior_posterior", "ppc_survival", "survival_by_group"),
)
