"""Turn a validated series and a model spec into the arrays a model is built from.

Patients are numbered 1..n in model coordinates; the map back to ``subject_id`` travels in
``constant_data`` only (it is dropped from shareable outputs).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .errors import InputError, Problem
from .spec import ModelSpec
from .validate import Series

# kinds of a milestone observation
EXACT, RIGHT, INTERVAL, LATENT, NONE = 0, 1, 2, 3, 4


def level_label(column: str, value) -> str:
    if "dose" in column and isinstance(value, int | float | np.number):
        return f"{float(value):g}mg"
    return str(value)


@dataclass
class GroupDesign:
    """Partial-pooling design: main effects of each grouping column plus drug-by-dose cells.

    Main effects use reference coding (the reference of a column is the denominator of its
    contrast in the spec, else its first level), so ``beta_group`` are log time ratios (or
    differences in change) against the reference. Cells are every combination of levels.
    """

    columns: tuple[str, ...]
    levels: dict[str, list]
    reference: dict[str, int]
    patient_levels: np.ndarray            # (n, n_columns) level index per patient
    effect_labels: list[str]              # one per non-reference level
    cells: list[tuple[int, ...]]          # level index per column
    cell_labels: list[str]
    patient_cell: np.ndarray              # (n,)
    covariate_names: tuple[str, ...]
    covariates: np.ndarray                # (n, p), standardised
    covariate_centre: dict[str, float] = field(default_factory=dict)
    covariate_scale: dict[str, float] = field(default_factory=dict)

    def effect_row(self, level_index: tuple[int, ...]) -> np.ndarray:
        row = np.zeros(len(self.effect_labels))
        position = 0
        for c, column in enumerate(self.columns):
            for level in range(len(self.levels[column])):
                if level == self.reference[column]:
                    continue
                row[position] = float(level_index[c] == level)
                position += 1
        return row

    @property
    def cell_effects(self) -> np.ndarray:
        """(n_cells, n_effects) indicator matrix of main effects of each cell."""
        return np.array([self.effect_row(cell) for cell in self.cells]).reshape(
            len(self.cells), len(self.effect_labels))

    def cell_index(self, level_index: tuple[int, ...]) -> int:
        return self.cells.index(tuple(level_index))

    def label(self, column: str, level: int) -> str:
        return level_label(column, self.levels[column][level])

    def level_position(self, column: str, wanted) -> int:
        """Position of a level of ``column`` as a spec names it (its value, its label such as
        '5mg', or a dose number): the one rule the checks before sampling also apply."""
        matches = _level_matches(column, self.levels[column], wanted)
        if not matches:
            raise KeyError(f"level {wanted!r} not in "
                           f"{[self.label(column, i) for i in range(len(self.levels[column]))]}")
        return matches[0]

    @property
    def patient_cell_labels(self) -> np.ndarray:
        return np.array(self.cell_labels or ["all"])[self.patient_cell]

    def key_arrays(self) -> dict[str, np.ndarray]:
        """The arrays a built model depends on through the design (labels name its
        coordinates, so they are part of it too)."""
        return {"design": self.cell_effects, "cells": self.patient_cell,
                "covariates": self.covariates,
                "labels": np.array([*self.effect_labels, "|", *self.cell_labels, "|",
                                    *self.covariate_names], dtype=str)}


def select_population(series: Series, spec: ModelSpec) -> pd.DataFrame:
    """The subjects the spec's population filter selects (an error if it selects no one)."""
    subjects = series.subjects
    path = str(series.paths["subjects"])
    mask = pd.Series(True, index=subjects.index)
    for column, value in spec.population:
        if column not in subjects.columns:
            raise InputError([Problem(path, "spec_column",
                                      f"model '{spec.name}' selects on '{column}', which is not "
                                      "a column of subjects", column=column)])
        mask &= subjects[column] == value
    if spec.population and not mask.any():
        wanted = ", ".join(f"{c} = {v!r}" for c, v in spec.population)
        raise InputError([Problem(path, "empty_population", f"model '{spec.name}' selects "
                                  f"the patients with {wanted}, and no subject has that; "
                                  "change [model.population] in the spec or check the values",
                                  column=spec.population[0][0])])
    return subjects[mask].reset_index(drop=True)


