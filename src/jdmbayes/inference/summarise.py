"""Posterior summaries as raw numbers: one row per parameter or derived quantity.

Nothing is rounded here (:mod:`jdmbayes.results.formatting` does that for people). The interval
probability and kind are explicit arguments of every function that makes an interval.
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd

from jdmbayes.inference.convergence import convergence_of_elements

CI_KINDS = ("eti", "hdi")
TAIL = (0.05, 0.95)   # tail ESS: the smaller ESS of the 5% and 95% quantiles
COLUMNS = ["model", "outcome", "quantity", "group", "mean", "sd", "median", "ci_low", "ci_high",
           "ci_prob", "ci_kind", "ess_bulk", "ess_tail", "r_hat", "mcse_mean"]


def credible_interval(values: np.ndarray, ci_prob: float, ci_kind: str) -> tuple[float, float]:
    """Equal-tailed ('eti') or highest-density ('hdi') interval of the draws ``values``."""
    flat = np.asarray(values, float).ravel()
    if ci_kind == "eti":
        low, high = np.quantile(flat, [(1 - ci_prob) / 2, (1 + ci_prob) / 2])
    elif ci_kind == "hdi":
        low, high = az.hdi(flat, prob=ci_prob)
    else:
        raise ValueError(f"unknown interval kind {ci_kind!r}; valid: {', '.join(CI_KINDS)}")
    return float(low), float(high)


def summarise_elements(arrays: list[np.ndarray], labels: list[dict], ci_prob: float,
                       ci_kind: str) -> list[dict]:
    """One summary row per (chains, draws) array of ``arrays``, with its ``labels``: mean,
    SD, median, the credible interval, and ArviZ's bulk and tail ESS, R-hat and Monte Carlo
    SE of the mean (computed for all the rows at once,
    :func:`jdmbayes.inference.convergence.convergence_of_elements`: the same numbers);
    draws that never move get NaN for ESS and R-hat and 0 for the MCSE."""
    if not arrays:
        return []
    values = np.stack([np.asarray(a, float) for a in arrays])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        r_hat, ess_bulk, ess_tail, mcse_mean = convergence_of_elements(values, TAIL,
                                                                       mcse=True)
    rows = []
    for j, (element, label) in enumerate(zip(values, labels)):
        low, high = credible_interval(element, ci_prob, ci_kind)
        constant = np.ptp(element) == 0
        diagnostics = dict(
            ess_bulk=np.nan if constant else float(ess_bulk[j]),
            ess_tail=np.nan if constant else float(ess_tail[j]),
            r_hat=np.nan if constant else float(r_hat[j]),
            mcse_mean=0.0 if constant else float(mcse_mean[j]))
        rows.append({**label, "mean": float(element.mean()), "sd": float(element.std(ddof=1)),
                     "median": float(np.median(element)), "ci_low": low, "ci_high": high,
                     "ci_prob": ci_prob, "ci_kind": ci_kind, **diagnostics})
    return rows


def summarise_parameters(posterior, model: str, names: list[str], ci_prob: float,
                         ci_kind: str, outcome_dim: str = "outcome") -> list[dict]:
    """Rows for each element of each named posterior variable."""
    arrays, labels = [], []
    for name in names:
        if name not in posterior:
            continue
        array = posterior[name]
        extra = [d for d in array.dims if d not in ("chain", "draw")]
        stacked = array.stack(element=extra) if extra else array.expand_dims(element=[0], axis=-1)
        for position in range(stacked.sizes["element"]):
            element = stacked.isel(element=position)
            coords = {d: element.coords[d].item() for d in extra}
            outcome = str(coords.pop(outcome_dim, ""))
            group = ",".join(str(v) for v in coords.values())
            arrays.append(element.transpose("chain", "draw").values)
            labels.append(dict(model=model, outcome=outcome, quantity=name, group=group))
    return summarise_elements(arrays, labels, ci_prob, ci_kind)


def summarise_quantities(quantities: dict[tuple[str, str, str], np.ndarray], chains: int,
                         model: str, ci_prob: float, ci_kind: str) -> list[dict]:
    """Rows for derived quantities given as flattened (chains * draws,) arrays."""
    return summarise_elements(
        [values.reshape(chains, -1) for values in quantities.values()],
        [dict(model=model, outcome=outcome, quantity=quantity, group=group)
         for outcome, quantity, group in quantities], ci_prob, ci_kind)


def summary_table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)
