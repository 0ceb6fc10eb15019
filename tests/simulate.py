"""Series simulated from the milestone model with known parameters (for recovery tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jdmbayes.data.validate import Series
from jdmbayes.models import families

OUTCOMES = ("rash_improvement", "rash_marked_improvement", "rash_resolution")
VISITS = np.array([0, 1, 2, 4, 8, 12, 24, 36, 48, 60, 72])


def simulate_milestone_series(rng: np.random.Generator, n: int, family: str, truth: dict
                              ) -> Series:
    """Three ordered milestones; resolution seen only at visits (interval-censored) and
    right-censored at follow-up; drug x dose groups; a shared frailty."""
    drug = rng.choice(["ruxolitinib", "tofacitinib"], n)
    dose = rng.choice([2.5, 5.0], n)
    effect = (truth["beta_drug"] * (drug == "ruxolitinib")
              + truth["beta_dose"] * (dose == 5.0))
    frailty = rng.normal(0, truth["sigma_patient"], n)
    eta = truth["intercept"][None, :] + (effect + frailty)[:, None]
    gaps = np.exp(eta + truth["dispersion"][None, :]
                  * families.np_standard_error(family, rng, eta.shape))
    times = np.cumsum(gaps, axis=1)
    followup = np.round(rng.uniform(20, 72, n), 1)
    subjects = pd.DataFrame({
        "subject_id": [f"SIM{i:03d}" for i in range(n)], "sex": "F", "age_onset_y": 4.0,
        "age_start_y": 6.0, "weight_kg": 25.0, "drug": drug, "dose_start_mg_bid": dose,
        "dose_max_mg_bid": dose, "disease_course_mo": 24.0, "refractory_type": "gc_dependent",
        "rash_at_start": 1, "weak_at_start": 0, "followup_wk": followup})
    rows = []
    for i in range(n):
        sid = subjects.at[i, "subject_id"]
        censored = False
        for k, event in enumerate(OUTCOMES):
            t = times[i, k]
            if censored or t > followup[i]:
                if not censored:
                    rows.append((sid, event, followup[i], 1, np.nan))
                censored = True
                continue
            if k < 2:
                rows.append((sid, event, round(t, 4), 0, np.nan))
                continue
            seen = VISITS[(VISITS >= t) & (VISITS <= followup[i])]
            if seen.size == 0:
                rows.append((sid, event, followup[i], 1, np.nan))
                continue
            hi = float(seen[0])
            lo = float(VISITS[VISITS < t].max())
            rows.append((sid, event, hi, 0, lo))
    events = pd.DataFrame(rows, columns=["subject_id", "event", "time_wk", "censored",
                                         "time_lo_wk"])
    measurements = pd.DataFrame(columns=["subject_id", "measure", "week", "value", "note"])
    paths = {k: Path(f"<simulated {k}>") for k in ("subjects", "events", "measurements")}
    return Series(Path("<simulated>"), subjects, events, measurements, paths, {})


def simulate_longitudinal_series(rng: np.random.Generator, n: int, truth: dict,
                                 missing_baseline: float = 0.2) -> Series:
    """CMAS-like beta-binomial scores on 0..52 at 0, 4, 12, 24, 36 weeks, many near the
    ceiling, with a share of baselines missing (kept as blank values with a note)."""
    from scipy import special

    drug = rng.choice(["ruxolitinib", "tofacitinib"], n)
    dose = rng.choice([2.5, 5.0], n)
    baseline = truth["intercept"] + truth["sigma_intercept"] * rng.standard_normal(n)
    change = (truth["change"] + truth["beta_drug"] * (drug == "ruxolitinib")
              + truth["beta_dose"] * (dose == 5.0)
              + truth["sigma_change"] * rng.standard_normal(n))
    rows = []
    for i in range(n):
        for week in (0, 4, 12, 24, 36):
            mu = baseline[i] + change[i] * (1 - np.exp(-week / truth["tau_weeks"]))
            p = special.expit(mu)
            phi = truth["noise"]
            value = float(rng.binomial(52, rng.beta(p * phi, (1 - p) * phi)))
            note = ""
            if week == 0 and rng.random() < missing_baseline:
                value, note = np.nan, "unevaluable"
            rows.append((f"SIM{i:03d}", "cmas", float(week), value, note))
    subjects = pd.DataFrame({
        "subject_id": [f"SIM{i:03d}" for i in range(n)], "sex": "M", "age_onset_y": 4.0,
        "age_start_y": 6.0, "weight_kg": 25.0, "drug": drug, "dose_start_mg_bid": dose,
        "dose_max_mg_bid": dose, "disease_course_mo": 24.0, "refractory_type": "ineffective",
        "rash_at_start": 0, "weak_at_start": 1, "followup_wk": 40.0})
    measurements = pd.DataFrame(rows, columns=["subject_id", "measure", "week", "value", "note"])
    events = pd.DataFrame(columns=["subject_id", "event", "time_wk", "censored", "time_lo_wk"])
    paths = {k: Path(f"<simulated {k}>") for k in ("subjects", "events", "measurements")}
    return Series(Path("<simulated>"), subjects, events, measurements, paths, {})
