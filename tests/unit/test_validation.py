"""One test per validation rule: each plants one violation and asserts the exact message."""

from __future__ import annotations

import pandas as pd
import pytest

from jdmbayes.data.validate import load_series
from jdmbayes.errors import InputError


def _edit(folder, table, row, column, value):
    path = folder / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row - 1, column] = value
    frame.to_csv(path, index=False)


def _problems(folder):
    with pytest.raises(InputError) as caught:
        load_series(folder)
    return caught.value.problems


def _one(folder, rule):
    found = [p for p in _problems(folder) if p.rule == rule]
    assert found, f"no '{rule}' problem reported"
    return found[0]


def _row_of(folder, table, **match):
    frame = pd.read_csv(folder / f"{table}.csv", dtype=str, keep_default_na=False)
    mask = pd.Series(True, index=frame.index)
    for column, value in match.items():
        mask &= frame[column] == value
    return int(frame.index[mask][0]) + 1


def test_bundled_series_is_valid():
    from tests.conftest import BUNDLED

    series = load_series(BUNDLED)
    assert len(series.subjects) == 25
    assert series.events["time_lo_wk"].notna().sum() == 16


def test_missing_file(series_copy):
    (series_copy / "subjects.csv").unlink()
    p = _one(series_copy, "missing_file")
    assert p.file.endswith("subjects.csv") and "table 'subjects' not found" in p.message


def test_events_and_measurements_are_optional_tables(series_copy):
    (series_copy / "events.csv").unlink()
    (series_copy / "measurements.csv").write_text("subject_id,measure,week,value\n")
    series = load_series(series_copy)
    assert len(series.subjects) == 25 and series.events.empty and series.measurements.empty
    assert {"subject_id", "event", "time_wk", "censored", "time_lo_wk"} <= set(series.events)


def test_missing_column(series_copy):
    frame = pd.read_csv(series_copy / "subjects.csv").drop(columns="followup_wk")
    frame.to_csv(series_copy / "subjects.csv", index=False)
    p = _one(series_copy, "missing_column")
    assert p.column == "followup_wk" and p.message == "required column 'followup_wk' is missing"


def test_empty_file(series_copy):
    (series_copy / "measurements.csv").write_text("")
    assert "file is empty" in _one(series_copy, "empty_file").message


def test_header_only_file(series_copy):
    (series_copy / "subjects.csv").write_text("subject_id,followup_wk\n")
    assert _one(series_copy, "empty_file").message == "file has a header but no data rows"


def test_only_id_and_followup_are_required(tmp_path):
    (tmp_path / "subjects.csv").write_text("subject_id,followup_wk,centre\nA,10,x\nB,12,y\n")
    series = load_series(tmp_path)
    assert list(series.subjects["subject_id"]) == ["A", "B"]
    assert "sex" not in series.subjects and "drug" not in series.subjects


def test_a_control_arm_may_have_dose_zero_but_not_below(tmp_path):
    (tmp_path / "subjects.csv").write_text("subject_id,followup_wk,drug,dose_start_mg_bid\n"
                                           "A,10,placebo,0\nB,10,tofacitinib,5\n")
    assert load_series(tmp_path).subjects["dose_start_mg_bid"].tolist() == [0.0, 5.0]
    (tmp_path / "subjects.csv").write_text("subject_id,followup_wk,drug,dose_start_mg_bid\n"
                                           "A,10,placebo,-1\n")
    problem, = _problems(tmp_path)
    assert (problem.rule, problem.row, problem.column) == ("nonnegative_value", 1,
                                                           "dose_start_mg_bid")


def test_letter_columns_keep_their_rules_when_present(tmp_path):
    (tmp_path / "subjects.csv").write_text("subject_id,followup_wk,sex,weight_kg\nA,10,X,-1\n")
    rules = {p.rule for p in _problems(tmp_path)}
    assert rules == {"sex_value", "positive_value"}


