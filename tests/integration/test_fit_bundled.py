"""scripts/fit.py end to end on the bundled series: gates, checks, files, exit codes."""

from __future__ import annotations

import hashlib
import json

import arviz as az
import numpy as np
import pandas as pd
import pytest

from jdmbayes.cli import main
from jdmbayes.inference.summarise import COLUMNS
from tests.conftest import BUNDLED

MODELS = ["--model", "rash_milestones", "--model", "gc_discontinuation"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "default"
    code = main(["fit", *MODELS, "--out", str(out)])
    return code, out


def test_default_fit_passes_every_gate(run):
    code, out = run
    assert code == 0
    diagnostics = json.loads((out / "diagnostics.json").read_text())
    for name in ("rash_milestones", "gc_discontinuation"):
        d = diagnostics[name]
        assert d["verdict"] == "pass", d["failures"]
        assert d["r_hat_max"] <= 1.01 and d["ess_bulk_min"] >= 400 and d["divergences"] == 0
        assert min(d["ebfmi_per_chain"]) >= 0.3 and "pareto_k_max" in d
        # LOO that cannot be trusted says so (issue 18): a flag and a warning
        assert d["loo_trustworthy"] == (d["n_pareto_k_above_0_7"] == 0)
        assert ("loo_warning" in d) == (not d["loo_trustworthy"])


def test_report_files_and_grant_sentences_match_summary(run):
    from tests.integration.test_report import check_grant_against_summary

    _, out = run
    for name in ("report.html", "summary.tex", "grant.md"):
        assert (out / name).is_file(), name
    grant = (out / "grant.md").read_text()
    assert "gate failed" not in grant and "RECONSTRUCTED" in grant
    assert check_grant_against_summary(out) >= 10
    assert "class=\"banner\">Data: the bundled series is RECONSTRUCTED" in (
        out / "report.html").read_text()


def test_run_folder_contents_and_provenance(run):
    _, out = run
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary.columns) == COLUMNS
    assert set(summary["ci_kind"]) == {"eti"} and set(summary["ci_prob"]) == {0.95}
    manifest = json.loads((out / "manifest.json").read_text())
    for table, info in manifest["data"]["tables"].items():
        digest = hashlib.sha256((BUNDLED / info["file"]).read_bytes()).hexdigest()
        assert info["sha256"] == digest, table
    assert manifest["data"]["reconstructed"] is True
    assert manifest["seed"] == 20211028 and manifest["versions"]["pymc"].startswith("6.")
    assert manifest["models"]["rash_milestones"]["priors"]["intercept"]["dist"] == "Normal"
    assert "RECONSTRUCTED" in (out / "summary.md").read_text()
    assert manifest["compile_cache"].endswith("pytensor")   # the user's cache folder
    assert (out / "log.txt").is_file()
    idata = az.from_netcdf(out / "rash_milestones" / "posterior.nc")
    for group in ("posterior", "posterior_predictive", "log_likelihood", "prior",
                  "observed_data", "constant_data", "sample_stats"):
        assert group in idata.children, group
    assert json.loads(idata.posterior.attrs["jdmbayes_manifest"])["model"] == "rash_milestones"
    groups = set(summary.loc[summary["quantity"] == "time_ratio", "group"])
    assert groups == {"ruxolitinib/tofacitinib", "5mg/2.5mg"}
    cells = set(summary.loc[summary["quantity"] == "median_time_wk", "group"])
    assert {"overall", "ruxolitinib", "tofacitinib", "ruxolitinib:5mg",
            "tofacitinib:2.5mg"} <= cells


def test_milestones_are_ordered_in_every_predictive_draw(run):
    _, out = run
    idata = az.from_netcdf(out / "rash_milestones" / "posterior.nc")
    times = idata.posterior_predictive["time_pred"].values
    assert times.shape[-1] == 3
    assert (np.diff(times, axis=-1) > 0).all()


def test_predicted_resolutions_centre_on_the_observed_16_of_24(run):
    _, out = run
    ppc = pd.read_csv(out / "rash_milestones" / "ppc_counts.csv").set_index("outcome")
    row = ppc.loc["rash_resolution"]
    assert row["observed"] == 16
    assert row["predicted_low"] <= 16 <= row["predicted_high"]
    assert abs(row["predicted_mean"] - 16) < 3
    assert 0.05 < row["p_predicted_ge_observed"] < 0.95


def test_same_seed_gives_identical_summary(run, tmp_path):
    """The fixture fitted the models in two worker processes; again in this process."""
    _, out = run
    again = tmp_path / "again"
    assert main(["fit", *MODELS, "--jobs", "1", "--out", str(again)]) == 0
    assert (again / "summary.csv").read_bytes() == (out / "summary.csv").read_bytes()


def test_bad_data_exits_2_and_writes_nothing(series_copy, tmp_path, capsys):
    frame = pd.read_csv(series_copy / "subjects.csv")
    frame.loc[2, "sex"] = "X"
    frame.to_csv(series_copy / "subjects.csv", index=False)
    out = tmp_path / "never"
    assert main(["fit", "--data", str(series_copy), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "subjects.csv, row 3, column 'sex': [sex_value] 'X' is not F or M" in err
    assert "Traceback" not in err and not out.exists()


def test_existing_output_needs_overwrite(run, capsys):
    _, out = run
    assert main(["fit", *MODELS, "--out", str(out)]) == 2
    assert "pass --overwrite" in capsys.readouterr().err


def test_failed_gate_exits_3_with_results_marked(tmp_path):
    out = tmp_path / "short"
    code = main(["fit", "--model", "gc_discontinuation", "--draws", "40", "--tune", "40",
                 "--out", str(out)])
    assert code == 3
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["diagnostics_verdict"] == "fail"
    failures = json.loads((out / "diagnostics.json").read_text())["gc_discontinuation"]["failures"]
    assert any(f["gate"] == "ess_bulk" and "increase --draws" in f["try"] for f in failures)


def test_shareable_posterior_has_no_identifiers(tmp_path):
    out = tmp_path / "share"
    assert main(["fit", "--model", "gc_discontinuation", "--model", "cmas", "--shareable",
                 "--out", str(out)]) == 0
    for name in ("gc_discontinuation", "cmas"):
        idata = az.from_netcdf(out / name / "posterior.nc")
        assert not {"constant_data", "observed_data"} & set(idata.children)
    assert not (out / "cmas" / "ppc_trajectories.csv").exists()   # patient-level rows
    assert (out / "cmas" / "ppc_groups.csv").exists()
    for path in out.rglob("*"):
        if path.is_file() and path.suffix != ".nc":
            assert "REC0" not in path.read_text(errors="ignore"), path
