"""Turn a validated series and a model spec into the arrays a model is built from.

Patients are numbered 1..n in model coordinates; the map back to ``subject_id`` travels in
``constant_data`` only (it is dropped from shareable outputs).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from jdmbayes.data.validate import Series
from jdmbayes.errors import InputError, Problem
from jdmbayes.models.spec import ModelSpec

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
    differences in change) against the reference. Cells are every combination of levels;
    pooled cell deviations exist only where two or more grouping columns cross
    (:attr:`has_cell_deviations`): with one column a cell is a level, which its main effect
    already describes.
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
    # model column -> {column, kind ('numeric': standardised by centre and sd; 'indicator':
    # 1 for level, 0 for reference), centre, sd, level, reference}
    covariate_info: dict[str, dict] = field(default_factory=dict)

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

    @property
    def has_cell_deviations(self) -> bool:
        return len(self.columns) >= 2 and len(self.cells) > 1

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

    def level_difference(self, location: np.ndarray, column: str, numerator: int,
                         denominator: int) -> np.ndarray:
        """(S,) a level's whole effect against another in ``column``: the difference of the
        cells' ``location`` (S, C) (main effects and cell deviations), averaged over the
        other grouping columns' levels."""
        c = self.columns.index(column)
        diffs = []
        for cell in self.cells:
            if cell[c] != numerator:
                continue
            other = list(cell)
            other[c] = denominator
            diffs.append(location[:, self.cell_index(cell)]
                         - location[:, self.cell_index(tuple(other))])
        return np.mean(diffs, axis=0)

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


SHOWN_VALUES = 10   # a column's values a message lists at most


def population_wording(population: tuple[tuple[str, object], ...]) -> str:
    """The population filter in words: ``drug = 'tofacitinib'``, or ``drug in
    ['tofacitinib', 'ruxolitinib']`` for a list of values (any of them)."""
    return ", ".join(f"{c} in {list(v)!r}" if isinstance(v, tuple) else f"{c} = {v!r}"
                     for c, v in population)


def select_population(series: Series, spec: ModelSpec) -> pd.DataFrame:
    """The subjects the spec's population filter selects: every column's condition holds, a
    list of values selecting the subjects with any of them. An error if a column is not in
    subjects, if a listed value is one no subject has (a misspelt value would otherwise
    leave its patients out unnoticed), or if the filter selects no one."""
    subjects = series.subjects
    path = str(series.path("subjects"))
    mask = pd.Series(True, index=subjects.index)
    for column, value in spec.population:
        if column not in subjects.columns:
            raise InputError([Problem(path, "spec_column",
                                      f"model '{spec.name}' selects on '{column}', which is not "
                                      "a column of subjects", column=column)])
        if not isinstance(value, tuple):
            mask &= subjects[column] == value
            continue
        matches = [subjects[column] == v for v in value]
        absent = [v for v, match in zip(value, matches) if not match.any()]
        if absent:
            seen = sorted(pd.unique(subjects[column]).tolist(), key=str)
            present = ", ".join(repr(v) for v in seen[:SHOWN_VALUES]) + (
                f" and {len(seen) - SHOWN_VALUES} more" if len(seen) > SHOWN_VALUES else "")
            raise InputError([Problem(path, "population_value", f"model '{spec.name}' selects "
                                      f"{column} in {list(value)!r}, and no subject has "
                                      f"{column} = {absent[0]!r} (subjects has {present}); "
                                      "remove it from [model.population] or correct it",
                                      column=column)])
        mask &= np.logical_or.reduce(matches)
    if spec.population and not mask.any():
        raise InputError([Problem(path, "empty_population", f"model '{spec.name}' selects "
                                  f"the patients with {population_wording(spec.population)}, "
                                  "and no subject has that; change [model.population] in the "
                                  "spec or check the values", column=spec.population[0][0])])
    return subjects[mask].reset_index(drop=True)


def _level_matches(column: str, values: list, level) -> list[int]:
    """Positions of ``level`` (as the spec writes it: the value, its label or a dose number)
    among a grouping column's ``values``."""
    return [i for i, v in enumerate(values) if str(v) == str(level)
            or level_label(column, v) == str(level)
            or (isinstance(v, float) and _number(level) == v)]


def subject_rows(series: Series) -> dict[str, int]:
    """Subject id -> its data row in subjects (1-based, as validate counts them)."""
    return {sid: int(i) + 1 for i, sid in zip(series.subjects.index,
                                              series.subjects["subject_id"])}


