"""The gates' R-hat and ESS, a block of elements at a time, against ArviZ's own, element by
element: the same numbers to the bit (jdmbayes.inference.convergence)."""

import warnings

import arviz as az
import numpy as np
import pytest
import xarray as xr

from jdmbayes.inference.convergence import BLOCK_ELEMENTS, convergence
from jdmbayes.inference.summarise import TAIL


def arviz_figures(posterior):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (az.rhat(posterior), az.ess(posterior, method="bulk"),
                az.ess(posterior, method="tail", prob=TAIL))


def assert_same(posterior, threads=None):
    expected = arviz_figures(posterior)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = convergence(posterior, TAIL, threads=threads)
    for ours, theirs in zip(got, expected):
        assert set(ours.data_vars) == set(theirs.data_vars)
        for name in theirs.data_vars:
            assert ours[name].dims == theirs[name].dims
            for dim in theirs[name].coords:
                np.testing.assert_array_equal(ours[name][dim].values, theirs[name][dim].values)
            # bit for bit, NaN where ArviZ gives NaN
            assert np.array_equal(ours[name].values, theirs[name].values, equal_nan=True), name


def chains(rng, n_chain, n_draw, count, drift=0.05):
    """Autocorrelated draws (a random walk plus noise): long Geyer sequences."""
    walk = rng.standard_normal((n_chain, n_draw, count)).cumsum(axis=1) * drift
    return walk + rng.standard_normal((n_chain, n_draw, count))


def test_many_elements_with_edge_cases_match_arviz():
    rng = np.random.default_rng(3)
    values = chains(rng, 4, 400, 3 * BLOCK_ELEMENTS + 5)     # several blocks, a short last one
    values[:, :, 5] = 1.0                  # constant: ESS is the number of draws
    values[1, 10, 7] = np.nan              # a missing draw: NaN
    values[:, :, 8] = np.round(values[:, :, 8])    # ties among the ranks
    values[0, :, 9] += 3.0                 # one chain elsewhere: R-hat far above 1
    values[:, :, 10] = rng.standard_normal((4, 400))    # independent draws: short sequences
    posterior = xr.Dataset(
        {"effect": (("chain", "draw", "patient"), values),
         "scale": (("chain", "draw"), np.exp(values[:, :, 11])),
         "cell": (("chain", "draw", "drug", "dose"), values[:, :, 20:32].reshape(4, 400, 3, 4))},
        coords={"patient": np.arange(values.shape[2]) + 1, "drug": ["a", "b", "c"]})
    assert_same(posterior)
    assert_same(posterior, threads=1)


@pytest.mark.parametrize("n_chain,n_draw", [(1, 200), (2, 7), (3, 3), (4, 999), (8, 120)])
def test_chain_and_draw_counts_match_arviz(n_chain, n_draw):
    """One chain (no R-hat), too few draws (NaN), an odd number of draws (the middle one left
    out of the split), more chains than 4 (sums of 16 half-chains)."""
    rng = np.random.default_rng(n_chain * 1000 + n_draw)
    posterior = xr.Dataset({"theta": (("chain", "draw", "k"), chains(rng, n_chain, n_draw, 9))})
    assert_same(posterior)


def test_variables_of_two_precisions_and_dimension_order_match_arviz():
    rng = np.random.default_rng(5)
    values = chains(rng, 4, 300, 6)
    posterior = xr.Dataset({"low": (("chain", "draw", "k"), values.astype(np.float32)),
                            "high": (("k", "chain", "draw"), values.transpose(2, 0, 1))})
    assert_same(posterior)


def test_a_stuck_chain_gives_what_the_gate_must_see():
    """Not only equal to ArviZ: the numbers mean what the gates read them to. Four chains of
    independent draws have R-hat within 0.01 of 1 and bulk ESS near the number of draws; one
    chain shifted by 3 SD gives R-hat above 1.4 (ranks bound it: 1.47 here)."""
    rng = np.random.default_rng(11)
    good = rng.standard_normal((4, 1000, 1))
    stuck = good.copy()
    stuck[2] += 3.0
    posterior = xr.Dataset({"good": (("chain", "draw", "k"), good),
                            "stuck": (("chain", "draw", "k"), stuck)})
    rhat, bulk, tail = convergence(posterior, TAIL)
    assert abs(float(rhat["good"][0]) - 1) < 0.01
    assert 3000 < float(bulk["good"][0]) < 5000 and 2500 < float(tail["good"][0]) < 5500
    assert float(rhat["stuck"][0]) > 1.4


def test_summary_rows_have_arviz_figures_row_by_row():
    """The summary rows' ESS, R-hat and MCSE of the mean, computed for all rows at once, are
    ArviZ's of each row on its own; a row that never moves has NaN and an MCSE of 0."""
    from jdmbayes.inference.summarise import summarise_elements

    rng = np.random.default_rng(7)
    arrays = [chains(rng, 4, 500, 1)[:, :, 0] for _ in range(BLOCK_ELEMENTS + 3)]
    arrays[2] = np.full((4, 500), 0.25)
    arrays[4][0, 3] = np.nan
    rows = summarise_elements(arrays, [{"row": j} for j in range(len(arrays))], 0.9, "eti")
    for array, row in zip(arrays, rows):
        if np.ptp(array) == 0:
            assert np.isnan(row["ess_bulk"]) and np.isnan(row["r_hat"]) and row["mcse_mean"] == 0
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = {"ess_bulk": az.ess(array, method="bulk"),
                        "ess_tail": az.ess(array, method="tail", prob=TAIL),
                        "r_hat": az.rhat(array),
                        "mcse_mean": np.ravel(az.mcse(array, method="mean"))[0]}
        for key, value in expected.items():
            assert np.array_equal(row[key], float(value), equal_nan=True), (row["row"], key)
    assert np.isnan(rows[4]["ess_bulk"]) and np.isfinite(rows[5]["ess_bulk"])
