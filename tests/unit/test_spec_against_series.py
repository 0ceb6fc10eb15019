"""Every spec-against-series problem is found before sampling: exit 2, file and rule named,
what to do said, nothing written (one test per rule; no sampling happens in any of them)."""

from __future__ import annotations

import pandas as pd
import pytest

from jdmbayes.cli import main

GC_SPEC = """[model]
name = "{name}"
kind = "milestones"
outcomes = {outcomes}
family = "weibull"
grouping = {grouping}
covariates = {covariates}
contrasts = {contrasts}
{population}
"""
DRUG_CONTRAST = '[["drug", "ruxolitinib", "tofacitinib"]]'


def spec_file(tmp_path, name="check", outcomes='["gc_discontinuation"]',
              grouping='["drug", "dose_start_mg_bid"]', covariates="[]",
              contrasts=DRUG_CONTRAST, population="") -> str:
    path = tmp_path / f"{name}.toml"
    path.write_text(GC_SPEC.format(name=name, outcomes=outcomes, grouping=grouping,
                                   covariates=covariates, contrasts=contrasts,
                                   population=population))
    return str(path)


def refused(capsys, tmp_path, series, spec, command="fit") -> str:
    """Run ``fit`` and ``validate --model`` on the same series and spec; assert both exit 2
    with the same problems (verdict, rule and message) and that fit wrote nothing; return
    the problems as printed."""
    out = tmp_path / "run"
    assert main(["fit", "--data", str(series), "--model", spec, "--out", str(out)]) == 2
    assert not out.exists() and not list(tmp_path.glob(".run*"))
    fit_err = capsys.readouterr().err
    assert "nothing was written" in fit_err
    assert main(["validate", str(series), "--model", spec]) == 2
    validate_err = capsys.readouterr().err
    assert validate_err == fit_err, (fit_err, validate_err)
    return fit_err


def edit(series, table: str, change) -> None:
    path = series / f"{table}.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(frame)
    frame.to_csv(path, index=False)


def test_one_drug_series_refuses_the_drug_contrast_before_sampling(series_copy, tmp_path,
                                                                     capsys):
    """The issue's crash: a valid series with one drug and the default rash spec."""
    def only_tofacitinib(frame):
        frame["drug"] = "tofacitinib"
    edit(series_copy, "subjects", only_tofacitinib)
    err = refused(capsys, tmp_path, series_copy, "rash_milestones")
    assert "[contrast_level]" in err and "rash_milestones.toml" in err
    assert "contrast numerator 'ruxolitinib' is not a level of 'drug'" in err
    assert "levels: tofacitinib" in err and "change or remove the contrast" in err


def test_contrast_denominator_missing(series_copy, tmp_path, capsys):
    spec = spec_file(tmp_path, contrasts='[["drug", "ruxolitinib", "baricitinib"]]')
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "[contrast_level]" in err and "denominator 'baricitinib'" in err


def test_grouping_column_missing(series_copy, tmp_path, capsys):
    spec = spec_file(tmp_path, grouping='["drug", "centre"]', contrasts="[]")
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "subjects.csv, column 'centre': [spec_column]" in err
    assert "add it or remove it from the spec" in err