def build_group_design(subjects: pd.DataFrame, spec: ModelSpec, path: str,
                       rows: dict[str, int] | None = None) -> GroupDesign:
    """The drug-and-dose design of ``subjects`` (refused, with every problem, where the spec
    and the subjects disagree; ``rows`` gives a subject's data row for the messages)."""
    rows = rows or {}
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
            sid = subjects.at[row, "subject_id"]
            problems.append(Problem(path, "grouping_missing", f"subject '{sid}' has no value "
                                    f"of grouping column '{column}'; every modelled patient "
                                    "needs one", row=rows.get(sid), column=column))
    for column in spec.covariates:
        values = subjects[column]
        blank = _blank(values)
        numeric = pd.to_numeric(values.where(~blank), errors="coerce")
        for row in subjects.index[blank]:
            sid = subjects.at[row, "subject_id"]
            problems.append(Problem(path, "covariate_missing", f"subject '{sid}' has no value "
                                    f"of covariate '{column}'; fill it in or leave the patient "
                                    "out with the population filter", row=rows.get(sid),
                                    column=column))
        if not blank.any() and values.astype(str).nunique() == 1:
            problems.append(Problem(path, "covariate_constant", f"model '{spec.name}': "
                                    f"covariate '{column}' is {values.iloc[0]!r} for every "
                                    "modelled patient, so its effect cannot be estimated; "
                                    "remove it from the spec", column=column))
        declared = dict(spec.covariate_reference)
        text_column = bool((~blank & numeric.isna()).any())
        if column in declared and not blank.all():
            present = sorted(map(str, values[~blank].unique()))
            if not text_column:
                problems.append(Problem(str(spec.path), "covariate_reference", f"model "
                                        f"'{spec.name}': covariate '{column}' is numeric; a "
                                        "reference level is for text covariates",
                                        column="covariate_reference"))
            elif str(declared[column]) not in present:
                problems.append(Problem(str(spec.path), "covariate_reference", f"model "
                                        f"'{spec.name}': reference {declared[column]!r} is not "
                                        f"a value of covariate '{column}' (values: "
                                        f"{', '.join(present)})", column="covariate_reference"))
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
    names, columns, info = covariate_columns(subjects, spec)
    centre = {n: i["centre"] for n, i in info.items() if i["kind"] == "numeric"}
    scale = {n: i["sd"] for n, i in info.items() if i["kind"] == "numeric"}
    covariates = np.column_stack(columns) if columns else np.zeros((len(subjects), 0))
    return GroupDesign(tuple(spec.grouping), levels, reference, patient_levels, effect_labels,
                       cells, cell_labels, patient_cell, tuple(names), covariates,
                       centre, scale, info)


def covariate_columns(subjects: pd.DataFrame, spec: ModelSpec):
    """The model's covariate columns: a numeric covariate standardised (population SD, the
    centre and SD recorded), a text covariate as one 0/1 indicator per level other than its
    reference (the spec's ``covariate_reference``, else the first level in sorted order)."""
    declared = {c: str(v) for c, v in spec.covariate_reference}
    names, columns, info = [], [], {}
    for column in spec.covariates:
        raw = subjects[column]
        values = pd.to_numeric(raw, errors="coerce")
        if values.notna().all():
            centre, sd = float(values.mean()), float(values.std(ddof=0) or 1.0)
            names.append(column)
            columns.append(((values - centre) / sd).to_numpy(float))
            info[column] = {"column": column, "kind": "numeric", "centre": centre, "sd": sd}
            continue
        text = raw.astype(str)
        levels = sorted(text.unique())
        reference = declared.get(column, levels[0])
        for level in levels:
            if level == reference:
                continue
            name = f"{column}[{level}]"
            names.append(name)
            columns.append((text == level).to_numpy(float))
            info[name] = {"column": column, "kind": "indicator", "level": level,
                          "reference": reference}
    return names, columns, info


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


EXCLUDED_COLUMNS = ["table", "row", "subject_id", "reason"]


def excluded_frame(rows: list[tuple[str, int, str, str]]) -> pd.DataFrame:
    """Rows of the series a model does not use: (table, row, subject_id, reason); ``row``
    counts data rows from 1, as validation messages do."""
    return pd.DataFrame(rows, columns=EXCLUDED_COLUMNS).astype({"row": int})


def population_exclusions(series: Series, spec: ModelSpec, kept: set) -> list[tuple]:
    """Subjects rows outside the spec's population filter."""
    if not spec.population:
        return []
    wanted = population_wording(spec.population)
    return [("subjects", int(i) + 1, sid, f"population filter ({wanted})")
            for i, sid in series.subjects["subject_id"].items() if sid not in kept]


