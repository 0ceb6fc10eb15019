"""The diagnostic gates name the parameter of each extreme: a user told "max R-hat 1.04"
must also be told where (issue 12's report: "both on sigma_patient")."""

from __future__ import annotations

import numpy as np
import xarray as xr

from jdmbayes.inference.diagnostics import diagnose


def test_worst_r_hat_and_ess_are_named_with_their_element():
    rng = np.random.default_rng(4)
    chains, draws = 4, 500
    beta = rng.standard_normal((chains, draws, 3))
    beta[:2, :, 1] += 1.0                     # two chains elsewhere: R-hat far above 1.01
    sigma = np.exp(0.1 * rng.standard_normal((chains, draws)))
    posterior = xr.Dataset(
        {"beta_group": (("chain", "draw", "effect"), beta),
         "sigma_patient": (("chain", "draw"), sigma)},
        coords={"chain": np.arange(chains), "draw": np.arange(draws),
                "effect": ["drug[ruxolitinib]", "drug[baricitinib]", "dose[5mg]"]})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))},
                       coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    idata = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    result = diagnose(idata, ["beta_group", "sigma_patient"])
    assert result["r_hat_max"] > 1.1
    assert result["r_hat_max_at"] == "beta_group[drug[baricitinib]]"
    assert result["ess_bulk_min_at"] == "beta_group[drug[baricitinib]]"
    r_hat_failure = next(f for f in result["failures"] if f["gate"] == "r_hat")
    assert "(beta_group[drug[baricitinib]])" in r_hat_failure["problem"]
    # a scalar parameter is named alone
    healthy = diagnose(idata, ["sigma_patient"])
    assert healthy["r_hat_max_at"] == "sigma_patient" and healthy["verdict"] == "pass"


def test_the_outputs_reuse_the_gates_judged_on_the_same_parameters():
    """diagnose(earlier=(parameters, result)) takes R-hat, ESS, divergences and E-BFMI from
    the earlier result when it judged the same parameters, else computes them again; the
    verdict is judged on the values used."""
    rng = np.random.default_rng(5)
    chains, draws = 4, 400
    posterior = xr.Dataset(
        {"a": (("chain", "draw"), rng.standard_normal((chains, draws))),
         "b": (("chain", "draw"), rng.standard_normal((chains, draws)))},
        coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    stats = xr.Dataset({"diverging": (("chain", "draw"), np.zeros((chains, draws), bool))},
                       coords={"chain": np.arange(chains), "draw": np.arange(draws)})
    idata = xr.DataTree.from_dict({"posterior": posterior, "sample_stats": stats})
    fresh = diagnose(idata, ["a", "b"])
    assert diagnose(idata, ["a", "b"], earlier=(["a", "b"], fresh)) == fresh
    # a marked earlier result shows which values were taken
    marked = {**fresh, "r_hat_max": 1.5, "r_hat_max_at": "a"}
    reused = diagnose(idata, ["a", "b", "absent"], earlier=(["a", "b"], marked))
    assert reused["r_hat_max"] == 1.5 and reused["verdict"] == "fail"
    assert reused["failures"][0]["problem"] == "max R-hat 1.5000 (a) > 1.01"
    recomputed = diagnose(idata, ["a"], earlier=(["a", "b"], marked))
    assert recomputed["r_hat_max"] < 1.01 and recomputed["verdict"] == "pass"
