"""Recurrent episodes of one event (spec ``kind = "episodes"``) as gap-time observations.

Each ``events.csv`` row of the spec's event is one episode: at risk from its start
(``start_wk``; when blank, the end of the previous episode, 0 for the first) to its event
(``time_wk``, exactly or in (``time_lo_wk``, ``time_wk``]) or its censoring (``censored =
1`` at ``time_wk``). Times are cumulative from the start of follow-up, as every time of the
contract is; the model works on the gap ``time - start``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from jdmbayes.data.validate import Series
from jdmbayes.errors import InputError, Problem
from jdmbayes.models.indexing import (
    EXACT,
    INTERVAL,
    RIGHT,
    GroupDesign,
    IndexedData,
    build_group_design,
    excluded_frame,
    population_exclusions,
    row_counts,
    select_population,
    subject_rows,
)
from jdmbayes.models.spec import ModelSpec


@dataclass
class EpisodeData(IndexedData):
    """Episodes as gap-time observations, one entry per episode (patient-major, in episode
    order): ``kind`` EXACT (event at ``hi``), RIGHT (censored at ``hi``) or INTERVAL (event
    in (``lo``, ``hi``]); the gap starts at ``start``."""

    event: str
    patient: np.ndarray          # (m,) patient index 0..n-1
    episode: np.ndarray          # (m,) episode number 1, 2, ...
    kind: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    start: np.ndarray
    followup: np.ndarray         # (n,)
    design: GroupDesign

    @property
    def outcomes(self) -> tuple[str, ...]:
        return (self.event,)

    @property
    def max_episode(self) -> int:
        return int(self.episode.max())

    def episodes_per_patient(self) -> np.ndarray:
        return np.bincount(self.patient, minlength=self.n_patients)

    def open_ended(self) -> int:
        """Patients whose last episode ends in an event before their follow-up ends: no time
        at risk after that event is in the series (a censored episode would add it)."""
        last = np.r_[self.patient[1:] != self.patient[:-1], True]
        ended = last & (self.kind != RIGHT) & (self.hi < self.followup[self.patient] - 1e-9)
        return int(ended.sum())


def index_episodes(series: Series, spec: ModelSpec) -> EpisodeData:
    path = str(series.path("events"))
    events = series.events
    if spec.event not in set(events["event"]):
        present = ", ".join(sorted(set(events["event"]))) or "none"
        raise InputError([Problem(path, "spec_event", f"model '{spec.name}' names event "
                                  f"'{spec.event}', which no row of events has; events "
                                  f"present: {present}", column="event")])
    rows = events[events["event"] == spec.event]
    in_population = select_population(series, spec)
    subjects = in_population[in_population["subject_id"].isin(set(rows["subject_id"]))
                             ].reset_index(drop=True)
    if subjects.empty:
        raise InputError([Problem(path, "spec_event", f"model '{spec.name}': no modelled "
                                  f"patient has a '{spec.event}' row", column="event")])
    design = build_group_design(subjects, spec, str(series.path("subjects")),
                                subject_rows(series))
    position = {sid: i for i, sid in enumerate(subjects["subject_id"])}
    rows = rows[rows["subject_id"].isin(position)]
    problems = []
    for sid, group in rows.groupby("subject_id", sort=False):
        if len(group) > 1 and group["episode"].isna().any():
            problems.append(Problem(path, "episode_number", f"subject '{sid}' has "
                                    f"{len(group)} '{spec.event}' rows, not all numbered: give "
                                    "each an episode number 1, 2, ...",
                                    row=int(group.index[group['episode'].isna()][0]) + 1,
                                    column="episode"))
    if problems:
        raise InputError(problems)
    rows = rows.assign(patient=rows["subject_id"].map(position),
                       number=rows["episode"].fillna(1).astype(int))
    rows = rows.sort_values(["patient", "number"])
    start = rows["start_wk"].to_numpy(float).copy()
    previous_end = rows.groupby("patient")["time_wk"].shift(1).fillna(0.0).to_numpy(float)
    start = np.where(np.isnan(start), previous_end, start)
    lo = rows["time_lo_wk"].to_numpy(float)
    kind = np.where(rows["censored"].to_numpy(int) == 1, RIGHT,
                    np.where(np.isnan(lo), EXACT, INTERVAL))
    if not (kind != RIGHT).any():
        raise InputError([Problem(path, "no_events", f"model '{spec.name}': no modelled "
                                  f"patient has an observed '{spec.event}' (all "
                                  f"{len(rows)} episodes are censored); a time-to-event model "
                                  "cannot be estimated from it", column="censored")])
    excluded = excluded_frame(episode_exclusions(series, spec, set(in_population["subject_id"]),
                                                 set(position)))
    return EpisodeData(subjects["subject_id"].tolist(), spec.event,
                       rows["patient"].to_numpy(int), rows["number"].to_numpy(int), kind,
                       np.where(kind == INTERVAL, lo, 0.0), rows["time_wk"].to_numpy(float),
                       start, subjects["followup_wk"].to_numpy(float), design,
                       excluded=excluded,
                       rows=row_counts(series, ("subjects", "events"), excluded))


def episode_exclusions(series: Series, spec: ModelSpec, in_population: set,
                       modelled: set) -> list[tuple]:
    """Every subjects and events row the episode model leaves out, with the reason."""
    rows = population_exclusions(series, spec, in_population)
    rows += [("subjects", int(i) + 1, sid, f"carries no information (no '{spec.event}' row)")
             for i, sid in series.subjects["subject_id"].items()
             if sid in in_population and sid not in modelled]
    for i, sid, event in zip(series.events.index, series.events["subject_id"],
                             series.events["event"]):
        if event != spec.event:
            rows.append(("events", int(i) + 1, sid, f"not named by the spec (event '{event}')"))
        elif sid not in modelled:
            rows.append(("events", int(i) + 1, sid, "population filter"))
    return rows


def episode_table(data: EpisodeData) -> pd.DataFrame:
    """The episodes as the model sees them (model patient numbers, times in weeks)."""
    names = {EXACT: "exact", RIGHT: "right-censored", INTERVAL: "interval-censored"}
    return pd.DataFrame({"patient": data.patient + 1, "episode": data.episode,
                         "start_wk": data.start, "time_lo_wk": data.lo, "time_wk": data.hi,
                         "observation": [names[k] for k in data.kind]})