@pytest.mark.parametrize("unit, weeks_per_unit, suffix, visit", [
    ("days", 1 / 7, "d", "day"), ("months", 365.25 / 12 / 7, "mo", "month"),
    ("weeks", 1.0, "wk", "week")])
def test_times_in_the_declared_unit_are_read_as_weeks(tmp_path, unit, weeks_per_unit, suffix,
                                                      visit):
    (tmp_path / "series.toml").write_text(f'[series]\ntime_unit = "{unit}"\n')
    (tmp_path / "subjects.csv").write_text(f"subject_id,followup_{suffix}\nA,70\nB,35\n")
    (tmp_path / "events.csv").write_text(f"subject_id,event,time_{suffix},censored,"
                                         f"time_lo_{suffix}\nA,flare,14,0,7\nB,flare,35,1,\n")
    (tmp_path / "measurements.csv").write_text(f"subject_id,measure,{visit},value\nA,x,0,1\n"
                                               "A,x,28,2\n")
    series = load_series(tmp_path)
    assert series.time_unit == unit
    assert series.subjects["followup_wk"].tolist() == pytest.approx(
        [70 * weeks_per_unit, 35 * weeks_per_unit])
    assert series.events["time_wk"].tolist() == pytest.approx([14 * weeks_per_unit,
                                                               35 * weeks_per_unit])
    assert series.events["time_lo_wk"].iloc[0] == pytest.approx(7 * weeks_per_unit)
    assert series.measurements["week"].tolist() == pytest.approx([0, 28 * weeks_per_unit])


def test_problems_name_the_series_own_time_columns(tmp_path):
    (tmp_path / "series.toml").write_text('[series]\ntime_unit = "days"\n')
    (tmp_path / "subjects.csv").write_text("subject_id,followup_d\nA,70\n")
    (tmp_path / "events.csv").write_text("subject_id,event,time_d,censored\nA,flare,90,0\n")
    p = _one(tmp_path, "after_followup")
    assert p.column == "time_d" and p.message == "time_d 90 is after followup_d 70"
    (tmp_path / "series.toml").write_text('[series]\ntime_unit = "fortnights"\n')
    assert "time_unit 'fortnights' is not one of weeks, days, months" in _one(
        tmp_path, "time_unit").message


@pytest.mark.parametrize(("text", "rule", "message"), [
    # a misspelt key was ignored: the reports then said the design was not declared
    ('[series]\nrandomized = true\n', "unknown_key", "unknown key 'randomized' in [series]; "
     "valid: control, description, name, provenance, randomised, reconstructed, time_unit"),
    # "yes" was read as not randomised
    ('[series]\nrandomised = "yes"\n', "wrong_type", "randomised must be true or false, got "
     "'yes'"),
    # the next three crashed validate or, after sampling, the grant text with a traceback
    ('[series]\ndescription = 3\n', "wrong_type", "description must be text, got 3"),
    ('[series]\ntime_unit = ["days"]\n', "time_unit", "time_unit ['days'] is not one of "
     "weeks, days, months"),
    ('series = 3\n', "series_table", "'series' must be a table ([series] with its keys "
     "below), got 3"),
    ('[series]\ncontrol = true\n', "wrong_type", "control must be a level of a grouping "
     "column (text or a number), got True"),
])
def test_series_toml_says_only_what_it_may_with_the_right_types(tmp_path, text, rule,
                                                                 message):
    (tmp_path / "subjects.csv").write_text("subject_id,followup_wk\nA,10\n")
    (tmp_path / "series.toml").write_text(text)
    (problem,) = _problems(tmp_path)
    assert (problem.rule, problem.file, problem.message) == (
        rule, str(tmp_path / "series.toml"), message)


def test_not_utf8(series_copy):
    text = (series_copy / "subjects.csv").read_bytes()
    (series_copy / "subjects.csv").write_bytes(text.replace(b"REC03", b"R\xe9C03"))
    p = _one(series_copy, "not_utf8")
    assert "not UTF-8 (invalid byte at line 4)" in p.message