def test_grouping_column_with_missing_values(series_copy, tmp_path, capsys):
    def add_centre(frame):   # a column the contract does not know, one value left blank
        frame["centre"] = ["A", "B"] * (len(frame) // 2) + ["A"] * (len(frame) % 2)
        frame.loc[3, "centre"] = ""
    edit(series_copy, "subjects", add_centre)
    spec = spec_file(tmp_path, grouping='["centre"]', contrasts="[]")
    err = refused(capsys, tmp_path, series_copy, spec)
    # the subject's data row is named, as validate names rows (the fourth row: REC04)
    assert "subjects.csv, row 4, column 'centre': [grouping_missing] subject 'REC04'" in err


def test_covariate_column_missing(series_copy, tmp_path, capsys):
    spec = spec_file(tmp_path, covariates='["bmi"]')
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "column 'bmi': [spec_column]" in err


def test_text_covariate_becomes_indicators_against_its_reference(series_copy, tmp_path):
    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.fit import index_model
    from jdmbayes.models.spec import load_model_spec

    series = load_series(str(series_copy))
    sex = series.subjects["sex"].to_numpy()
    design = index_model(series, load_model_spec(spec_file(tmp_path, covariates='["sex"]'))
                         ).design
    assert design.covariate_names == ("sex[M]",)     # reference: first level in sorted order
    assert design.covariate_info["sex[M]"] == {"column": "sex", "kind": "indicator",
                                               "level": "M", "reference": "F"}
    assert (design.covariates[:, 0] == (sex == "M")).all()
    spec = load_model_spec(spec_file(tmp_path, name="ref", covariates='["sex", "weight_kg"]',
                                     population='covariate_reference = {sex = "M"}'))
    design = index_model(series, spec).design
    assert design.covariate_names == ("sex[F]", "weight_kg")
    assert (design.covariates[:, 0] == (sex == "F")).all()
    weight = series.subjects["weight_kg"].to_numpy(float)
    info = design.covariate_info["weight_kg"]
    assert info["centre"] == pytest.approx(weight.mean())
    assert info["sd"] == pytest.approx(weight.std())
    assert design.covariates[:, 1] == pytest.approx((weight - weight.mean()) / weight.std())


def test_covariate_reference_not_a_level(series_copy, tmp_path, capsys):
    spec = spec_file(tmp_path, covariates='["sex"]',
                     population='covariate_reference = {sex = "female"}')
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "[covariate_reference]" in err and "reference 'female' is not a value" in err


def test_constant_covariate(series_copy, tmp_path, capsys):
    def all_female(frame):
        frame["sex"] = "F"
    edit(series_copy, "subjects", all_female)
    err = refused(capsys, tmp_path, series_copy, spec_file(tmp_path, covariates='["sex"]'))
    assert "[covariate_constant]" in err and "covariate 'sex' is 'F' for every" in err


def test_covariate_with_missing_values(series_copy, tmp_path, capsys):
    def add_bmi(frame):
        frame["bmi"] = "17.5"
        frame.loc[0, "bmi"] = ""
    edit(series_copy, "subjects", add_bmi)
    spec = spec_file(tmp_path, covariates='["bmi"]')
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "subjects.csv, row 1, column 'bmi': [covariate_missing] subject 'REC01'" in err


def test_outcome_with_no_events(series_copy, tmp_path, capsys):
    def censor_all(frame):
        rows = frame["event"] == "gc_discontinuation"
        frame.loc[rows, "censored"] = "1"
        frame.loc[rows, "time_lo_wk"] = ""
    edit(series_copy, "events", censor_all)
    err = refused(capsys, tmp_path, series_copy, spec_file(tmp_path))
    assert "[no_events]" in err and "no modelled patient has an observed" in err


def test_outcome_no_row_has(series_copy, tmp_path, capsys):
    spec = spec_file(tmp_path, outcomes='["infection"]')
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "[spec_event]" in err and "'infection'" in err


def test_population_filter_selects_no_one(series_copy, tmp_path, capsys):
    spec = spec_file(tmp_path, population='[model.population]\nrefractory_type = "none"')
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "[empty_population]" in err and "refractory_type = 'none'" in err


def test_population_list_value_no_subject_has(series_copy, tmp_path, capsys):
    # a listed value no subject has (here misspelt) would leave its patients out unnoticed
    spec = spec_file(tmp_path, population='[model.population]\n'
                     'refractory_type = ["gc_dependent", "ineffective", "inefective"]')
    err = refused(capsys, tmp_path, series_copy, spec)
    assert "[population_value]" in err and "no subject has refractory_type = 'inefective'" \
        in err and "(subjects has 'gc_dependent', 'ineffective')" in err


def test_measure_with_no_patients(series_copy, tmp_path, capsys):
    def drop_ldh(frame):
        frame.drop(frame.index[frame["measure"] == "ldh"], inplace=True)
    edit(series_copy, "measurements", drop_ldh)
    err = refused(capsys, tmp_path, series_copy, "ldh")
    assert "[spec_measure]" in err and "no modelled patient has measure 'ldh'" in err


def test_measure_with_every_value_missing(series_copy, tmp_path, capsys):
    def blank_ldh(frame):
        frame.loc[frame["measure"] == "ldh", "value"] = ""
        frame.loc[frame["measure"] == "ldh", "note"] = "not done"
    edit(series_copy, "measurements", blank_ldh)
    err = refused(capsys, tmp_path, series_copy, "ldh")
    assert "[no_values]" in err


@pytest.mark.parametrize("command", ["validate", "sensitivity"])
def test_validate_and_sensitivity_run_the_same_checks(series_copy, tmp_path, capsys, command):
    spec = spec_file(tmp_path, contrasts='[["drug", "ruxolitinib", "baricitinib"]]')
    if command == "sensitivity":
        out = tmp_path / "grid"
        code = main(["sensitivity", "--data", str(series_copy), "--model", spec, "--priors",
                     "default,vague", "--out", str(out)])
        assert code == 2 and not out.exists()
        err = capsys.readouterr().err
    else:
        err = refused(capsys, tmp_path, series_copy, spec, command="validate")
    assert "[contrast_level]" in err and "denominator 'baricitinib'" in err


CMAS_SPEC = """[model]
name = "{name}"
kind = "longitudinal"
measure = "cmas"
likelihood = "{likelihood}"
upper = {upper}
grouping = ["drug"]
"""


@pytest.mark.parametrize("likelihood, upper, value, rule", [
    ("lognormal", 52, "0", "a log-normal value must be > 0"),
    ("censored_normal", 40, "45", "from 0 (floor) to 40 (ceiling)")])
def test_values_outside_the_likelihood_support(series_copy, tmp_path, capsys, likelihood,
                                               upper, value, rule):
    """A 0 fitted log-normal used to crash the sampler (segfault, exit 139)."""
    changed = []

    def set_first_cmas(frame):
        changed.append(int(frame.index[(frame["measure"] == "cmas") & (frame["value"] != "")][0]))
        frame.loc[changed[0], "value"] = value
    edit(series_copy, "measurements", set_first_cmas)
    row = changed[0]
    spec = tmp_path / "support.toml"
    spec.write_text(CMAS_SPEC.format(name="support", likelihood=likelihood, upper=upper))
    err = refused(capsys, tmp_path, series_copy, str(spec))
    assert f"measurements.csv, row {row + 1}, column 'value': [outside_support]" in err
    assert rule in err


@pytest.mark.parametrize("command", ["fit", "sensitivity"])
@pytest.mark.parametrize("value", ["1.0", "0", "-0.2"])
def test_a_target_acceptance_outside_0_1_is_refused_before_anything_runs(tmp_path, capsys,
                                                                        command, value):
    out = tmp_path / "run"
    extra = ["--priors", "default,sceptical"] if command == "sensitivity" else []
    assert main([command, "--model", "gc_discontinuation", *extra, "--target-accept", value,
                 "--out", str(out)]) == 2
    assert not out.exists()
    assert f"--target-accept) must be between 0 and 1, got {float(value)}" in \
        capsys.readouterr().err


def test_the_target_acceptance_reaches_the_sampler_settings(monkeypatch, tmp_path):
    # fit's settings, stopped just before anything is sampled or written
    import jdmbayes.api

    class Stopped(Exception):
        pass

    seen = {}

    def stop(series, data, specs, prior_sets, settings, *args, **kwargs):
        seen["settings"] = settings
        raise Stopped

    monkeypatch.setattr(jdmbayes.api, "fit_checked", stop)
    with pytest.raises(Stopped):
        main(["fit", "--model", "gc_discontinuation", "--target-accept", "0.8",
              "--out", str(tmp_path / "run")])
    assert seen["settings"].target_accept == 0.8


@pytest.mark.parametrize("command", ["fit", "sensitivity", "compare"])
@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_outside_0_to_2_32_is_refused_before_anything_runs(tmp_path, capsys, command,
                                                                  seed):
    # a negative seed once reached the sampler and died there with a traceback
    out = tmp_path / "run"
    extra = {"sensitivity": ["--priors", "default,sceptical"],
             "compare": ["--model", "cat_bm"]}.get(command, [])
    assert main([command, "--model", "cmas", *extra, "--seed", seed, "--out", str(out)]) == 2
    assert not out.exists()
    assert f"seed (--seed) must be a whole number from 0 to 4294967295, got {seed}" in \
        capsys.readouterr().err


def test_an_unreachable_scheduler_is_an_input_error_not_a_traceback(tmp_path, capsys,
                                                                    monkeypatch):
    import jdmbayes.batch.fits

    monkeypatch.setattr(jdmbayes.batch.fits, "SCHEDULER_TIMEOUT", "1s")
    out = tmp_path / "run"
    # port 1 on this machine: nothing listens there
    assert main(["fit", "--model", "ldh", "--scheduler", "tcp://127.0.0.1:1",
                 "--out", str(out)]) == 2
    assert not out.exists()
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["foo", "tcp://localhost", "http://host:8786"])
def test_a_scheduler_address_dask_cannot_read_is_an_input_error(tmp_path, capsys, address):
    # each crashed with a traceback (ValueError), exit 1
    out = tmp_path / "run"
    assert main(["fit", "--model", "ldh", "--scheduler", address, "--out", str(out)]) == 2
    assert not out.exists()
    assert (f"--scheduler {address!r} is not a Dask scheduler address" in
            capsys.readouterr().err)


