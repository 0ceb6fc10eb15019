"""Validate a series against the data contract (``data/README.md``) and type its columns.

Every rule is checked and every violation reported at once, each naming file, row, column
and rule. :func:`load_series` raises :class:`~jdmbayes.errors.InputError` with all of them.
"""

from __future__ import annotations

import math
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jdmbayes.data.io import RawSeries, read_series
from jdmbayes.errors import InputError, Problem

# Ordered rash milestones of the bundled contract: each must not come before the one before it.
MILESTONE_ORDER = ("rash_improvement", "rash_marked_improvement", "rash_resolution")
# Bounded integer scores: measure -> (lowest, highest).
SCORE_RANGES = {"cmas": (0, 52), "cat_bm": (0, 17)}
POSITIVE_MEASURES = ("ldh", "ck")

# column -> kind; kinds: id, text, float, binary, sex, refractory, drug
SUBJECT_COLUMNS = {"subject_id": "id", "followup_wk": "float"}
# the letter's columns: not required, but checked by their rules whenever present
SUBJECT_OPTIONAL = {
    "sex": "sex", "age_onset_y": "float", "age_start_y": "float", "weight_kg": "float",
    "drug": "drug", "dose_start_mg_bid": "float", "dose_max_mg_bid": "float",
    "disease_course_mo": "float", "refractory_type": "refractory", "rash_at_start": "binary",
    "weak_at_start": "binary",
}
# time unit a series may declare (series.toml [series] time_unit) -> (column suffix, visit
# column, weeks per unit): its time columns are named in that unit and converted to weeks
TIME_UNITS = {"weeks": ("wk", "week", 1.0), "days": ("d", "day", 1.0 / 7.0),
              "months": ("mo", "month", 365.25 / 12.0 / 7.0)}
TIME_COLUMNS = {"subjects": ("followup_wk",), "events": ("time_wk", "time_lo_wk", "start_wk"),
                "measurements": ("week",)}
EVENT_COLUMNS = {"subject_id": "id", "event": "text", "time_wk": "float", "censored": "binary"}
# recurrent episodes of one event: ``episode`` numbers them 1, 2, ... per subject and event;
# ``start_wk`` is when an episode's time at risk starts (blank: when the previous episode
# ended, 0 for the first). Times stay cumulative from the start of follow-up.
EVENT_OPTIONAL = {"time_lo_wk": "float", "episode": "float", "start_wk": "float"}
MEASUREMENT_COLUMNS = {"subject_id": "id", "measure": "text", "week": "float", "value": "float"}
MEASUREMENT_OPTIONAL = {"note": "text"}
POSITIVE_SUBJECT_COLUMNS = ("weight_kg", "followup_wk")
# a dose of 0 is a control arm (placebo or untreated): a group like any other
NONNEGATIVE_SUBJECT_COLUMNS = ("age_onset_y", "age_start_y", "disease_course_mo",
                               "dose_start_mg_bid", "dose_max_mg_bid")


@dataclass
class Series:
    """A validated series: typed tables plus where they came from. Times are in weeks
    whatever unit the series declared (``time_unit``; converted on reading)."""

    folder: Path
    subjects: pd.DataFrame
    events: pd.DataFrame
    measurements: pd.DataFrame
    paths: dict[str, Path]
    sha256: dict[str, str]
    time_unit: str = "weeks"

    def path(self, table: str) -> Path:
        """The file of ``table``; for a table the series does not have (no events or
        measurements), the file that would hold it, so that a message can name it."""
        return self.paths.get(table, self.folder / f"{table}.csv")


def user_column(column: str, unit: str) -> str:
    """The name a series in ``unit`` gives the contract's weekly column ``column``."""
    suffix, visit, _ = TIME_UNITS[unit]
    if column == "week":
        return visit
    return column.removesuffix("_wk") + f"_{suffix}" if column.endswith("_wk") else column


