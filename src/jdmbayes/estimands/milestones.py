"""Posterior predictions of milestone models, in NumPy from posterior draws.

* ``predict_observed_patients``: each modelled patient's milestone times (their own frailty),
  the posterior predictive group; milestones are ordered by construction (cumulative gaps).
* ``derived_quantities``: population-averaged quantities for ``overall`` (the series as it
  is), each level of each grouping column and each cell, by g-computation: every modelled
  patient keeps their covariates, is assigned the group, and gets new frailties drawn from
  the population distribution (``replicates`` per patient and draw, at most
  :data:`MAX_NEW_PATIENTS` per draw but at least one per patient: :func:`new_patient_count`;
  common random numbers across groups so contrasts are not blurred by simulation noise).
  The probabilities of a milestone by a week count each new patient by their probability of
  it given their frailty and earlier milestones (:func:`event_probabilities`), medians and
  restricted means by their simulated times.
* contrasts: time ratios :math:`\\exp(\\theta_{num}-\\theta_{den})` averaged over the other
  grouping columns' levels (cell deviations included); Weibull hazard ratios for outcomes
  that are a single gap (the first milestone), where proportional hazards hold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from jdmbayes.estimands.blocks import on_threads
from jdmbayes.estimands.names import covariate_label
from jdmbayes.models import families
from jdmbayes.models.indexing import MilestoneData

# new patients per posterior draw in a g-computation (milestones here, the proportions of
# jdmbayes.estimands.longitudinal): ``replicates`` per modelled patient up to this many (a
# 25-patient series keeps 40 each; 300 patients get 7 each), so memory and time stay near
# draws x MAX_NEW_PATIENTS whatever the series' size
MAX_NEW_PATIENTS = 2000


def new_patient_count(n_patients: int, replicates: int) -> int:
    """New patients per modelled patient in a g-computation."""
    return max(1, min(replicates, -(-MAX_NEW_PATIENTS // max(n_patients, 1))))


TIMEPOINTS_WK = (4, 12, 24, 52)
RMST_HORIZON_WK = 52


@dataclass
class Draws:
    """Posterior draws flattened to (S, ...) arrays, S = chains x draws."""

    chains: int
    draws: int
    intercept: np.ndarray          # (S, K)
    dispersion: np.ndarray         # (S, K)
    beta_group: np.ndarray         # (S, E)
    cell_deviation: np.ndarray     # (S, C)
    beta_covariate: np.ndarray     # (S, P)
    sigma_patient: np.ndarray      # (S,)
    frailty: np.ndarray            # (S, n) sampled frailty, or its conditional mode
    frailty_sd: np.ndarray         # (S, n) 0 when sampled; else its conditional spread


def flat_draws(posterior, name, size, tail_shape=()):
    """(chains * draws, ...) array of a posterior variable; zeros when the model lacks it."""
    if name not in posterior:
        return np.zeros((size, *tail_shape))
    values = posterior[name].values
    return values.reshape(size, *values.shape[2:])


def extract_draws(posterior, data: MilestoneData) -> Draws:
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    size = chains * draws
    design = data.design
    return Draws(chains, draws,
                 flat_draws(posterior, "intercept", size),
                 flat_draws(posterior, "dispersion", size),
                 flat_draws(posterior, "beta_group", size, (len(design.effect_labels),)),
                 flat_draws(posterior, "cell_deviation", size, (max(len(design.cells), 1),)),
                 flat_draws(posterior, "beta_covariate", size,
                            (len(design.covariate_names),)),
                 flat_draws(posterior, "sigma_patient", size).reshape(size),
                 *frailty_draws(posterior, size, data.n_patients))


def frailty_draws(posterior, size: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Each modelled patient's frailty as (centre, spread) per draw: sampled (spread 0);
    integrated out of the likelihood (the conditional mode and curvature scale of
    :func:`jdmbayes.models.milestones.integrated_frailty`, a Laplace approximation of the
    frailty given the patient's data); or prior draws without data (centre 0, spread
    ``sigma_patient``)."""
    if "frailty" in posterior:
        return flat_draws(posterior, "frailty", size, (n,)), np.zeros((size, n))
    if "frailty_mode" in posterior:
        return (flat_draws(posterior, "frailty_mode", size, (n,)),
                flat_draws(posterior, "frailty_sd", size, (n,)))
    sigma = flat_draws(posterior, "sigma_patient", size).reshape(size)
    return np.zeros((size, n)), np.repeat(sigma[:, None], n, axis=1)


