"""The Python API is the command line's front door: same seed, same files; the Fit object
gives the summary, draws, diagnostics and figures without a run folder; the console is
quiet and the log keeps what it hides."""

from __future__ import annotations

import dataclasses
import json

import pandas as pd
import pytest
import xarray as xr
from matplotlib.figure import Figure

import jdmbayes
from jdmbayes.cli import main
from jdmbayes.errors import InputError
from jdmbayes.inference.summarise import COLUMNS

SHORT = dict(seed=7, draws=300, tune=300, chains=2)
CLI_SHORT = ["--seed", "7", "--draws", "300", "--tune", "300", "--chains", "2"]


@pytest.fixture(scope="module")
def api_fit():
    return jdmbayes.fit("gc_discontinuation", ci_prob=0.9, ci_kind="hdi", **SHORT)


def test_api_and_cli_write_byte_identical_summaries(api_fit, tmp_path, capsys):
    written = api_fit.write(tmp_path / "api")
    code = main(["fit", "--model", "gc_discontinuation", *CLI_SHORT, "--ci-prob", "0.9",
                 "--ci-kind", "hdi", "--out", str(tmp_path / "cli")])
    assert code in (0, 3)
    for name in ("summary.csv", "diagnostics.json"):
        assert (written / name).read_bytes() == (tmp_path / "cli" / name).read_bytes(), name
    # the console: a progress line per model, the final table, no third-party noise
    captured = capsys.readouterr()
    console = captured.out + captured.err
    assert "gc_discontinuation: done (" in captured.err
    assert "max R-hat" in captured.out and "Sampling:" not in console
    assert "Warning" not in console and "INFO" not in console
    # ... which the run folder's log keeps
    log = (tmp_path / "cli" / "log.txt").read_text()
    assert "pymc.sampling.forward INFO: Sampling: [" in log


def test_warnings_while_writing_go_to_the_log_not_the_console(api_fit, tmp_path, capsys):
    # a predicted value beyond float32: storing posterior.nc warns (NumPy, via xarray)
    result = api_fit["gc_discontinuation"]
    idata = result.idata.copy(deep=True)
    predictive = idata["posterior_predictive"]
    name = next(iter(predictive.data_vars))
    values = predictive[name].values.copy()
    values.flat[0] = 1e300
    idata["posterior_predictive"][name] = predictive[name].copy(data=values)
    overflowing = dataclasses.replace(api_fit, results=[dataclasses.replace(result,
                                                                            idata=idata)])
    capsys.readouterr()
    overflowing.write(tmp_path / "quiet")
    captured = capsys.readouterr()
    assert "overflow" not in captured.out + captured.err
    log = (tmp_path / "quiet" / "log.txt").read_text()
    assert "[writing]" in log and "RuntimeWarning: overflow encountered in cast" in log
    # --verbose: passed on as well (to the console; here to pytest's recorder)
    with pytest.warns(RuntimeWarning, match="overflow encountered in cast"):
        dataclasses.replace(overflowing, verbose=True).write(tmp_path / "verbose")
    assert "[writing]" in (tmp_path / "verbose" / "log.txt").read_text()


def test_fit_object_gives_summary_draws_diagnostics_and_figures(api_fit, tmp_path):
    summary = api_fit.summary()
    assert list(summary.columns) == COLUMNS and len(summary) > 10
    assert set(summary["ci_kind"]) == {"hdi"} and set(summary["ci_prob"]) == {0.9}
    written = api_fit.write(tmp_path / "run")
    from_file = pd.read_csv(written / "summary.csv", float_precision="round_trip",
                            keep_default_na=False, na_values=["NaN", "nan"])
    numeric = ["mean", "sd", "median", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(from_file[numeric], summary[numeric])
    assert isinstance(api_fit.idata, xr.DataTree)
    assert api_fit.idata["posterior"].sizes["chain"] == 2
    assert api_fit.idata["posterior"].sizes["draw"] == 300
    assert {"log_likelihood", "log_prior", "posterior_predictive"} <= set(
        api_fit.idata.children)
    d = api_fit.diagnostics["gc_discontinuation"]
    assert d["verdict"] in ("pass", "fail") and d["n_draws"] == 600
    assert json.loads((written / "diagnostics.json").read_text())["gc_discontinuation"][
        "r_hat_max"] == pytest.approx(d["r_hat_max"], rel=1e-12)
    for name in ("rank", "forest", "prior_posterior", "ppc_survival", "survival_by_group"):
        assert isinstance(api_fit.plot(name), Figure), name
    with pytest.raises(ValueError, match="trajectories"):
        api_fit.plot("trajectories")
    with pytest.raises(InputError, match="already exists"):
        api_fit.write(tmp_path / "run")
    assert api_fit.write(tmp_path / "run", overwrite=True) == tmp_path / "run"


def test_api_refuses_bad_arguments_before_sampling():
    with pytest.raises(InputError, match="ci_kind"):
        jdmbayes.fit("gc_discontinuation", ci_kind="central")
    with pytest.raises(InputError, match="unknown_model"):
        jdmbayes.fit("no_such_model")
    series = jdmbayes.load_series()
    assert len(series.subjects) == 25
