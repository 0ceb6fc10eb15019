"""What posterior.nc keeps (issue 18.5): population draws whole, per-patient and per-value
draws thinned to at most 1000 as float32, and a file of 300 patients x 6 values under 15 MB."""

from __future__ import annotations

import numpy as np
import xarray as xr

from jdmbayes.inference.draws import from_groups
from jdmbayes.results.storage import (
    PATIENT_LEVEL_DRAWS,
    PREDICTIVE_DRAWS,
    storage_description,
    stored_groups,
)


def fitted_groups(patients: int = 300, values: int = 1800, chains: int = 4, draws: int = 1000,
                  seed: int = 0) -> dict[str, xr.Dataset]:
    rng = np.random.default_rng(seed)
    coords = {"chain": np.arange(chains), "draw": np.arange(draws),
              "patient": np.arange(patients), "obs": np.arange(values)}
    cd, cdp, cdo = ("chain", "draw"), ("chain", "draw", "patient"), ("chain", "draw", "obs")
    return {
        "posterior": xr.Dataset({
            "intercept": (cd, rng.normal(size=(chains, draws))),
            "beta_group": (("chain", "draw", "effect"), rng.normal(size=(chains, draws, 2))),
            "baseline": (cdp, rng.normal(size=(chains, draws, patients))),
            "patient_change": (cdp, rng.normal(size=(chains, draws, patients)))},
            coords={**coords, "effect": ["a", "b"]}, attrs={"jdmbayes_manifest": "{}"}),
        "log_likelihood": xr.Dataset({"marker": (cdp, rng.normal(size=(chains, draws,
                                                                      patients)))},
                                     coords=coords),
        "posterior_predictive": xr.Dataset({"value_pred": (cdo, rng.gamma(
            2.0, 50.0, size=(chains, draws, values)))}, coords=coords),
        "sample_stats": xr.Dataset({"diverging": (cd, np.zeros((chains, draws), bool))},
                                   coords=coords),
        "observed_data": xr.Dataset({"value": ("obs", rng.gamma(2.0, 50.0, values))},
                                    coords={"obs": coords["obs"]}),
    }


def test_population_draws_are_whole_and_patient_draws_thinned_to_float32():
    groups = fitted_groups(patients=20, values=60)
    stored = stored_groups(groups, all_draws=False)
    assert set(stored) == {"posterior", "posterior_patients", "log_likelihood",
                           "posterior_predictive", "sample_stats", "observed_data"}
    # population parameters: every draw, float64, bit for bit
    assert list(stored["posterior"].data_vars) == ["intercept", "beta_group"]
    xr.testing.assert_identical(stored["posterior"]["intercept"],
                                groups["posterior"]["intercept"])
    assert stored["posterior"].attrs == stored["posterior_patients"].attrs
    for name, most, step in (("posterior_patients", PATIENT_LEVEL_DRAWS, 4),
                             ("log_likelihood", PATIENT_LEVEL_DRAWS, 4),
                             ("posterior_predictive", PREDICTIVE_DRAWS, 10)):
        dataset = stored[name]
        # 4 x 1000 draws: every 4th (10th) draw of each chain, 1000 (400) in all
        assert dataset.sizes["chain"] * dataset.sizes["draw"] == most
        assert list(dataset["draw"].values[:3]) == [0, step, 2 * step]
        for variable in dataset.data_vars.values():
            assert variable.dtype == np.float32
    kept = stored["posterior_patients"]["baseline"]
    original = groups["posterior"]["baseline"].sel(draw=kept["draw"])
    np.testing.assert_allclose(kept.values, original.values, rtol=1e-7, atol=1e-7)
    xr.testing.assert_identical(stored["sample_stats"], groups["sample_stats"])
    assert stored_groups(groups, all_draws=True) is groups
    assert storage_description(False)["patient_level_draws"] == PATIENT_LEVEL_DRAWS


def test_a_short_run_is_not_thinned():
    stored = stored_groups(fitted_groups(patients=5, values=10, chains=2, draws=200), False)
    assert stored["log_likelihood"].sizes["draw"] == 200


def test_300_patients_with_6_values_each_fit_in_15_mb(tmp_path):
    """The run folder target: 4 x 1000 draws of 300 patients and 1,800 values (issue 18.5);
    the same groups written whole take about 60 MB."""
    stored = stored_groups(fitted_groups(), all_draws=False)
    path = tmp_path / "posterior.nc"
    from_groups(stored).to_netcdf(str(path), engine="h5netcdf")
    assert path.stat().st_size < 8e6, path.stat().st_size
    whole = tmp_path / "whole.nc"
    from_groups(fitted_groups()).to_netcdf(str(whole), engine="h5netcdf")
    assert whole.stat().st_size > 50e6


def test_the_predictive_replicates_every_kth_draw_of_each_chain():
    """every_kth_draw keeps draws 0, k, 2k, ... of each chain (chain by chain along axis 0),
    k = draw_step: the smallest leaving at most ``most``; 4 x 1000 draws at most 1000:
    every 4th."""
    from jdmbayes.inference.draws import PREDICTIVE_CHECK_DRAWS, draw_step, every_kth_draw

    chains, draws = 4, 1000
    label = (10000 * np.arange(chains)[:, None] + np.arange(draws)[None, :]).ravel()
    values = np.stack([label, -label], axis=1)           # (S, 2): rows travel whole
    step = draw_step(chains * draws, PREDICTIVE_CHECK_DRAWS)
    kept = every_kth_draw(values, chains, step)
    assert step == 4 and kept.shape == (1000, 2)
    assert np.array_equal(kept[:, 0].reshape(chains, -1),
                          10000 * np.arange(chains)[:, None] + np.arange(0, draws, 4))
    assert np.array_equal(kept[:, 1], -kept[:, 0])
    # 2 x 999 at most 500: k = 4, 250 of each chain (the last chain's draw 996 included)
    step = draw_step(2 * 999, 500)
    odd = every_kth_draw(np.arange(2 * 999.0), 2, step)
    assert step == 4 and odd.shape == (500,) and odd[-1] == 999 + 996
    # a variable with no columns (a time shape without spline coefficients) keeps none
    step = draw_step(4000, PREDICTIVE_CHECK_DRAWS)
    empty = every_kth_draw(np.zeros((4000, 0)), 4, step)
    assert step == 4 and empty.shape == (1000, 0)
    # few draws: all of them, the same array
    few = np.arange(400.0)
    step = draw_step(few.size, PREDICTIVE_CHECK_DRAWS)
    kept = every_kth_draw(few, 2, step)
    assert step == 1 and kept is few