def cell_location(draws: Draws, data: MilestoneData) -> np.ndarray:
    """(S, C) group part of the log-time location of each cell."""
    design = data.design
    location = draws.beta_group @ design.cell_effects.T if design.effect_labels else \
        np.zeros((draws.intercept.shape[0], max(len(design.cells), 1)))
    if design.has_cell_deviations:
        location = location + draws.cell_deviation
    return location


def simulate_times(family: str, eta: np.ndarray, dispersion: np.ndarray,
                   rng: np.random.Generator, errors: np.ndarray | None = None) -> np.ndarray:
    """Milestone times (..., K) as cumulative sums of gaps with locations eta (..., K)."""
    if errors is None:
        errors = families.np_standard_error(family, rng, eta.shape)
    gaps = np.exp(eta + dispersion * errors)
    return np.cumsum(gaps, axis=-1)


def predict_observed_patients(draws: Draws, data: MilestoneData, family: str,
                              rng: np.random.Generator) -> np.ndarray:
    """(S, n, K) predicted milestone times of the modelled patients."""
    design = data.design
    location = cell_location(draws, data)[:, design.patient_cell]              # (S, n)
    frailty = draws.frailty
    if draws.frailty_sd.any():
        frailty = frailty + draws.frailty_sd * rng.standard_normal(frailty.shape)
    location = location + draws.beta_covariate @ design.covariates.T + frailty
    eta = location[:, :, None] + draws.intercept[:, None, :]
    return simulate_times(family, eta, draws.dispersion[:, None, :], rng)


def group_assignments(data: MilestoneData) -> dict[str, np.ndarray]:
    """Group label -> (n,) cell index of each modelled patient under that assignment."""
    design = data.design
    groups = {"overall": design.patient_cell.copy()}
    for c, column in enumerate(design.columns):
        for level in range(len(design.levels[column])):
            levels = design.patient_levels.copy()
            levels[:, c] = level
            groups[design.label(column, level)] = np.array(
                [design.cell_index(tuple(row)) for row in levels])
    if len(design.columns) > 1:
        for cell, label in zip(design.cells, design.cell_labels):
            groups[label] = np.full(data.n_patients, design.cell_index(cell))
    return groups


# draws per block of the g-computation: a block's (draws, milestones, new patients) arrays
# stay a few megabytes; arrays of every draw at once (92 MB each for the bundled rash
# model) cost more in memory traffic than in arithmetic
DRAW_BLOCK = 250


def population_times(draws: Draws, data: MilestoneData, family: str, replicates: int,
                     rng: np.random.Generator, keep: np.ndarray | None = None,
                     cells: bool = True, locations: bool = False):
    """Yield (group, rows, (len(rows), K, n * r) milestone times), r =
    ``new_patient_count(n, replicates)``, for every group
    assignment of ``group_assignments`` and every block of :data:`DRAW_BLOCK` draws (``rows``
    a slice of the selected draws): the g-computation both derived quantities and survival
    curves use. ``keep`` selects draws (default all); ``cells=False`` leaves out the
    drug-by-dose cells; new frailties and errors are common to all groups. ``locations``:
    also yield each gap's log-time location (everything but ``dispersion_k * error``), of the
    same shape, for :func:`event_probabilities`.

    Each gap is exp(group part + covariates + frailty + intercept_k + dispersion_k * error),
    as :func:`simulate_times`, factorised: all but the group's part is common to every group
    and exponentiated once per block."""
    blocks, times_in = population_blocks(draws, data, family, replicates, rng, keep, cells,
                                         locations)
    for rows in blocks:
        for group, *arrays in times_in(rows):
            yield group, rows, *arrays