def _level_matches(column: str, values: list, level) -> list[int]:
    """Positions of ``level`` (as the spec writes it: the value, its label or a dose number)
    among a grouping column's ``values``."""
    return [i for i, v in enumerate(values) if str(v) == str(level)
            or level_label(column, v) == str(level)
            or (isinstance(v, float) and _number(level) == v)]


def build_group_design(subjects: pd.DataFrame, spec: ModelSpec, path: str) -> GroupDesign:
    problems = []
    for column in (*spec.grouping, *spec.covariates):
        if column not in subjects.columns:
            problems.append(Problem(path, "spec_column", f"model '{spec.name}' names column "
                                    f"'{column}', which is not in subjects; add it or remove "
                                    "it from the spec", column=column))
    if problems:
        raise InputError(problems)
    for column in spec.grouping:
        for row in subjects.index[_blank(subjects[column])]:
            problems.append(Problem(path, "grouping_missing", f"subject "
                                    f"'{subjects.at[row, 'subject_id']}' has no value of "
                                    f"grouping column '{column}'; every modelled patient needs "
                                    "one", column=column))
    for column in spec.covariates:
        values = subjects[column]
        blank = _blank(values)
        numeric = pd.to_numeric(values.where(~blank), errors="coerce")
        for row in subjects.index[blank]:
            problems.append(Problem(path, "covariate_missing", f"subject "
                                    f"'{subjects.at[row, 'subject_id']}' has no value of "
                                    f"covariate '{column}'; fill it in or leave the patient "
                                    "out with the population filter", column=column))
        for row in subjects.index[~blank & numeric.isna()]:
            problems.append(Problem(path, "covariate_not_numeric", f"subject "
                                    f"'{subjects.at[row, 'subject_id']}': covariate "
                                    f"'{column}' is {values[row]!r}, not a number; code it as a "
                                    "number", column=column))
    levels, reference = {}, {}
    for column in spec.grouping:
        levels[column] = sorted(subjects[column][~_blank(subjects[column])].unique().tolist())
        reference[column] = 0
    for contrast_column, numerator, denominator in spec.contrasts:
        if contrast_column not in levels:
            continue
        values = levels[contrast_column]
        shown = ", ".join(level_label(contrast_column, v) for v in values)
        for role, level in (("numerator", numerator), ("denominator", denominator)):
            matches = _level_matches(contrast_column, values, level)
            if not matches:
                problems.append(Problem(str(spec.path), "contrast_level", f"model "
                                        f"'{spec.name}': contrast {role} {level!r} is not a "
                                        f"level of '{contrast_column}' among the modelled "
                                        f"patients (levels: {shown}); change or remove the "
                                        "contrast in the spec",
                                        column="contrasts"))
            elif role == "denominator":
                reference[contrast_column] = matches[0]
    if problems:
        raise InputError(problems)
    patient_levels = np.array([[levels[c].index(v) for c, v in zip(spec.grouping, row)]
                               for row in subjects[list(spec.grouping)].itertuples(index=False)],
                              dtype=int).reshape(len(subjects), len(spec.grouping))
    effect_labels = [f"{c}[{level_label(c, v)}]" for c in spec.grouping
                     for i, v in enumerate(levels[c]) if i != reference[c]]
    cells = list(itertools.product(*(range(len(levels[c])) for c in spec.grouping)))
    cell_labels = [":".join(level_label(c, levels[c][i]) for c, i in zip(spec.grouping, cell))
                   for cell in cells] if spec.grouping else []
    patient_cell = np.array([cells.index(tuple(r)) for r in patient_levels], dtype=int) \
        if spec.grouping else np.zeros(len(subjects), dtype=int)
    centre, scale, columns = {}, {}, []
    for column in spec.covariates:
        values = pd.to_numeric(subjects[column], errors="coerce")
        centre[column], scale[column] = float(values.mean()), float(values.std(ddof=0) or 1.0)
        columns.append(((values - centre[column]) / scale[column]).to_numpy(float))
    covariates = np.column_stack(columns) if columns else np.zeros((len(subjects), 0))
    return GroupDesign(tuple(spec.grouping), levels, reference, patient_levels, effect_labels,
                       cells, cell_labels, patient_cell, tuple(spec.covariates), covariates,
                       centre, scale)


