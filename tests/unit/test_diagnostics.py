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