def population_blocks(draws: Draws, data: MilestoneData, family: str, replicates: int,
                      rng: np.random.Generator, keep: np.ndarray | None = None,
                      cells: bool = True, locations: bool = False):
    """:func:`population_times` as (blocks, times_in): the slices of :data:`DRAW_BLOCK`
    selected draws, and a function yielding (group, times[, locations]) for one of them.
    Every random number is drawn here, before any block is computed, so the blocks can be
    computed in any order, or on threads, and give the same numbers."""
    keep = np.arange(draws.intercept.shape[0]) if keep is None else keep
    n, k_count = data.n_patients, draws.intercept.shape[1]
    replicates = new_patient_count(n, replicates)
    location = cell_location(draws, data)[keep]                               # (S', C)
    covariate_part = (draws.beta_covariate @ data.design.covariates.T)[keep]  # (S', n)
    frailty_z = rng.standard_normal((len(keep), n * replicates))
    errors = families.np_standard_error(family, rng, (len(keep), n * replicates, k_count))
    groups = {group: assigned for group, assigned in group_assignments(data).items()
              if cells or ":" not in group}
    intercept, dispersion = draws.intercept[keep], draws.dispersion[keep]
    sigma = draws.sigma_patient[keep]

    def times_in(rows: slice):
        common = np.exp(intercept[rows, :, None]
                        + dispersion[rows, :, None] * errors[rows].transpose(0, 2, 1)
                        + (sigma[rows, None] * frailty_z[rows])[:, None, :])
        if locations:     # each gap's location but the group's part, common to every group
            shared = intercept[rows, :, None] + (sigma[rows, None] * frailty_z[rows])[:, None, :]
        for group, assigned in groups.items():
            part = location[rows][:, assigned] + covariate_part[rows]
            times = np.cumsum(np.repeat(np.exp(part), replicates, axis=1)[:, None, :] * common,
                              axis=1)
            if not locations:
                yield group, times
                continue
            yield group, times, shared + np.repeat(part, replicates, axis=1)[:, None, :]

    blocks = [slice(start, min(start + DRAW_BLOCK, len(keep)))
              for start in range(0, len(keep), DRAW_BLOCK)]
    return blocks, times_in


def _cdf_in_place(family: str, z: np.ndarray) -> np.ndarray:
    """The error's CDF at ``z``, written over ``z`` (1 - exp of
    :func:`jdmbayes.models.families.np_log_survival_z`; in place, as these arrays are large)."""
    if family == "weibull":          # 1 - exp(-exp(z)); exp is vectorised, expm1 is not
        np.exp(z, out=z)
        np.negative(z, out=z)
        np.exp(z, out=z)
        return np.subtract(1.0, z, out=z)
    if family == "lognormal":
        return special.ndtr(z, out=z)
    if family == "loglogistic":
        return special.expit(z, out=z)
    raise ValueError(f"unknown family {family!r}")


def event_probabilities(family: str, weeks, times: np.ndarray, location: np.ndarray,
                        dispersion: np.ndarray, k: int) -> list[np.ndarray]:
    """(S,) share of the new patients with milestone ``k`` by each of ``weeks``, each patient
    counted by their probability of it given their frailty and earlier milestones (the last
    gap's error integrated out: conditional Monte Carlo, also called Rao-Blackwellisation),
    rather than by whether their simulated time fell by the week. The same expectation with
    less simulation noise, and no steps of 1/(new patients) in its draws. ``times`` and
    ``location`` as :func:`population_times` yields them, ``dispersion`` (S, K)."""
    scale = 1.0 / dispersion[:, k, None]
    shift = location[:, k] * -scale            # z = log(gap) / dispersion + shift
    z = np.empty_like(shift)
    reached = np.empty(shift.shape, dtype=bool)
    shares = []
    for week in weeks:
        if k == 0:                             # the first gap is the time itself
            np.add(shift, np.log(week) * scale, out=z)
            shares.append(_cdf_in_place(family, z).mean(axis=1))
            continue
        np.subtract(week, times[:, k - 1], out=z)       # the time left for the last gap
        np.greater(z, 0.0, out=reached)
        np.maximum(z, np.finfo(float).tiny, out=z)
        np.log(z, out=z)
        z *= scale
        z += shift
        _cdf_in_place(family, z)
        np.copyto(z, 0.0, where=~reached)   # (also where an earlier time overflowed: NaN)
        shares.append(z.mean(axis=1))
    return shares


def derived_quantities(draws: Draws, data: MilestoneData, family: str, replicates: int,
                       rng: np.random.Generator) -> dict[tuple[str, str, str], np.ndarray]:
    """(outcome, quantity, group) -> (S,) draws of each population-averaged quantity. The
    blocks of draws run on threads (NumPy releases the GIL; :func:`population_blocks` draws
    every random number first, so the values do not depend on the threads)."""
    blocks, times_in = population_blocks(draws, data, family, replicates, rng,
                                         locations=True)

    def compute(rows: slice) -> list[tuple[tuple[str, str, str], np.ndarray]]:
        values = []
        for group, times, location in times_in(rows):
            for k, outcome in enumerate(data.outcomes):
                t = times[:, k]
                values.append(((outcome, "median_time_wk", group), np.median(t, axis=1)))
                shares = event_probabilities(family, TIMEPOINTS_WK, times, location,
                                             draws.dispersion[rows], k)
                values += [((outcome, f"p_event_by_wk{week}", group), share)
                           for week, share in zip(TIMEPOINTS_WK, shares)]
                values.append(((outcome, f"rmst{RMST_HORIZON_WK}_wk", group),
                               np.minimum(t, RMST_HORIZON_WK).mean(axis=1)))
        return values

    size = draws.intercept.shape[0]
    out = {}
    for rows, values in zip(blocks, on_threads(compute, blocks)):
        for key, value in values:
            out.setdefault(key, np.empty(size))[rows] = value
    return out


