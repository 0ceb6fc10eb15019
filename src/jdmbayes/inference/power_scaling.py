"""Power-scaling sensitivity (Kallioinen et al. 2023) of the key estimands, via ArviZ ``psens``.

The prior (the prior set's parameters, the ``log_prior`` group) and the likelihood (the
per-patient ``log_likelihood`` group) are each raised to a power near 1 by importance
weighting the posterior draws, and the cumulative Jensen–Shannon distance of each estimand's
posterior per unit of log2(power) is its sensitivity. Diagnosis as in priorsense, threshold
0.05: prior and likelihood sensitivity both at or above it is a potential prior-data
conflict; prior at or above and likelihood below is a strong prior / weak likelihood.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from jdmbayes.estimands.names import is_key
from jdmbayes.inference.diagnostics import psis_failure
from jdmbayes.inference.draws import from_groups, group_dataset

THRESHOLD = 0.05
COLUMNS = ["model", "outcome", "quantity", "group", "prior_sensitivity",
           "likelihood_sensitivity", "diagnosis"]


def diagnosis(prior: float, likelihood: float, threshold: float = THRESHOLD) -> str:
    if prior >= threshold and likelihood >= threshold:
        return "potential prior-data conflict"
    if prior >= threshold:
        return "potential strong prior / weak likelihood"
    return "-"


def power_scaling_table(idata: xr.DataTree, quantities: dict, model: str,
                        parameters: list[str]) -> pd.DataFrame:
    """Sensitivity of each key estimand in ``quantities`` ((outcome, quantity, group) ->
    (chains * draws,) draws) and of each named scalar-or-vector parameter."""
    posterior = idata.posterior
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    keys = [k for k in quantities if is_key(*k)]
    columns = {f"q{i}": (("chain", "draw"), np.asarray(quantities[k]).reshape(chains, draws))
               for i, k in enumerate(keys)}
    labels = {f"q{i}": k for i, k in enumerate(keys)}
    for name in parameters:
        if name not in posterior:
            continue
        array = posterior[name]
        extra = [d for d in array.dims if d not in ("chain", "draw")]
        stacked = array.stack(element=extra) if extra else array.expand_dims(element=[0],
                                                                            axis=-1)
        for position in range(stacked.sizes["element"]):
            element = stacked.isel(element=position)
            coords = {d: element.coords[d].item() for d in extra}
            outcome = str(coords.pop("outcome", ""))
            key = f"p{len(labels)}"
            labels[key] = (outcome, name, ",".join(str(v) for v in coords.values()))
            columns[key] = (("chain", "draw"), element.transpose("chain", "draw").values)
    data = from_groups({"posterior": xr.Dataset(columns),
                        "log_prior": group_dataset(idata, "log_prior"),
                        "log_likelihood": group_dataset(idata, "log_likelihood")})
    reason = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prior = az.psense(data, group="prior")
            likelihood = az.psense(data, group="likelihood")
        except ValueError as error:
            # the importance weights are Pareto smoothed, which ArviZ cannot do on draws
            # that barely move or are too few (a fit far from its gates)
            reason = psis_failure(error)
            if reason is None:
                raise
            prior = likelihood = None
    rows = []
    for key, (outcome, quantity, group) in labels.items():
        p, lik = (float(prior[key]), float(likelihood[key])) if prior is not None else (
            float("nan"), float("nan"))
        rows.append({"model": model, "outcome": outcome, "quantity": quantity, "group": group,
                     "prior_sensitivity": p, "likelihood_sensitivity": lik,
                     "diagnosis": diagnosis(p, lik) if prior is not None else
                     f"not computed: {reason}"})
    return pd.DataFrame(rows, columns=COLUMNS)