@pytest.mark.parametrize(("model", "rule", "file", "says"), [
    ("cmas", "spec_measure", "measurements.csv", "model 'cmas': no modelled patient has "
     "measure 'cmas'"),
    ("gc_discontinuation", "spec_event", "events.csv", "model 'gc_discontinuation' names "
     "event 'gc_discontinuation', which no row of events has; events present: none (the "
     "series has no events file)"),
])
def test_a_model_of_a_table_the_series_lacks_is_refused_naming_its_file(
        tmp_path, capsys, model, rule, file, says):
    # a series of subjects only (events and measurements are optional tables): a model that
    # needs one crashed fit and validate with a traceback (KeyError) building this message
    (tmp_path / "subjects.csv").write_text(
        "subject_id,followup_wk,drug,dose_start_mg_bid,rash_at_start\n"
        "A,10,tofacitinib,2.5,1\nB,12,ruxolitinib,5,1\nC,20,tofacitinib,5,1\n"
        "D,15,ruxolitinib,2.5,1\n")
    out = tmp_path / "run"
    assert main(["fit", "--data", str(tmp_path), "--model", model, "--out", str(out)]) == 2
    assert not out.exists()
    err = capsys.readouterr().err
    assert f"error: {tmp_path / file}, column " in err and f"[{rule}] {says}" in err