class _Checker:
    def __init__(self, raw: RawSeries, unit: str = "weeks"):
        self.raw = raw
        self.problems: list[Problem] = []
        # the contract's weekly names -> the series' own (``time_d``, ``day`` ...)
        self.names = {c: user_column(c, unit) for cs in TIME_COLUMNS.values() for c in cs}
        self.unit = unit

    def add(self, table: str, rule: str, message: str, row: int | None = None,
            column: str | None = None) -> None:
        """A problem, named in the series' own columns and unit."""
        if self.unit != "weeks":
            for ours, theirs in self.names.items():
                message = re.sub(rf"\b{ours}\b", theirs, message)
            message = re.sub(r"\bwk\b", TIME_UNITS[self.unit][0], message)
        self.problems.append(Problem(str(self.raw.paths[table]), rule, message, row,
                                     self.names.get(column, column)))

    # -- columns and types -------------------------------------------------------------
    def typed(self, table: str, required: dict[str, str], optional: dict[str, str],
              fill: bool = True):
        """The table with every cell typed; absent optional columns are added blank when
        ``fill`` (events, measurements), left absent otherwise (the letter's subject
        columns: a spec naming one that is absent is refused by name)."""
        frame = self.raw.tables[table]
        missing = [c for c in required if c not in frame.columns]
        for column in missing:
            self.add(table, "missing_column", f"required column '{column}' is missing",
                     column=column)
        if missing:
            return None
        out = pd.DataFrame(index=frame.index)
        for column in frame.columns:
            kind = required.get(column) or optional.get(column)
            values = frame[column]
            if kind is None:  # extra columns: keep, numeric where every cell is numeric
                converted = pd.to_numeric(values.replace("", np.nan), errors="coerce")
                ok = converted.notna() | (values == "")
                out[column] = converted if ok.all() else values
                continue
            out[column] = self.convert(table, column, kind, values, column in required)
        if optional and fill:
            for column, kind in optional.items():
                if column not in out.columns:
                    out[column] = np.nan if kind == "float" else ""
        return out

    def convert(self, table, column, kind, values, required):
        result = []
        for index, text in values.items():
            row = int(index) + 1
            blank = text == ""
            if kind in ("id", "drug", "sex", "refractory") and blank:
                self.add(table, "wrong_type", "value is blank; a value is required", row, column)
                result.append(None)
                continue
            if kind == "float":
                if blank:
                    if required and not (table == "measurements" and column == "value"):
                        self.add(table, "wrong_type", "value is blank; a number is required",
                                 row, column)
                    result.append(math.nan)
                    continue
                try:
                    number = float(text)
                except ValueError:
                    self.add(table, "wrong_type", f"'{text}' is not a number", row, column)
                    result.append(math.nan)
                    continue
                if not math.isfinite(number):
                    self.add(table, "not_finite", f"'{text}' is not a finite number", row, column)
                    result.append(math.nan)
                    continue
                result.append(number)
            elif kind == "binary":
                if text not in ("0", "1", "0.0", "1.0"):
                    rule = "censored_binary" if column == "censored" else "binary_value"
                    self.add(table, rule, f"'{text}' is not 0 or 1", row, column)
                    result.append(None)
                else:
                    result.append(int(float(text)))
            elif kind == "sex":
                if text not in ("F", "M"):
                    self.add(table, "sex_value", f"'{text}' is not F or M", row, column)
                result.append(text)
            elif kind == "refractory":
                if text not in ("ineffective", "gc_dependent"):
                    self.add(table, "refractory_value",
                             f"'{text}' is not 'ineffective' or 'gc_dependent'", row, column)
                result.append(text)
            elif kind == "drug":
                if text != text.lower():
                    self.add(table, "drug_lower_case",
                             f"drug name '{text}' must be lower case", row, column)
                result.append(text)
            else:
                if kind in ("id", "text") and blank and required:
                    self.add(table, "wrong_type", "value is blank; text is required", row, column)
                result.append(text)
        return pd.Series(result, index=values.index, dtype=object if kind != "float"
                         else float)

    # -- table rules -------------------------------------------------------------------
    def subjects_rules(self, subjects: pd.DataFrame) -> None:
        t = "subjects"
        duplicated = subjects["subject_id"].duplicated(keep="first")
        for index in subjects.index[duplicated]:
            first = subjects.index[subjects["subject_id"] == subjects.at[index, "subject_id"]][0]
            self.add(t, "duplicate_subject",
                     f"subject_id '{subjects.at[index, 'subject_id']}' already on row "
                     f"{first + 1}", index + 1, "subject_id")
        for column in (c for c in POSITIVE_SUBJECT_COLUMNS if c in subjects):
            for index in subjects.index[subjects[column] <= 0]:
                self.add(t, "positive_value", f"{column} must be > 0, got "
                         f"{subjects.at[index, column]:g}", index + 1, column)
        for column in (c for c in NONNEGATIVE_SUBJECT_COLUMNS if c in subjects):
            for index in subjects.index[subjects[column] < 0]:
                self.add(t, "nonnegative_value", f"{column} must be >= 0, got "
                         f"{subjects.at[index, column]:g}", index + 1, column)
        if {"age_start_y", "age_onset_y"} <= set(subjects):
            for index in subjects.index[subjects["age_start_y"] < subjects["age_onset_y"]]:
                self.add(t, "age_order", "age_start_y is before age_onset_y "
                         f"({subjects.at[index, 'age_start_y']:g} < "
                         f"{subjects.at[index, 'age_onset_y']:g})", index + 1, "age_start_y")
        if {"dose_start_mg_bid", "dose_max_mg_bid"} <= set(subjects):
            low = subjects["dose_max_mg_bid"] < subjects["dose_start_mg_bid"]
            for index in subjects.index[low]:
                self.add(t, "dose_order", "dose_max_mg_bid is below dose_start_mg_bid "
                         f"({subjects.at[index, 'dose_max_mg_bid']:g} < "
                         f"{subjects.at[index, 'dose_start_mg_bid']:g})", index + 1,
                         "dose_max_mg_bid")

    def known_subjects(self, table: str, frame: pd.DataFrame, known: set[str]) -> None:
        # a blank subject_id is reported once, as blank (wrong_type), not also as unknown
        unknown = ~frame["subject_id"].isin(known) & frame["subject_id"].notna()
        for index in frame.index[unknown]:
            self.add(table, "unknown_subject", f"subject_id '{frame.at[index, 'subject_id']}' "
                     "is not in subjects", index + 1, "subject_id")

    def events_rules(self, events: pd.DataFrame, followup: dict[str, float]) -> None:
        t = "events"
        duplicated = events.duplicated(["subject_id", "event", "episode"], keep="first")
        for index in events.index[duplicated]:
            numbered = not math.isnan(events.at[index, "episode"])
            what = (f"episode {events.at[index, 'episode']:g} of '{events.at[index, 'event']}'"
                    if numbered else f"a '{events.at[index, 'event']}' row")
            self.add(t, "duplicate_event", f"subject '{events.at[index, 'subject_id']}' already "
                     f"has {what}" + ("" if numbered else "; number repeated episodes of one "
                                      "event 1, 2, ... in an 'episode' column"),
                     index + 1, "episode" if numbered else "event")
        for index in events.index[events["time_wk"] <= 0]:
            self.add(t, "non_positive_time",
                     f"time_wk must be > 0, got {events.at[index, 'time_wk']:g}", index + 1,
                     "time_wk")
        for index in events.index[events["time_lo_wk"] < 0]:
            self.add(t, "non_positive_time",
                     f"time_lo_wk must be >= 0, got {events.at[index, 'time_lo_wk']:g}",
                     index + 1, "time_lo_wk")
        for index in events.index[events["time_lo_wk"] >= events["time_wk"]]:
            self.add(t, "interval_order", "time_lo_wk must be < time_wk "
                     f"({events.at[index, 'time_lo_wk']:g} >= {events.at[index, 'time_wk']:g})",
                     index + 1, "time_lo_wk")
        interval = events["time_lo_wk"].notna()
        for index in events.index[interval & (events["censored"] == 1)]:
            self.add(t, "interval_censored_flag", "a row with time_lo_wk is an observed "
                     "interval: censored must be 0", index + 1, "censored")
        limit = events["subject_id"].map(followup)
        for index in events.index[events["time_wk"] > limit + 1e-9]:
            self.add(t, "after_followup", f"time_wk {events.at[index, 'time_wk']:g} is after "
                     f"followup_wk {limit[index]:g}", index + 1, "time_wk")
        self.milestone_order(events)
        self.episode_rules(events)

    def episode_rules(self, events: pd.DataFrame) -> None:
        """Numbered episodes: whole numbers 1, 2, ... in time order, each starting no earlier
        than the previous one ended, and an observed interval after its own start."""
        t = "events"
        numbered = events["episode"].notna()
        for index in events.index[numbered & ((events["episode"] < 1)
                                              | (events["episode"] % 1 != 0))]:
            self.add(t, "episode_number", f"episode must be a whole number >= 1, got "
                     f"{events.at[index, 'episode']:g}", index + 1, "episode")
        starts = events["start_wk"].notna()
        for index in events.index[starts & ~numbered]:
            self.add(t, "episode_start", "start_wk is for numbered episodes: give the row an "
                     "episode number", index + 1, "start_wk")
        for index in events.index[starts & (events["start_wk"] < 0)]:
            self.add(t, "episode_start", f"start_wk must be >= 0, got "
                     f"{events.at[index, 'start_wk']:g}", index + 1, "start_wk")
        for index in events.index[starts & (events["start_wk"] >= events["time_wk"])]:
            self.add(t, "episode_start", f"the episode must end after it starts (start_wk "
                     f"{events.at[index, 'start_wk']:g} >= time_wk "
                     f"{events.at[index, 'time_wk']:g})", index + 1, "start_wk")
        rows = events[numbered & (events["episode"] >= 1) & (events["episode"] % 1 == 0)]
        for (subject, event), group in rows.groupby(["subject_id", "event"], sort=False):
            group = group.sort_values("episode")
            numbers = group["episode"].astype(int).tolist()
            if numbers != list(range(1, len(numbers) + 1)):
                self.add(t, "episode_number", f"subject '{subject}': episodes of '{event}' are "
                         f"numbered {', '.join(map(str, numbers))}; number them 1, 2, ... "
                         "in time order", int(group.index[0]) + 1, "episode")
                continue
            previous = None
            for index, row in group.iterrows():
                start = row["start_wk"] if not math.isnan(row["start_wk"]) else (
                    0.0 if previous is None else previous["time_wk"])
                if previous is not None:
                    if math.isnan(row["start_wk"]) and not math.isnan(previous["time_lo_wk"]):
                        self.add(t, "episode_start", f"subject '{subject}': episode "
                                 f"{int(row['episode'])} of '{event}' starts when episode "
                                 f"{int(row['episode']) - 1} ended, which is known only to "
                                 f"lie in ({previous['time_lo_wk']:g}, "
                                 f"{previous['time_wk']:g}] wk: give its start_wk",
                                 index + 1, "start_wk")
                    elif start < previous["time_wk"] - 1e-9:
                        self.add(t, "episode_order", f"subject '{subject}': episode "
                                 f"{int(row['episode'])} of '{event}' starts at {start:g} wk, "
                                 f"before episode {int(row['episode']) - 1} ended at "
                                 f"{previous['time_wk']:g} wk", index + 1, "start_wk")
                if math.isnan(row["start_wk"]) and row["time_wk"] <= start:
                    self.add(t, "episode_order", f"subject '{subject}': episode "
                             f"{int(row['episode'])} of '{event}' ends at "
                             f"{row['time_wk']:g} wk, not after its start at {start:g} wk "
                             "(the end of the previous episode)", index + 1, "time_wk")
                if not math.isnan(row["time_lo_wk"]) and row["time_lo_wk"] < start - 1e-9:
                    self.add(t, "episode_start", f"subject '{subject}': episode "
                             f"{int(row['episode'])} of '{event}' has time_lo_wk "
                             f"{row['time_lo_wk']:g}, before its start at {start:g} wk",
                             index + 1, "time_lo_wk")
                previous = row

    def milestone_order(self, events: pd.DataFrame) -> None:
        rows = events[events["event"].isin(MILESTONE_ORDER)]
        for subject, group in rows.groupby("subject_id", sort=False):
            by_event = {r.event: (i, r) for i, r in zip(group.index, group.itertuples())}
            present = [m for m in MILESTONE_ORDER if m in by_event]
            for earlier, later in zip(present, present[1:]):
                (_, a), (j, b) = by_event[earlier], by_event[later]
                problem = None
                if a.censored == 1 and b.censored == 0:
                    problem = f"'{later}' is observed but '{earlier}' is censored"
                elif a.censored == 0 and b.censored == 0:
                    # after an exactly timed milestone the next must come strictly later: a
                    # tie, or an interval ending at that time, leaves a gap of zero weeks
                    a_exact = math.isnan(a.time_lo_wk)
                    b_when = (f"at {b.time_wk:g} wk" if math.isnan(b.time_lo_wk) else
                              f"in ({b.time_lo_wk:g}, {b.time_wk:g}] wk")
                    if b.time_wk < a.time_wk:
                        problem = f"'{later}' {b_when} is before '{earlier}' at {a.time_wk:g} wk"
                    elif a_exact and b.time_wk == a.time_wk:
                        problem = (f"'{later}' {b_when} is not after '{earlier}' at "
                                   f"{a.time_wk:g} wk (a milestone must come after the one "
                                   "before it: record a later milestone at its own, later "
                                   "time, or the earlier as an interval ending there)")
                elif a.censored == 0 and b.censored == 1 and b.time_wk < a.time_wk:
                    problem = (f"'{later}' is censored at {b.time_wk:g} wk, before '{earlier}' "
                               f"at {a.time_wk:g} wk")
                if problem:
                    self.add("events", "milestone_order",
                             f"subject '{subject}': {problem} (order: "
                             f"{' < '.join(MILESTONE_ORDER)})", j + 1, "time_wk")

    def measurement_rules(self, measurements: pd.DataFrame, followup: dict[str, float]) -> None:
        t = "measurements"
        duplicated = measurements.duplicated(["subject_id", "measure", "week"], keep="first")
        for index in measurements.index[duplicated]:
            self.add(t, "duplicate_measurement", f"subject '{measurements.at[index, 'subject_id']}'"
                     f" already has '{measurements.at[index, 'measure']}' at week "
                     f"{measurements.at[index, 'week']:g}", index + 1, "week")
        for index in measurements.index[measurements["week"] < 0]:
            self.add(t, "negative_week", f"week must be >= 0, got "
                     f"{measurements.at[index, 'week']:g}", index + 1, "week")
        limit = measurements["subject_id"].map(followup)
        for index in measurements.index[measurements["week"] > limit + 1e-9]:
            self.add(t, "after_followup", f"week {measurements.at[index, 'week']:g} is after "
                     f"followup_wk {limit[index]:g}", index + 1, "week")
        values = measurements["value"]
        for measure, (low, high) in SCORE_RANGES.items():
            rows = measurements["measure"] == measure
            bad = rows & values.notna() & ((values < low) | (values > high) | (values % 1 != 0))
            for index in measurements.index[bad]:
                self.add(t, f"{measure}_range", f"{measure} must be an integer from {low} to "
                         f"{high}, got {values[index]:g}", index + 1, "value")
        for measure in POSITIVE_MEASURES:
            bad = (measurements["measure"] == measure) & (values <= 0)
            for index in measurements.index[bad]:
                self.add(t, f"{measure}_positive", f"{measure} must be > 0, got "
                         f"{values[index]:g}", index + 1, "value")


