"""The episodes kind: recurrent episodes of one event, each with its own start and censoring,
sharing a patient frailty.

Model: :func:`jdmbayes.models.episodes.build_episode_model`; predictive quantities:
:mod:`jdmbayes.estimands.episodes`; simulated designs:
:func:`jdmbayes.estimands.simulate.simulate_episodes`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

import jdmbayes.estimands.milestones as pm_pred
from jdmbayes.estimands import episodes as ep_pred
from jdmbayes.estimands.frailty_marginal import episode_marginal_loglik
from jdmbayes.estimands.observed_curves import survival_check_table
from jdmbayes.estimands.simulate import simulate_episodes, visit_schedule
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
from jdmbayes.models.episode_indexing import EpisodeData, index_episodes
from jdmbayes.models.episodes import (
    build_episode_model,
    frailty_form,
    has_episode_effect,
    observation_data,
)
from jdmbayes.models.indexing import EXACT, INTERVAL, RIGHT
from jdmbayes.models.spec import SPEC_KEYS, ModelSpec, PriorSet

PARAMETERS = ("intercept", "dispersion", "beta_group", "sigma_cell", "cell_deviation",
              "beta_covariate", "sigma_patient", "beta_episode")



def predictions(posterior, data: EpisodeData, spec: ModelSpec, rng):
    """Draws, episode effects, predicted gaps of the modelled episodes and the
    population-averaged quantities with contrasts (posterior or prior draws alike)."""
    draws = pm_pred.extract_draws(posterior, data)
    effects = ep_pred.episode_effect_draws(posterior, data, spec)
    gaps = ep_pred.predict_observed_episodes(draws, effects, data, spec, rng)
    quantities = ep_pred.derived_quantities(draws, effects, data, spec, rng)
    quantities.update(pm_pred.contrasts(draws, data, spec.contrasts, spec.family))
    quantities.update(pm_pred.covariate_effects(draws, data))
    quantities.update(ep_pred.episode_ratios(effects, data, spec))
    return draws, gaps, quantities


def episode_outputs(data: EpisodeData, spec: ModelSpec, prior_set: PriorSet, sampled, prior,
                    settings: SamplerSettings, ci_prob: float, ci_kind: str) -> ModelResult:
    """Predicted gaps, population-averaged quantities, contrasts, checks and summary rows."""
    idata = sampled.idata
    rng = np.random.default_rng([settings.seed, 1])
    draws, gaps, quantities = predictions(idata.posterior, data, spec, rng)
    coords = {"obs": np.arange(len(data.kind))}
    set_group(idata, "posterior_predictive", xr.Dataset({"gap_pred": xr.DataArray(
        gaps.reshape(draws.chains, draws.draws, -1), dims=("chain", "draw", "obs"),
        coords=coords)}))
    set_group(idata, "observed_data", xr.Dataset({
        "time_hi": ("obs", data.hi), "time_lo": ("obs", data.lo), "start": ("obs", data.start),
        "kind": ("obs", data.kind), "episode": ("obs", data.episode),
        "patient": ("obs", data.patient + 1)}, coords=coords))
    set_group(idata, "prior", group_dataset(prior, "prior"))
    set_group(idata, "constant_data", data_groups(
        prior, data.subject_ids, data.design).assign(followup_wk=("patient", data.followup)))
    rows = summarise_parameters(idata.posterior, spec.name, list(PARAMETERS), ci_prob,
                                ci_kind)
    rows += summarise_quantities(quantities, draws.chains, spec.name, ci_prob, ci_kind)

    observed, window = ep_pred.event_counts(data)
    predicted = (gaps <= window[None, :]).sum(axis=1)
    low, high = np.quantile(predicted, [0.025, 0.975])
    counts = pd.DataFrame([{
        "outcome": data.event, "statistic": "n_events_within_episode_windows",
        "observed": observed, "predicted_mean": predicted.mean(), "predicted_low": low,
        "predicted_high": high, "band": "95% equal-tailed posterior predictive",
        "p_predicted_ge_observed": float((predicted >= observed).mean())}])
    kind, lo, hi = ep_pred.gap_observations(data)
    horizon = float(np.quantile(hi, 0.95))
    # the patients' log-likelihood for LOO (power-scaling and the diagnostics use it), from
    # its background thread where it has run since the draws were judged
    set_loo_loglik(EPISODES, data, spec, prior_set, sampled)
    tables = {"ppc_counts": counts,
              "ppc_survival": survival_check_table(
                  data.outcomes, kind, lo, hi, gaps[:, :, None], np.linspace(0, horizon, 61)
              ).assign(time_axis="weeks from the episode's start"),
              "psense": power_scaling_table(idata, quantities, spec.name,
                                            list(prior_set.priors)),
              "survival_by_group": pd.DataFrame(pm_pred.group_survival_curves(
                  draws, data, spec.family, np.linspace(0, 52, 53), rng, ci_prob)
              ).assign(time_axis="weeks from the start of a first episode"),
              "episodes": episode_summary(data)}
    diagnostics = diagnose(idata, gated_variables(idata.posterior, FRAILTY_DERIVED),
                           "episodes", loglik_kind="marginal", earlier=sampled.gated)
    return ModelResult(spec.name, spec, prior_set, idata, rows, diagnostics, tables,
                       episode_notes(data, spec), sampled.timings())


def episode_marginal_loo(data: EpisodeData, spec: ModelSpec) -> bool:
    """``ModelKind.marginal_loo``: the patient's frailty is sampled, so LOO integrates it
    out of each patient's likelihood from the draws."""
    return frailty_form(data, spec) in SAMPLED_FRAILTY