def outside_support(values: pd.Series, spec: ModelSpec) -> tuple[pd.Series, str]:
    """Which values the spec's likelihood gives zero probability, and its rule in words."""
    if spec.likelihood == "lognormal":
        return values <= 0, "a log-normal value must be > 0"
    upper = float(spec.upper or 0)
    if spec.likelihood == "beta_binomial":
        return ((values < 0) | (values > upper) | (values % 1 != 0),
                f"a beta-binomial score must be a whole number from 0 to {upper:g}")
    return ((values < 0) | (values > upper),
            f"a censored-normal score must lie from 0 (floor) to {upper:g} (ceiling)")


def _blank(values: pd.Series) -> pd.Series:
    """Missing or empty (a column the contract does not type is read as text)."""
    return values.isna() | (values.astype(str).str.strip() == "")


def _number(value):
    try:
        return float(str(value).removesuffix("mg"))
    except ValueError:
        return None


@dataclass
class MilestoneData:
    """Ordered milestone times per patient as gap-time observations.

    ``kind[i, k]``: EXACT (event at ``hi``), RIGHT (censored at ``hi``), INTERVAL (in
    (``lo``, ``hi``], ``lo`` = 0 for left-censored), LATENT (interval-censored with a later
    milestone, sampled as a latent time), NONE (no information: an earlier milestone was
    censored).
    """

    subject_ids: list[str]
    outcomes: tuple[str, ...]
    kind: np.ndarray
    hi: np.ndarray
    lo: np.ndarray
    followup: np.ndarray
    design: GroupDesign

    @property
    def n_patients(self) -> int:
        return len(self.subject_ids)

    @property
    def latent(self) -> list[tuple[int, int]]:
        return [tuple(x) for x in np.argwhere(self.kind == LATENT)]


def index_milestones(series: Series, spec: ModelSpec) -> MilestoneData:
    subjects = select_population(series, spec)
    path = str(series.paths["events"])
    design = build_group_design(subjects, spec, str(series.paths["subjects"]))
    events = series.events.set_index(["subject_id", "event"])
    n, k_count = len(subjects), len(spec.outcomes)
    kind = np.full((n, k_count), NONE, dtype=int)
    hi = np.ones((n, k_count))
    lo = np.zeros((n, k_count))
    problems = []
    known = set(series.events["event"])
    for event in spec.outcomes:
        if event not in known:
            problems.append(Problem(path, "spec_event", f"model '{spec.name}' names event "
                                    f"'{event}', which no row of events has; events present: "
                                    f"{', '.join(sorted(known))}", column="event"))
    if problems:
        raise InputError(problems)
    for i, sid in enumerate(subjects["subject_id"]):
        previous_time, informative = 0.0, True
        for k, event in enumerate(spec.outcomes):
            if (sid, event) not in events.index:
                problems.append(Problem(path, "missing_event", f"subject '{sid}' has no "
                                        f"'{event}' row but model '{spec.name}' needs one",
                                        column="event"))
                informative = False
                continue
            row = events.loc[(sid, event)]
            if not informative:
                if row["censored"] == 0:
                    problems.append(Problem(path, "milestone_order", f"subject '{sid}': "
                                            f"'{event}' is observed after an earlier milestone "
                                            "was censored", column="censored"))
                continue
            hi[i, k] = row["time_wk"]
            if row["censored"] == 1:
                kind[i, k] = RIGHT if row["time_wk"] > previous_time else NONE
                informative = False
            elif not np.isnan(row["time_lo_wk"]):
                lo[i, k] = row["time_lo_wk"]
                kind[i, k] = LATENT if k < k_count - 1 else INTERVAL
                previous_time = row["time_lo_wk"]
            else:
                if row["time_wk"] <= previous_time:
                    problems.append(Problem(path, "milestone_order", f"subject '{sid}': "
                                            f"'{event}' at {row['time_wk']:g} wk is not after "
                                            "the previous milestone", column="time_wk"))
                kind[i, k] = EXACT
                previous_time = row["time_wk"]
    for k, event in enumerate(spec.outcomes):
        if not problems and not np.isin(kind[:, k], (EXACT, INTERVAL, LATENT)).any():
            problems.append(Problem(path, "no_events", f"model '{spec.name}': no modelled "
                                    f"patient has an observed '{event}' (all {n} are censored "
                                    "or uninformative); a time-to-event model cannot be "
                                    "estimated from it: remove the outcome or add events",
                                    column="event"))
    if problems:
        raise InputError(problems)
    return MilestoneData(subjects["subject_id"].tolist(), tuple(spec.outcomes), kind, hi, lo,
                         subjects["followup_wk"].to_numpy(float), design)