# what series.toml's [series] table may say, and the type each needs (io.series_provenance
# and the reports read them after this check)
SERIES_KEYS = {"name": "text", "description": "text", "provenance": "text",
               "reconstructed": "true or false", "randomised": "true or false",
               "control": "a level of a grouping column (text or a number)",
               "time_unit": "one of " + ", ".join(TIME_UNITS)}


def _series_value_ok(key: str, value) -> bool:
    if key == "time_unit":
        return isinstance(value, str) and value in TIME_UNITS
    if SERIES_KEYS[key] == "text":
        return isinstance(value, str)
    if SERIES_KEYS[key] == "true or false":
        return isinstance(value, bool)
    return isinstance(value, str | int | float) and not isinstance(value, bool)   # control


def declared_time_unit(folder: Path) -> tuple[str, list[Problem]]:
    """The time unit ``series.toml`` declares ([series] time_unit; weeks when silent), and
    the problems of its [series] table: a key it does not know (a misspelt ``randomized``
    would otherwise leave the reports saying the design was not declared), or a value of
    the wrong type."""
    marker = Path(folder) / "series.toml"
    if not marker.is_file():
        return "weeks", []
    try:
        with open(marker, "rb") as handle:
            table = tomllib.load(handle).get("series", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        return "weeks", [Problem(str(marker), "toml_syntax", f"not valid TOML: {err}")]
    if not isinstance(table, dict):
        return "weeks", [Problem(str(marker), "series_table", "'series' must be a table "
                                 f"([series] with its keys below), got {table!r}",
                                 column="series")]
    problems = []
    for key in table:
        if key not in SERIES_KEYS:
            problems.append(Problem(str(marker), "unknown_key", f"unknown key '{key}' in "
                                    f"[series]; valid: {', '.join(sorted(SERIES_KEYS))}",
                                    column=key))
        elif not _series_value_ok(key, table[key]):
            problems.append(Problem(str(marker), "time_unit", f"time_unit {table[key]!r} is "
                                    f"not one of {', '.join(TIME_UNITS)}", column=key)
                            if key == "time_unit" else
                            Problem(str(marker), "wrong_type", f"{key} must be "
                                    f"{SERIES_KEYS[key]}, got {table[key]!r}", column=key))
    unit = table.get("time_unit", "weeks")
    return (unit if _series_value_ok("time_unit", unit) else "weeks"), problems


def empty_table(required: dict[str, str], optional: dict[str, str]) -> pd.DataFrame:
    """A table the series does not have: its columns, no rows."""
    columns = {**required, **optional}
    return pd.DataFrame({c: pd.Series(dtype=float if kind == "float" else object)
                         for c, kind in columns.items()})


def validate_raw(raw: RawSeries) -> tuple[Series | None, list[Problem]]:
    """Check every rule on already-read tables; return the typed series if none failed.

    Only ``subjects`` with ``subject_id`` and follow-up is required; the letter's columns
    keep their rules when present; a missing ``events`` or ``measurements`` table is empty.
    Time columns are named in the series' declared unit and converted to weeks."""
    unit, unit_problems = declared_time_unit(raw.folder)
    checker = _Checker(raw, unit)
    checker.problems += unit_problems
    rename = {theirs: ours for ours, theirs in checker.names.items()}
    typed = {}
    specs = {"subjects": (SUBJECT_COLUMNS, SUBJECT_OPTIONAL),
             "events": (EVENT_COLUMNS, EVENT_OPTIONAL),
             "measurements": (MEASUREMENT_COLUMNS, MEASUREMENT_OPTIONAL)}
    for table, (required, optional) in specs.items():
        if table in raw.tables:
            frame = raw.tables[table]
            if unit != "weeks":
                frame = frame.rename(columns={c: rename[c] for c in frame if c in rename})
            raw.tables[table] = frame
            typed[table] = checker.typed(table, required, optional, table != "subjects")
        elif table != "subjects":
            typed[table] = empty_table(required, optional)
    subjects = typed.get("subjects")
    if subjects is not None:
        checker.subjects_rules(subjects)
        known = set(subjects["subject_id"].dropna())
        followup = dict(zip(subjects["subject_id"], subjects["followup_wk"]))
        for table in ("events", "measurements"):
            if typed.get(table) is not None:
                checker.known_subjects(table, typed[table], known)
        if typed.get("events") is not None:
            checker.events_rules(typed["events"], followup)
        if typed.get("measurements") is not None:
            checker.measurement_rules(typed["measurements"], followup)
    if checker.problems or any(typed.get(t) is None for t in specs):
        return None, checker.problems
    weeks_per_unit = TIME_UNITS[unit][2]
    for table, columns in TIME_COLUMNS.items():
        for column in columns:
            typed[table][column] = typed[table][column] * weeks_per_unit
    return Series(raw.folder, typed["subjects"], typed["events"], typed["measurements"],
                  dict(raw.paths), dict(raw.sha256), unit), []


def load_series(folder: str | Path) -> Series:
    """Read and validate a series folder; raise :class:`InputError` listing every problem."""
    raw, problems = read_series(folder)
    series, more = validate_raw(raw) if not any(
        p.rule in ("missing_folder",) for p in problems) else (None, [])
    problems = problems + more
    if problems or series is None:
        raise InputError(problems)
    return series