def refused_two_milestones(tmp_path, capsys, events: str) -> str:
    """``fit`` of a spec of two milestones of the user's own ('first', 'second') on three
    subjects with ``events`` rows: exit 2, nothing written; returns stderr."""
    (tmp_path / "subjects.csv").write_text("subject_id,followup_wk\nA,30\nB,30\nC,30\n")
    (tmp_path / "events.csv").write_text("subject_id,event,time_wk,censored,time_lo_wk\n"
                                         + events)
    spec = tmp_path / "ab.toml"
    spec.write_text('[model]\nname = "ab"\nkind = "milestones"\n'
                    'outcomes = ["first", "second"]\ngrouping = []\ncontrasts = []\n')
    out = tmp_path / "run"
    assert main(["fit", "--data", str(tmp_path), "--model", str(spec), "--out", str(out)]) == 2
    assert not out.exists()
    return capsys.readouterr().err


def test_a_users_milestone_in_an_interval_ending_at_the_one_before_is_refused(tmp_path,
                                                                              capsys):
    # 'second' in (1, 2] after 'first' at 2: a gap of zero weeks at most, which passed the
    # checks and ended the fit with a traceback ("All initialization points failed")
    err = refused_two_milestones(tmp_path, capsys, "A,first,2,0,\nA,second,2,0,1\n"
                                 "B,first,3,0,\nB,second,9,0,\nC,first,1,0,\nC,second,30,1,\n")
    # the message names the row (events.csv's second data row), as validate's do
    assert (f"{tmp_path / 'events.csv'}, row 2, column 'time_wk': [milestone_order] subject "
            "'A': 'second' in (1, 2] wk is not after the previous milestone") in err


def test_a_users_milestone_observed_after_a_censored_one_names_its_row(tmp_path, capsys):
    err = refused_two_milestones(tmp_path, capsys, "B,first,3,0,\nB,second,9,0,\n"
                                 "A,first,20,1,\nC,first,1,0,\nC,second,30,1,\n"
                                 "A,second,25,0,\n")
    assert (f"{tmp_path / 'events.csv'}, row 6, column 'censored': [milestone_order] subject "
            "'A': 'second' is observed after an earlier milestone was censored") in err


