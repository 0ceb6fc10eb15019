"""Posterior predictions of recurrent-episode models, in NumPy from posterior draws.

Population-averaged quantities are those of :mod:`jdmbayes.estimands.milestones` for one
gap: the time from an episode's start to its event for a new episode of each modelled
patient under each group assignment, with new frailties (g-computation). They describe
the first episode, and each later episode number when the spec estimates an episode
effect; contrasts and covariate effects are time ratios shared by every episode.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

import jdmbayes.estimands.milestones as pm_pred
from jdmbayes.models import families
from jdmbayes.models.episode_indexing import EpisodeData
from jdmbayes.models.episodes import episode_labels, episode_level, has_episode_effect
from jdmbayes.models.indexing import EXACT, INTERVAL, RIGHT
from jdmbayes.models.spec import ModelSpec


def episode_effect_draws(posterior, data: EpisodeData, spec: ModelSpec) -> np.ndarray:
    """(S, L) log time ratio of each episode effect level against the first episode (a
    column of zeros first; only that column without an episode effect)."""
    size = posterior.sizes["chain"] * posterior.sizes["draw"]
    levels = len(episode_labels(data, spec)) if has_episode_effect(data, spec) else 0
    later = pm_pred.flat_draws(posterior, "beta_episode", size, (levels,))
    return np.column_stack([np.zeros(size), later])


def effect_levels(data: EpisodeData, spec: ModelSpec) -> np.ndarray:
    """(m,) column of :func:`episode_effect_draws` that applies to each episode."""
    if not has_episode_effect(data, spec):
        return np.zeros(len(data.episode), dtype=int)
    return episode_level(data, spec) - 1


def predict_observed_episodes(draws: pm_pred.Draws, effects: np.ndarray, data: EpisodeData,
                              spec: ModelSpec, rng: np.random.Generator) -> np.ndarray:
    """(S, m) gap of each modelled episode (its patient's frailty, its episode number)."""
    design = data.design
    location = pm_pred.cell_location(draws, data)[:, design.patient_cell]       # (S, n)
    frailty = draws.frailty
    if draws.frailty_sd.any():
        frailty = frailty + draws.frailty_sd * rng.standard_normal(frailty.shape)
    location = location + draws.beta_covariate @ design.covariates.T + frailty
    eta = (location[:, data.patient] + draws.intercept[:, :1]
           + effects[:, effect_levels(data, spec)])
    errors = families.np_standard_error(spec.family, rng, eta.shape)
    return np.exp(eta + draws.dispersion[:, :1] * errors)


def episode_views(draws: pm_pred.Draws, effects: np.ndarray, data: EpisodeData,
                  spec: ModelSpec):
    """(draws, data) per episode level the quantities describe: any episode under the
    event's own name without an episode effect; else ``<event> (episode 1)``,
    ``<event> (episode 2)``, ..., their intercepts shifted by the level's effect."""
    if not has_episode_effect(data, spec):
        yield draws, data
        return
    for column, label in enumerate(["episode 1", *episode_labels(data, spec)]):
        yield (replace(draws, intercept=draws.intercept + effects[:, [column]]),
               replace(data, event=f"{data.event} ({label})"))


def derived_quantities(draws, effects, data: EpisodeData, spec: ModelSpec,
                       rng: np.random.Generator) -> dict:
    """(outcome, quantity, group) -> (S,) population-averaged gap quantities."""
    out = {}
    for view_draws, view in episode_views(draws, effects, data, spec):
        out.update(pm_pred.derived_quantities(view_draws, view, spec.family, spec.replicates,
                                              rng))
    return out


def episode_ratios(effects: np.ndarray, data: EpisodeData, spec: ModelSpec) -> dict:
    """(event, 'time_ratio', 'episode j/episode 1') -> (S,) draws."""
    if not has_episode_effect(data, spec):
        return {}
    return {(data.event, "time_ratio", f"{label}/episode 1"): np.exp(effects[:, column + 1])
            for column, label in enumerate(episode_labels(data, spec))}


def gap_observations(data: EpisodeData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(kind, lo, hi) of each episode's gap (times from its start), as (m, 1) columns."""
    lo = np.where(data.kind == INTERVAL, data.lo - data.start, 0.0)
    return data.kind[:, None], lo[:, None], (data.hi - data.start)[:, None]


def event_counts(data: EpisodeData) -> tuple[int, np.ndarray]:
    """Observed events, and each episode's window for the predictive check of their number
    (weeks from its start): until its censoring, or for an observed event until the end of
    the patient's follow-up (when it would have been censored had the event not happened;
    the next episode's start is not a censoring time the event did not decide)."""
    window = np.where(data.kind == RIGHT, data.hi, data.followup[data.patient])
    return int(np.isin(data.kind, (EXACT, INTERVAL)).sum()), window - data.start


def design_windows(data: EpisodeData) -> np.ndarray:
    """Each real episode's window as a fixed design for simulated datasets (weeks from its
    start): until its censoring, or (a real event) until the next episode's start or the end
    of follow-up. Fixed in advance of any simulated gap, so the censoring it implies is
    independent of the simulated data. (Episodes are patient-major in episode order: the
    next row of the same patient is the next episode.)"""
    same_patient = np.r_[data.patient[1:] == data.patient[:-1], False]
    next_start = np.r_[data.start[1:], np.nan]
    end = np.where(same_patient, next_start,
                   np.maximum(data.followup[data.patient], data.hi))
    return np.where(data.kind == RIGHT, data.hi, end) - data.start