def row_counts(series: Series, tables: tuple[str, ...], excluded: pd.DataFrame) -> dict:
    """table -> {rows, used, excluded} for the tables a model reads."""
    out = {}
    for table in tables:
        total = len(getattr(series, table))
        dropped = int((excluded["table"] == table).sum())
        out[table] = {"rows": total, "used": total - dropped, "excluded": dropped}
    return out


@dataclass
class IndexedData:
    """What every model kind's arrays carry: the modelled patients and the series rows left
    out (``excluded``, with per-table counts in ``rows``: {rows, used, excluded})."""

    subject_ids: list[str]
    excluded: pd.DataFrame = field(default_factory=lambda: excluded_frame([]), kw_only=True)
    rows: dict = field(default_factory=dict, kw_only=True)

    @property
    def n_patients(self) -> int:
        return len(self.subject_ids)


@dataclass
class MilestoneData(IndexedData):
    """Ordered milestone times per patient as gap-time observations.

    ``kind[i, k]``: EXACT (event at ``hi``), RIGHT (censored at ``hi``), INTERVAL (in
    (``lo``, ``hi``], ``lo`` = 0 for left-censored), LATENT (interval-censored with a later
    milestone, sampled as a latent time), NONE (no information: an earlier milestone was
    censored).
    """

    outcomes: tuple[str, ...]
    kind: np.ndarray
    hi: np.ndarray
    lo: np.ndarray
    followup: np.ndarray
    design: GroupDesign

    @property
    def latent(self) -> list[tuple[int, int]]:
        return [tuple(x) for x in np.argwhere(self.kind == LATENT)]


ROW = "__jdmbayes_data_row__"   # a data row's number, carried through index_milestones


def index_milestones(series: Series, spec: ModelSpec) -> MilestoneData:
    subjects = select_population(series, spec)
    path = str(series.path("events"))
    design = build_group_design(subjects, spec, str(series.path("subjects")),
                                subject_rows(series))
    # each row keeps its data row (1-based, as validate counts them) for the messages
    events = series.events.assign(**{ROW: series.events.index + 1}).set_index(
        ["subject_id", "event"])
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
                                    f"{', '.join(sorted(known)) or 'none'}"
                                    + ("" if "events" in series.paths else
                                       " (the series has no events file)"), column="event"))
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
                                            "was censored", row=int(row[ROW]),
                                            column="censored"))
                continue
            hi[i, k] = row["time_wk"]
            if row["censored"] == 1:
                kind[i, k] = RIGHT if row["time_wk"] > previous_time else NONE
                informative = False
                continue
            exact = np.isnan(row["time_lo_wk"])
            if row["time_wk"] <= previous_time:      # a gap of zero weeks at most
                when = (f"at {row['time_wk']:g} wk" if exact else
                        f"in ({row['time_lo_wk']:g}, {row['time_wk']:g}] wk")
                problems.append(Problem(path, "milestone_order", f"subject '{sid}': "
                                        f"'{event}' {when} is not after the previous "
                                        "milestone", row=int(row[ROW]), column="time_wk"))
            if exact:
                kind[i, k] = EXACT
                previous_time = row["time_wk"]
            else:
                lo[i, k] = row["time_lo_wk"]
                kind[i, k] = LATENT if k < k_count - 1 else INTERVAL
                previous_time = row["time_lo_wk"]
    for k, event in enumerate(spec.outcomes):
        if not problems and not np.isin(kind[:, k], (EXACT, INTERVAL, LATENT)).any():
            problems.append(Problem(path, "no_events", f"model '{spec.name}': no modelled "
                                    f"patient has an observed '{event}' (all {n} are censored "
                                    "or uninformative); a time-to-event model cannot be "
                                    "estimated from it: remove the outcome or add events",
                                    column="event"))
    if problems:
        raise InputError(problems)
    excluded = excluded_frame(milestone_exclusions(series, spec, subjects, kind))
    return MilestoneData(subjects["subject_id"].tolist(), tuple(spec.outcomes), kind, hi, lo,
                         subjects["followup_wk"].to_numpy(float), design, excluded=excluded,
                         rows=row_counts(series, ("subjects", "events"), excluded))


