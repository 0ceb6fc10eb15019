"""Datasets simulated from a model on a real design, given one set of parameter values.

The design is that of a real series: its patients, their drug-by-dose groups, follow-up, visit
schedule and missing values. What is simulated is what the model describes: milestone times
(then observed as the real series observes them) and measured values. Used by
simulation-based calibration (:mod:`jdmbayes.batch.sbc`).

Observation process of milestones, read off the real series per outcome: an outcome that
has any interval-censored time in the series is seen only at the patient's visits (the
interval between the visits around the time); otherwise its time is recorded exactly. A
time after the patient's follow-up is right-censored at follow-up, and later milestones
of that patient carry no information.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jdmbayes.estimands.episodes import design_windows
from jdmbayes.estimands.longitudinal import draw_values, with_patient_effects
from jdmbayes.models import families
from jdmbayes.models.indexing import (
    EXACT,
    INTERVAL,
    LATENT,
    NONE,
    RIGHT,
    LongitudinalData,
    MilestoneData,
)
from jdmbayes.models.longitudinal import time_shape


def visit_schedule(series, subject_ids: list[str], followup: np.ndarray) -> list[np.ndarray]:
    """Each patient's visit weeks (any measure), with week 0 and the end of follow-up."""
    weeks = series.measurements.groupby("subject_id")["week"].apply(
        lambda w: np.unique(w.to_numpy(float)))
    return [_clip(np.concatenate([[0.0, end], weeks.get(sid, np.zeros(0))]), end)
            for sid, end in zip(subject_ids, followup)]


def _clip(weeks: np.ndarray, end: float) -> np.ndarray:
    weeks = np.unique(weeks)
    return weeks[weeks <= end]


def interval_outcomes(data: MilestoneData) -> np.ndarray:
    """(K,) whether each outcome is seen only at visits in the real series."""
    return ((data.kind == INTERVAL) | (data.kind == LATENT)).any(axis=0)


def milestone_locations(data: MilestoneData, truth: dict,
                        rng: np.random.Generator | None = None) -> np.ndarray:
    """(n, K) log-time location of each gap: intercept + group effects + frailty."""
    eta = patient_locations(data.design, data.kind.shape[0], truth, rng)
    return eta[:, None] + truth["intercept"][None, :]


def patient_locations(design, n: int, truth: dict,
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """(n,) log-time location of each patient without the intercept: group and covariate
    effects plus the frailty (sampled in the model, or drawn here when it is integrated
    out of the model's likelihood)."""
    eta = np.zeros(n)
    if design.effect_labels:
        eta = eta + design.cell_effects[design.patient_cell] @ truth["beta_group"]
    if "cell_deviation" in truth:
        eta = eta + truth["cell_deviation"][design.patient_cell]
    if design.covariate_names:
        eta = eta + design.covariates @ truth["beta_covariate"]
    if "frailty" in truth:
        eta = eta + truth["frailty"]
    elif "sigma_patient" in truth and rng is not None:
        # the frailty integrated out of the model's likelihood: drawn with the data
        eta = eta + rng.normal(0.0, float(truth["sigma_patient"]), n)
    return eta


def simulate_milestones(data: MilestoneData, visits: list[np.ndarray], family: str,
                        truth: dict, rng: np.random.Generator) -> MilestoneData:
    """A copy of ``data`` with milestone times drawn from the model at ``truth`` and observed
    as the real series observes them (module docstring)."""
    eta = milestone_locations(data, truth, rng)
    gaps = np.exp(eta + truth["dispersion"][None, :]
                  * families.np_standard_error(family, rng, eta.shape))
    times = np.cumsum(gaps, axis=1)
    at_visits = interval_outcomes(data)
    n, k_count = eta.shape
    kind = np.full((n, k_count), NONE, dtype=int)
    hi, lo = np.ones((n, k_count)), np.zeros((n, k_count))
    for i in range(n):
        end = data.followup[i]
        for k in range(k_count):
            t = times[i, k]
            if t > end:
                kind[i, k], hi[i, k] = RIGHT, end
                break
            if at_visits[k]:
                schedule = visits[i]
                hi[i, k] = schedule[schedule >= t][0]
                lo[i, k] = schedule[schedule < t].max()
                kind[i, k] = INTERVAL if k == k_count - 1 else LATENT
            else:
                kind[i, k], hi[i, k] = EXACT, t
    return replace(data, kind=kind, hi=hi, lo=lo)


def simulate_episodes(data, visits: list[np.ndarray], family: str, truth: dict,
                      rng: np.random.Generator, levels: np.ndarray | None = None):
    """A copy of episode data (:class:`jdmbayes.models.episode_indexing.EpisodeData`) with
    every episode's gap drawn from the model at ``truth``, observed in the real episode's
    window: from its start until its censoring, or (a real event) until the next episode's
    start or the end of follow-up. An episode whose real event was interval-censored is seen
    at the patient's visits in that window (the window's end counts as one). ``levels``
    gives each episode's column of ``beta_episode`` plus one (0: the first episode's)."""
    eta = patient_locations(data.design, data.n_patients, truth, rng)[data.patient] \
        + float(truth["intercept"][0])
    if "beta_episode" in truth and levels is not None:
        eta = eta + np.r_[0.0, np.atleast_1d(truth["beta_episode"])][levels]
    gaps = np.exp(eta + float(truth["dispersion"][0])
                  * families.np_standard_error(family, rng, eta.shape))
    window = design_windows(data)
    kind = np.full(len(gaps), RIGHT, dtype=int)
    hi = data.start + window
    lo = np.zeros(len(gaps))
    for row, (gap, start) in enumerate(zip(gaps, data.start)):
        if gap > window[row]:
            continue
        t = start + gap
        if data.kind[row] == INTERVAL:
            seen = visits[data.patient[row]]
            seen = np.unique(np.r_[seen[(seen > start) & (seen < start + window[row])],
                                   start + window[row]])
            hi[row] = seen[seen >= t][0]
            before = seen[seen < t]
            lo[row] = before.max() if before.size else start
            kind[row] = INTERVAL
        else:
            kind[row], hi[row] = EXACT, t
    return replace(data, kind=kind, hi=hi, lo=lo)


def simulate_longitudinal(data: LongitudinalData, spec, truth: dict,
                          rng: np.random.Generator) -> LongitudinalData:
    """A copy of ``data`` with every observed value drawn from the model at ``truth`` (same
    patients, visits and missing values)."""
    # one draw: the shape's parameters at their true values
    draw = {"intercept": np.zeros(1), **{name: np.asarray(truth[name])[None, ...] for name in
                                          ("tau_weeks", "spline_coef") if name in truth}}
    if "baseline" not in truth:
        # the patient effects integrated out of the model's likelihood: drawn with the data
        one = {name: np.asarray(truth.get(name, 0.0), float)[None, ...] for name in
               ("intercept", "sigma_intercept", "change", "sigma_change",
                "rho_baseline_change", "beta_group", "cell_deviation", "beta_covariate")}
        effects = with_patient_effects(one, data, spec, rng)
        truth = {**truth, "baseline": effects["baseline"][0],
                 "patient_change": effects["patient_change"][0]}
    mu = time_shape(data, spec).mean(truth["baseline"][data.patient],
                                     truth["patient_change"][data.patient], data.week,
                                     draw)[0]
    values = draw_values(spec.likelihood, mu, truth["noise"], spec.upper or 1.0, rng)
    return replace(data, value=np.asarray(values, float))