@dataclass
class LongitudinalData:
    """One measure over visits, long format, missing values kept apart with their notes."""

    subject_ids: list[str]
    measure: str
    patient: np.ndarray        # (n_obs,) patient index of each non-missing value
    week: np.ndarray
    value: np.ndarray
    missing: pd.DataFrame      # rows left out of the likelihood: patient, week, note
    followup: np.ndarray
    design: GroupDesign

    @property
    def n_patients(self) -> int:
        return len(self.subject_ids)


def index_longitudinal(series: Series, spec: ModelSpec) -> LongitudinalData:
    rows = series.measurements[series.measurements["measure"] == spec.measure]
    subjects = select_population(series, spec)
    subjects = subjects[subjects["subject_id"].isin(set(rows["subject_id"]))].reset_index(
        drop=True)
    if subjects.empty:
        raise InputError([Problem(str(series.paths["measurements"]), "spec_measure",
                                  f"model '{spec.name}': no modelled patient has measure "
                                  f"'{spec.measure}'", column="measure")])
    design = build_group_design(subjects, spec, str(series.paths["subjects"]))
    position = {sid: i for i, sid in enumerate(subjects["subject_id"])}
    rows = rows[rows["subject_id"].isin(position)].sort_values(["subject_id", "week"])
    present = rows[rows["value"].notna()]
    missing = rows[rows["value"].isna()]
    if present.empty:
        raise InputError([Problem(str(series.paths["measurements"]), "no_values",
                                  f"model '{spec.name}': every '{spec.measure}' value of the "
                                  "modelled patients is missing; nothing to fit",
                                  column="value")])
    outside, rule = outside_support(present["value"], spec)
    if outside.any():
        raise InputError([Problem(str(series.paths["measurements"]), "outside_support",
                                  f"{spec.measure} = {value:g} is outside what model "
                                  f"'{spec.name}' ({spec.likelihood}) can take: {rule}; "
                                  "correct the value, leave it blank with a note, or choose "
                                  "another likelihood", row=int(index) + 1, column="value")
                          for index, value in present.loc[outside, "value"].items()])
    return LongitudinalData(
        subjects["subject_id"].tolist(), spec.measure,
        present["subject_id"].map(position).to_numpy(int), present["week"].to_numpy(float),
        present["value"].to_numpy(float),
        pd.DataFrame({"patient": missing["subject_id"].map(position).to_numpy(int) + 1,
                      "week": missing["week"].to_numpy(float),
                      "note": missing["note"].fillna("").to_numpy(str)}),
        subjects["followup_wk"].to_numpy(float), design)
