"""No row is silently left out: every row of the tables a model reads is used or listed
with its reason (population filter, carries no information, missing value, not named by
the spec), and the counts add up (one test per reason; no sampling)."""

from __future__ import annotations

import pandas as pd

from jdmbayes.data.validate import load_series
from jdmbayes.inference.fitted import excluded_reasons, rows_sentence
from jdmbayes.kinds.fit import index_model
from jdmbayes.models.indexing import NONE
from jdmbayes.models.spec import load_model_spec
from tests.unit.test_spec_against_series import edit, spec_file


def indexed(series_copy, model: str, table: str | None = None, change=None):
    """The series (edited by ``change`` if given) and ``model``'s arrays, checked to account
    for every row."""
    if change is not None:
        edit(series_copy, table, change)
    series = load_series(str(series_copy))
    data = index_model(series, load_model_spec(model))
    used_plus_excluded_is_every_row(series, data)
    return series, data


def used_plus_excluded_is_every_row(series, data) -> None:
    for table, counts in data.rows.items():
        assert counts["rows"] == len(getattr(series, table))
        assert counts["used"] + counts["excluded"] == counts["rows"]
        assert counts["excluded"] == int((data.excluded["table"] == table).sum())


def test_events_of_other_outcomes_are_not_named_by_the_spec(series_copy):
    series, data = indexed(series_copy, "gc_discontinuation")
    events = series.events
    other = events[events["event"] != "gc_discontinuation"]
    listed = data.excluded[data.excluded["table"] == "events"]
    assert sorted(listed["row"]) == sorted(other.index + 1)
    assert listed["reason"].str.startswith("not named by the spec").all()
    assert data.rows["events"]["used"] == int((events["event"] == "gc_discontinuation").sum())


def test_population_filter_lists_subjects_and_their_events(series_copy, tmp_path):
    series = load_series(str(series_copy))
    spec = load_model_spec(spec_file(tmp_path, grouping='["dose_start_mg_bid"]',
                                     contrasts="[]", population='population = '
                                     '{drug = "tofacitinib"}'))
    data = index_model(series, spec)
    used_plus_excluded_is_every_row(series, data)
    others = set(series.subjects.loc[series.subjects["drug"] != "tofacitinib", "subject_id"])
    assert others and data.n_patients == len(series.subjects) - len(others)
    filtered = data.excluded[data.excluded["reason"].str.startswith("population filter")]
    assert set(filtered.loc[filtered["table"] == "subjects", "subject_id"]) == others
    gc_rows = series.events[(series.events["event"] == "gc_discontinuation")
                            & series.events["subject_id"].isin(others)]
    assert sorted(filtered.loc[filtered["table"] == "events", "row"]) == sorted(
        gc_rows.index + 1)


def test_population_list_selects_any_of_its_values(series_copy, tmp_path):
    """A list of values selects the subjects with any of them (and every other condition):
    here rash at start and either refractory type, against the bundled series' counts."""
    series = load_series(str(series_copy))
    subjects = series.subjects
    spec = load_model_spec(spec_file(
        tmp_path, population='[model.population]\nrash_at_start = 1\n'
        'refractory_type = ["ineffective", "gc_dependent"]'))
    data = index_model(series, spec)
    used_plus_excluded_is_every_row(series, data)
    assert data.n_patients == int((subjects["rash_at_start"] == 1).sum()) == 24
    one = load_model_spec(spec_file(tmp_path, name="one", population='[model.population]\n'
                                    'refractory_type = ["gc_dependent"]'))
    data = index_model(series, one)
    assert data.n_patients == int((subjects["refractory_type"] == "gc_dependent").sum()) == 17
    reasons = data.excluded.loc[data.excluded["table"] == "subjects", "reason"]
    assert len(reasons) == 8
    assert set(reasons) == {"population filter (refractory_type in ['gc_dependent'])"}


def test_milestones_after_a_censored_one_carry_no_information(series_copy):
    def censor_first_patient(frame):
        rash = frame.index[(frame["subject_id"] == frame["subject_id"].iloc[0])
                           & frame["event"].str.startswith("rash_")]
        assert len(rash) == 3
        frame.loc[rash, "censored"] = "1"
        frame.loc[rash, "time_wk"] = "4"
        frame.loc[rash, "time_lo_wk"] = ""
    series, data = indexed(series_copy, "rash_milestones", "events", censor_first_patient)
    silent = data.excluded[data.excluded["reason"].str.startswith("carries no information")]
    first = series.events["subject_id"].iloc[0]
    assert len(silent) >= 2 and (silent["subject_id"] == first).sum() == 2
    # each is a rash milestone whose cell in the model is NONE, and every NONE cell is listed
    outcomes = list(data.outcomes)
    for _, row in silent.iterrows():
        event = series.events.loc[row["row"] - 1]
        i = data.subject_ids.index(row["subject_id"])
        assert data.kind[i, outcomes.index(event["event"])] == NONE
    assert len(silent) == int((data.kind == NONE).sum())


def test_missing_values_and_other_measures_are_listed(series_copy):
    def blank_two(frame):
        cmas = frame.index[frame["measure"] == "cmas"][:2]
        frame.loc[cmas, "value"] = ""
        frame.loc[cmas, "note"] = "not assessed"
    series, data = indexed(series_copy, "cmas", "measurements", blank_two)
    measurements = series.measurements
    missing = data.excluded[data.excluded["reason"].str.startswith("missing value")]
    expected = measurements[(measurements["measure"] == "cmas") & measurements["value"].isna()]
    assert sorted(missing["row"]) == sorted(expected.index + 1) and len(missing) >= 2
    assert missing["reason"].str.contains("not assessed").sum() == 2
    other = data.excluded[data.excluded["reason"].str.startswith("not named by the spec")]
    assert len(other) == int((measurements["measure"] != "cmas").sum())
    no_rows = data.excluded[(data.excluded["table"] == "subjects")]
    assert set(no_rows["subject_id"]) == set(series.subjects["subject_id"]) - set(
        measurements.loc[measurements["measure"] == "cmas", "subject_id"])


def test_the_sentence_counts_each_reason():
    excluded = pd.DataFrame({"table": ["events"] * 3, "row": [1, 2, 3],
                             "subject_id": ["a", "b", "c"],
                             "reason": ["population filter", "missing value (x)",
                                        "missing value"]})
    reasons = excluded_reasons(excluded)
    assert reasons == {"missing value": 2, "population filter": 1}
    text = rows_sentence({"events": {"rows": 10, "used": 7, "excluded": 3}}, reasons)
    assert text == ("Rows used: 7 of 10 events rows; 3 excluded (each listed in excluded.csv)"
                    " - missing value: 2, population filter: 1.")