def test_wrong_type(series_copy):
    _edit(series_copy, "subjects", 3, "weight_kg", "heavy")
    p = _one(series_copy, "wrong_type")
    assert (p.row, p.column, p.message) == (3, "weight_kg", "'heavy' is not a number")


def test_not_finite(series_copy):
    _edit(series_copy, "events", 2, "time_wk", "inf")
    p = _one(series_copy, "not_finite")
    assert (p.row, p.column) == (2, "time_wk")


def test_duplicate_subject(series_copy):
    _edit(series_copy, "subjects", 5, "subject_id", "REC01")
    p = _one(series_copy, "duplicate_subject")
    assert (p.row, p.message) == (5, "subject_id 'REC01' already on row 1")


def test_unknown_subject_in_events_and_measurements(series_copy):
    _edit(series_copy, "events", 1, "subject_id", "NOBODY")
    _edit(series_copy, "measurements", 1, "subject_id", "NOBODY")
    found = [p for p in _problems(series_copy) if p.rule == "unknown_subject"]
    assert {p.file.rsplit("/", 1)[-1] for p in found} == {"events.csv", "measurements.csv"}
    assert found[0].message == "subject_id 'NOBODY' is not in subjects"


def test_a_blank_subject_id_is_reported_once_as_blank(series_copy):
    # it was also reported as "subject_id 'None' is not in subjects"
    _edit(series_copy, "events", 3, "subject_id", "")
    found = [p for p in _problems(series_copy) if p.row == 3 and p.column == "subject_id"
             and p.file.endswith("events.csv")]
    assert [(p.rule, p.message) for p in found] == [("wrong_type",
                                                     "value is blank; a value is required")]


def test_duplicate_event(series_copy):
    _edit(series_copy, "events", 2, "event", "rash_improvement")
    p = _one(series_copy, "duplicate_event")
    assert p.row == 2 and "already has a 'rash_improvement' row" in p.message


def test_non_positive_time(series_copy):
    _edit(series_copy, "events", 4, "time_wk", "0")
    p = _one(series_copy, "non_positive_time")
    assert (p.row, p.message) == (4, "time_wk must be > 0, got 0")


def test_interval_order(series_copy):
    row = _row_of(series_copy, "events", subject_id="REC04", event="rash_resolution")
    _edit(series_copy, "events", row, "time_lo_wk", "12")
    p = _one(series_copy, "interval_order")
    assert (p.row, p.message) == (row, "time_lo_wk must be < time_wk (12 >= 12)")


def test_time_after_followup(series_copy):
    row = _row_of(series_copy, "events", subject_id="REC01", event="gc_discontinuation")
    _edit(series_copy, "events", row, "time_wk", "40")
    p = _one(series_copy, "after_followup")
    assert p.message == "time_wk 40 is after followup_wk 28.6"


def test_censored_not_binary(series_copy):
    _edit(series_copy, "events", 1, "censored", "yes")
    p = _one(series_copy, "censored_binary")
    assert (p.row, p.column, p.message) == (1, "censored", "'yes' is not 0 or 1")


def test_milestones_out_of_order(series_copy):
    row = _row_of(series_copy, "events", subject_id="REC01", event="rash_marked_improvement")
    _edit(series_copy, "events", row, "time_wk", "1.0")
    p = _one(series_copy, "milestone_order")
    assert "'rash_marked_improvement' at 1 wk is before 'rash_improvement' at 1.3 wk" in p.message


@pytest.mark.parametrize(("edits", "says"), [
    # a tie of two exactly timed milestones (was refused as "before")
    ({("rash_marked_improvement", "time_wk"): "1.3"},
     "'rash_marked_improvement' at 1.3 wk is not after 'rash_improvement' at 1.3 wk"),
    # an interval ending at the earlier milestone's time passed, and the fit then ended with
    # a traceback (a gap of zero weeks: "All initialization points failed")
    ({("rash_marked_improvement", "time_wk"): "1.3",
      ("rash_marked_improvement", "time_lo_wk"): "0.5"},
     "'rash_marked_improvement' in (0.5, 1.3] wk is not after 'rash_improvement' at 1.3 wk"),
])
def test_a_milestone_not_after_the_one_before_is_refused(series_copy, edits, says):
    for (event, column), value in edits.items():
        row = _row_of(series_copy, "events", subject_id="REC01", event=event)
        _edit(series_copy, "events", row, column, value)
    p = _one(series_copy, "milestone_order")
    assert p.message.startswith(f"subject 'REC01': {says} (a milestone must come after")