def episode_integrated_loglik(data: EpisodeData, spec: ModelSpec, posterior) -> np.ndarray:
    """``ModelKind.marginal_loglik``: each patient's log-likelihood of all their episodes,
    (chains, draws, patients), the sampled frailty integrated out draw by draw
    (:mod:`jdmbayes.estimands.frailty_marginal`)."""
    return episode_marginal_loglik(posterior, data, spec).reshape(
        posterior.sizes["chain"], posterior.sizes["draw"], data.n_patients)


def episode_summary(data: EpisodeData) -> pd.DataFrame:
    """Episodes per episode number: how many, and how each ended (counts only: no
    identifiers)."""
    frame = pd.DataFrame({"episode": data.episode, "kind": data.kind})
    return frame.groupby("episode").agg(
        episodes=("kind", "size"), exact=("kind", lambda k: int((k == EXACT).sum())),
        interval_censored=("kind", lambda k: int((k == INTERVAL).sum())),
        right_censored=("kind", lambda k: int((k == RIGHT).sum()))).reset_index()


def episode_notes(data: EpisodeData, spec: ModelSpec) -> list[str]:
    per_patient = data.episodes_per_patient()
    form = frailty_form(data, spec)
    notes = [f"{data.n_patients} patients, {len(data.kind)} episodes of '{data.event}' "
             f"(1 to {per_patient.max()} per patient); family {spec.family}; episodes: "
             f"{int((data.kind == EXACT).sum())} exact, {int((data.kind == RIGHT).sum())} "
             f"right-censored, {int((data.kind == INTERVAL).sum())} interval-censored. "
             "Times are gaps from each episode's start.",
             "Patient frailty shared by the episodes: " + (
                 f"{form.replace('_', '-')}." if form != "none" else
                 "none (no patient has two episodes, so it is not identified)."),
             "Population-averaged quantities: g-computation over the modelled patients with "
             f"new frailties, {pm_pred.new_patient_count(data.n_patients, spec.replicates)} "
             f"simulated patient(s) per patient and draw (spec replicates = {spec.replicates}, "
             f"at most {pm_pred.MAX_NEW_PATIENTS} per draw), for "
             + ("each episode number." if has_episode_effect(data, spec)
                else "any episode (no episode-number effect).")]
    open_ended = data.open_ended()
    if open_ended:
        notes.append(f"{open_ended} patient(s) have a last episode that ends in an event "
                     "before their follow-up ends and no censored episode after it: no time "
                     "at risk after that event is modelled (add a censored episode from the "
                     "event to the end of follow-up if the patient stayed at risk).")
    return notes


def episode_prior_predictive(series, data: EpisodeData, spec: ModelSpec, prior_set: PriorSet,
                             draws: int, seed: int) -> PriorPredictive:
    rng = np.random.default_rng([seed, 3])
    prior = sample_prior(build_episode_model(data, spec, prior_set), draws, seed).prior
    prior = prior.to_dataset().drop_vars(["frailty_mode", "frailty_sd"], errors="ignore")
    _, gaps, quantities = predictions(prior, data, spec, rng)
    rows = [quantile_row(gaps, model=spec.name, outcome=data.event,
                         quantity="episode_gap_wk", group="modelled episodes")]
    rows += [quantile_row(v, model=spec.name, outcome=o, quantity=q, group=g)
             for (o, q, g), v in quantities.items()]
    return PriorPredictive(spec.name, spec.kind, rows, times={data.event: gaps.ravel()},
                           times_label="episode gaps",
                           time_axis="weeks from an episode's start")


def episode_simulator(series, data: EpisodeData, spec: ModelSpec):
    """``simulate(truth, rng)``: episode gaps drawn at ``truth`` and observed in the real
    episodes' windows (:func:`jdmbayes.estimands.simulate.simulate_episodes`)."""
    visits = visit_schedule(series, data.subject_ids, data.followup)

    levels = ep_pred.effect_levels(data, spec)

    def simulate(truth: dict, rng: np.random.Generator) -> EpisodeData:
        return simulate_episodes(data, visits, spec.family, truth, rng, levels)

    return simulate


EPISODES = ModelKind(
    derived=lambda data, spec: FRAILTY_DERIVED,
    reparameterised=lambda data, spec, gates=None: (
        spec.other_frailty() if frailty_form(data, spec) != "none" else None),
    name="episodes",
    spec_keys=frozenset(SPEC_KEYS["episodes"]),
    prior_sections=("milestones", "episodes"),
    index=index_episodes,
    build=build_episode_model,
    observed_arrays=lambda data: {"kind": data.kind, "hi": data.hi, "lo": data.lo,
                                  "start": data.start, "patient": data.patient,
                                  "episode": data.episode},
    loglik_name=lambda spec: "episodes",
    marginal_loo=episode_marginal_loo,
    marginal_loglik=episode_integrated_loglik,
    outputs=episode_outputs,
    prior_predictive=episode_prior_predictive,
    simulator=episode_simulator,
    observation_data=lambda spec, real, simulated: observation_data(simulated),
    parameters=PARAMETERS,
    key_parameters=("intercept", "dispersion", "beta_group", "sigma_cell", "sigma_patient",
                    "beta_episode"),
    figures=("rank", "forest", "prior_posterior", "ppc_survival", "survival_by_group"),
)