def contrasts(draws: Draws, data: MilestoneData, spec_contrasts, family: str
              ) -> dict[tuple[str, str, str], np.ndarray]:
    """(outcome, 'time_ratio'|'hazard_ratio', 'num/den') -> (S,) draws."""
    design = data.design
    location = cell_location(draws, data)
    out = {}
    for column, numerator, denominator in spec_contrasts:
        labels = [design.label(column, i) for i in range(len(design.levels[column]))]
        num = design.level_position(column, numerator)
        den = design.level_position(column, denominator)
        log_ratio = design.level_difference(location, column, num, den)
        label = f"{labels[num]}/{labels[den]}"
        for k, outcome in enumerate(data.outcomes):
            out[(outcome, "time_ratio", label)] = np.exp(log_ratio)
            if family == "weibull" and k == 0:
                out[(outcome, "hazard_ratio", label)] = np.exp(-log_ratio / draws.dispersion[:, 0])
    return out


def covariate_effects(draws: Draws, data: MilestoneData) -> dict[tuple[str, str, str], np.ndarray]:
    """Time ratio of each covariate, on the user's scale: per unit and per SD of a numeric
    covariate (standardised in the model: ``beta`` is per SD), level against reference for a
    text one. Covariates shift every milestone's log time alike: one row, on the last
    milestone (as the drug and dose time ratios are shown)."""
    design = data.design
    out = {}
    outcome = data.outcomes[-1]
    for j, name in enumerate(design.covariate_names):
        info = design.covariate_info[name]
        beta = draws.beta_covariate[:, j]
        if info["kind"] == "indicator":
            out[(outcome, "time_ratio", covariate_label(info, "/"))] = np.exp(beta)
            continue
        label = covariate_label(info, "/")
        out[(outcome, "time_ratio_per_unit", label)] = np.exp(beta / info["sd"])
        out[(outcome, "time_ratio_per_sd", label)] = np.exp(beta)
    return out


def observed_event_counts(data: MilestoneData) -> np.ndarray:
    """(K,) number of patients whose milestone was observed (exactly or in an interval)."""
    from jdmbayes.models.indexing import EXACT, INTERVAL, LATENT

    return np.isin(data.kind, (EXACT, INTERVAL, LATENT)).sum(axis=0)


def predicted_event_counts(times: np.ndarray, data: MilestoneData) -> np.ndarray:
    """(S, K) predicted number of patients with the milestone within their own follow-up."""
    return (times <= data.followup[None, :, None]).sum(axis=1)


def group_survival_curves(draws: Draws, data: MilestoneData, family: str, grid: np.ndarray,
                          rng: np.random.Generator, ci_prob: float, max_draws: int = 400,
                          replicates: int = 8) -> list[dict]:
    """Population-averaged S(t) on ``grid`` for the series and per drug and per dose level
    (``population_times`` on at most ``max_draws`` evenly spaced draws), with the median and
    the equal-tailed ``ci_prob`` band across draws."""
    size = draws.intercept.shape[0]
    keep = np.unique(np.linspace(0, size - 1, min(size, max_draws)).astype(int))
    tail = (1 - ci_prob) / 2
    survival = {}
    # drug-by-dose cells are left out: the report shows the main levels
    for group, block, times in population_times(draws, data, family, replicates, rng, keep,
                                                cells=False):
        for k, outcome in enumerate(data.outcomes):
            ordered = np.sort(times[:, k], axis=1)
            survival.setdefault((group, outcome), np.empty((len(keep), grid.size)))[block] = (
                1 - np.stack([np.searchsorted(row, grid, side="right") for row in ordered])
                / ordered.shape[1])
    rows = []
    for (group, outcome), curves in survival.items():
        low, mid, high = np.quantile(curves, [tail, 0.5, 1 - tail], axis=0)
        rows += [{"outcome": outcome, "group": group, "time_wk": float(t),
                  "survival_median": float(m), "survival_low": float(a),
                  "survival_high": float(b), "ci_prob": ci_prob, "ci_kind": "eti"}
                 for t, a, m, b in zip(grid, low, mid, high)]
    return rows