def test_a_numpy_integer_seed_is_a_seed():
    import numpy as np

    from jdmbayes.api import check_seed
    from jdmbayes.errors import InputError

    check_seed(np.int64(7))
    check_seed(2**32 - 1)
    for bad in (True, 1.5, "7", np.int64(-1)):
        with pytest.raises(InputError):
            check_seed(bad)


@pytest.mark.parametrize("command", ["fit", "compare", "sensitivity"])
@pytest.mark.parametrize(("option", "value"), [
    ("draws", 2.5), ("draws", "1000"), ("tune", True), ("chains", 4.0), ("jobs", "2"),
    ("ci_prob", "0.9"), ("target_accept", "0.9"),
])
def test_api_options_of_the_wrong_type_are_refused_before_anything_runs(tmp_path, command,
                                                                        option, value):
    # draws=2.5 died with "'float' object cannot be interpreted as an integer" after the
    # series was read, and draws="1000" with a TypeError from the check itself
    import numpy as np

    import jdmbayes
    from jdmbayes.errors import InputError

    run = {"fit": lambda **kw: jdmbayes.fit("gc_discontinuation", **kw),
           "compare": lambda **kw: jdmbayes.compare(["cmas", "cat_bm"], **kw),
           "sensitivity": lambda **kw: jdmbayes.sensitivity(
               "gc_discontinuation", priors=["default", "sceptical"],
               out=tmp_path / "grid", **kw)}[command]
    with pytest.raises(InputError) as caught:
        run(**{option: value})
    assert f"{option} (--{option.replace('_', '-')}) must be" in str(caught.value)
    assert f"got {value!r}" in str(caught.value)
    assert not (tmp_path / "grid").exists()
    # any whole-number type is a count: checked without sampling
    from jdmbayes.api import check_options
    check_options(0.9, "eti", np.int64(4), np.int32(100), 100, 1, np.float64(0.9), seed=1)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("trials", 20.5, "--trials must be a whole number, at least 10, got 20.5"),
    ("trials", "100", "--trials must be a whole number, at least 10, got '100'"),
    ("jobs", 1.0, "jobs must be a whole number >= 1, got 1.0"),
])
def test_plan_options_of_the_wrong_type_are_refused_before_anything_is_read(option, value,
                                                                           message):
    import jdmbayes
    from jdmbayes.errors import InputError

    with pytest.raises(InputError) as caught:
        jdmbayes.plan("single_arm_cmas", **{option: value})
    assert message in str(caught.value)


@pytest.mark.parametrize(("args", "message"), [
    # each died in a Dask worker or in nutpie (a Rust panic at --tune 0) with a traceback
    (["sbc", "--seed", "-1"], "seed (--seed) must be a whole number from 0 to 4294967295"),
    (["sbc", "--chains", "0"], "--chains must be at least 1, got 0"),
    (["sbc", "--draws", "0"], "--draws must be at least 1, got 0"),
    (["sbc", "--tune", "0"], "--tune must be at least 1, got 0"),
    (["sbc", "--chunk", "0"], "--chunk must be at least 1, got 0"),
    # ran: ranks cannot be taken on more draws than the posterior has
    (["sbc", "--thin-to", "5000"], "--thin-to (5000) must be at most the posterior draws of "
     "a replicate, --chains x --draws (1000)"),
    (["designs", "--designs", "2", "--seed", "-5"], "seed (--seed) must be a whole number"),
    (["designs", "--designs", "2", "--design-seed", "-5"], "--design-seed must be a whole "
     "number from 0 to 4294967295, got -5"),
    # fitted the same model twice
    (["compare", "--model", "cmas", "--model", "cmas"], "[model_named_twice] model 'cmas' is "
     "asked for more than once"),
    (["fit", "--model", "cmas", "--model", "cmas"], "[model_named_twice] model 'cmas' is asked "
     "for more than once"),
    (["sbc", "--model", "cmas", "--model", "cmas"], "[model_named_twice]"),
])
def test_command_options_that_cannot_run_are_refused_before_anything_runs(tmp_path, capsys,
                                                                        args, message):
    out = tmp_path / "out"
    extra = ["--model", "gc_discontinuation", "--replicates", "10"] \
        if args[0] == "sbc" and "--model" not in args else []
    assert main([*args, *extra, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