def milestone_exclusions(series: Series, spec: ModelSpec, subjects: pd.DataFrame,
                         kind: np.ndarray) -> list[tuple]:
    """Every subjects and events row the milestone model leaves out, with the reason."""
    position = {sid: i for i, sid in enumerate(subjects["subject_id"])}
    rows = population_exclusions(series, spec, set(position))
    outcome = {event: k for k, event in enumerate(spec.outcomes)}
    for i, sid, event in zip(series.events.index, series.events["subject_id"],
                             series.events["event"]):
        if event not in outcome:
            reason = f"not named by the spec (event '{event}')"
        elif sid not in position:
            reason = "population filter"
        elif kind[position[sid], outcome[event]] == NONE:
            reason = ("carries no information (censored at or before the previous milestone, "
                      "or after an earlier milestone was censored)")
        else:
            continue
        rows.append(("events", int(i) + 1, sid, reason))
    return rows


@dataclass
class LongitudinalData(IndexedData):
    """One measure over visits, long format, missing values kept apart with their notes."""

    measure: str
    patient: np.ndarray        # (n_obs,) patient index of each non-missing value
    week: np.ndarray
    value: np.ndarray
    missing: pd.DataFrame      # rows left out of the likelihood: patient, week, note
    followup: np.ndarray
    design: GroupDesign


def index_longitudinal(series: Series, spec: ModelSpec) -> LongitudinalData:
    rows = series.measurements[series.measurements["measure"] == spec.measure]
    subjects = select_population(series, spec)
    subjects = subjects[subjects["subject_id"].isin(set(rows["subject_id"]))].reset_index(
        drop=True)
    if subjects.empty:
        raise InputError([Problem(str(series.path("measurements")), "spec_measure",
                                  f"model '{spec.name}': no modelled patient has measure "
                                  f"'{spec.measure}'", column="measure")])
    design = build_group_design(subjects, spec, str(series.path("subjects")),
                                subject_rows(series))
    position = {sid: i for i, sid in enumerate(subjects["subject_id"])}
    rows = rows[rows["subject_id"].isin(position)].sort_values(["subject_id", "week"])
    present = rows[rows["value"].notna()]
    missing = rows[rows["value"].isna()]
    if present.empty:
        raise InputError([Problem(str(series.path("measurements")), "no_values",
                                  f"model '{spec.name}': every '{spec.measure}' value of the "
                                  "modelled patients is missing; nothing to fit",
                                  column="value")])
    outside, rule = outside_support(present["value"], spec)
    if outside.any():
        raise InputError([Problem(str(series.path("measurements")), "outside_support",
                                  f"{spec.measure} = {value:g} is outside what model "
                                  f"'{spec.name}' ({spec.likelihood}) can take: {rule}; "
                                  "correct the value, leave it blank with a note, or choose "
                                  "another likelihood", row=int(index) + 1, column="value")
                          for index, value in present.loc[outside, "value"].items()])
    excluded = excluded_frame(longitudinal_exclusions(series, spec, set(position)))
    return LongitudinalData(
        subjects["subject_id"].tolist(), spec.measure,
        present["subject_id"].map(position).to_numpy(int), present["week"].to_numpy(float),
        present["value"].to_numpy(float),
        pd.DataFrame({"patient": missing["subject_id"].map(position).to_numpy(int) + 1,
                      "week": missing["week"].to_numpy(float),
                      "note": missing["note"].fillna("").to_numpy(str)}),
        subjects["followup_wk"].to_numpy(float), design, excluded=excluded,
        rows=row_counts(series, ("subjects", "measurements"), excluded))


def longitudinal_exclusions(series: Series, spec: ModelSpec, modelled: set) -> list[tuple]:
    """Every subjects and measurements row the longitudinal model leaves out, with the
    reason."""
    in_population = set(select_population(series, spec)["subject_id"])
    rows = population_exclusions(series, spec, in_population)
    rows += [("subjects", int(i) + 1, sid,
              f"carries no information (no '{spec.measure}' row)")
             for i, sid in series.subjects["subject_id"].items()
             if sid in in_population and sid not in modelled]
    table = series.measurements
    for i, sid, measure, value, note in zip(table.index, table["subject_id"], table["measure"],
                                            table["value"], table.get("note", [""] * len(table))):
        if measure != spec.measure:
            reason = f"not named by the spec (measure '{measure}')"
        elif sid not in modelled:
            reason = "population filter"
        elif pd.isna(value):
            note = "" if pd.isna(note) else str(note)
            reason = "missing value" + (f" ({note})" if note else "")
        else:
            continue
        rows.append(("measurements", int(i) + 1, sid, reason))
    return rows