def test_an_earlier_milestone_may_be_an_interval_ending_at_the_next(series_copy):
    # improvement some time in (0.5, 1.3], marked improvement at 1.3: the gap is positive
    row = _row_of(series_copy, "events", subject_id="REC01", event="rash_improvement")
    _edit(series_copy, "events", row, "time_lo_wk", "0.5")
    row = _row_of(series_copy, "events", subject_id="REC01", event="rash_marked_improvement")
    _edit(series_copy, "events", row, "time_wk", "1.3")
    load_series(series_copy)


def test_cmas_out_of_range(series_copy):
    row = _row_of(series_copy, "measurements", subject_id="REC02", measure="cmas", week="4")
    _edit(series_copy, "measurements", row, "value", "53")
    p = _one(series_copy, "cmas_range")
    assert p.message == "cmas must be an integer from 0 to 52, got 53"


def test_cmas_not_integer(series_copy):
    row = _row_of(series_copy, "measurements", subject_id="REC02", measure="cmas", week="4")
    _edit(series_copy, "measurements", row, "value", "40.5")
    assert _one(series_copy, "cmas_range").message.endswith("got 40.5")


def test_cat_bm_out_of_range(series_copy):
    row = _row_of(series_copy, "measurements", subject_id="REC03", measure="cat_bm", week="0")
    _edit(series_copy, "measurements", row, "value", "18")
    assert _one(series_copy, "cat_bm_range").message == \
        "cat_bm must be an integer from 0 to 17, got 18"


@pytest.mark.parametrize("measure", ["ldh", "ck"])
def test_lab_not_positive(series_copy, measure):
    frame = pd.read_csv(series_copy / "measurements.csv", dtype=str, keep_default_na=False)
    row = int(frame.index[frame["measure"] == measure][0]) + 1
    _edit(series_copy, "measurements", row, "value", "0")
    assert _one(series_copy, f"{measure}_positive").message == f"{measure} must be > 0, got 0"


def test_age_order(series_copy):
    _edit(series_copy, "subjects", 1, "age_start_y", "5.0")
    p = _one(series_copy, "age_order")
    assert (p.row, p.message) == (1, "age_start_y is before age_onset_y (5 < 6.6)")


def test_dose_order(series_copy):
    _edit(series_copy, "subjects", 1, "dose_max_mg_bid", "2.5")
    assert _one(series_copy, "dose_order").message == \
        "dose_max_mg_bid is below dose_start_mg_bid (2.5 < 5)"


def test_sex_value(series_copy):
    _edit(series_copy, "subjects", 2, "sex", "female")
    p = _one(series_copy, "sex_value")
    assert (p.row, p.column, p.message) == (2, "sex", "'female' is not F or M")


def test_all_problems_reported_at_once(series_copy):
    _edit(series_copy, "subjects", 2, "sex", "X")
    _edit(series_copy, "events", 1, "censored", "2")
    _edit(series_copy, "measurements", 1, "week", "-1")
    rules = {p.rule for p in _problems(series_copy)}
    assert {"sex_value", "censored_binary", "negative_week"} <= rules


def test_parquet_tables_read_like_csv(series_copy):
    for name in ("subjects", "events", "measurements"):
        frame = pd.read_csv(series_copy / f"{name}.csv")
        (series_copy / f"{name}.csv").unlink()
        frame.to_parquet(series_copy / f"{name}.parquet")
    series = load_series(series_copy)
    assert series.paths["events"].suffix == ".parquet"
    assert series.events["time_lo_wk"].notna().sum() == 16
