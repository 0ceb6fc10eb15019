"""Nonparametric survival estimates to check the models against (lifelines).

Kaplan-Meier when every observation is exact or right-censored; Turnbull's NPMLE
(lifelines' ``fit_interval_censoring``) when any is interval-censored.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from lifelines import KaplanMeierFitter

from jdmbayes.models.indexing import EXACT, INTERVAL, LATENT, RIGHT


def observed_survival(kind: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                      grid: np.ndarray) -> tuple[str, np.ndarray]:
    """(estimator name, S(t) on ``grid``) for one outcome's observations (NONE rows dropped)."""
    use = np.isin(kind, (EXACT, RIGHT, INTERVAL, LATENT))
    kind, lo, hi = kind[use], lo[use], hi[use]
    fitter = KaplanMeierFitter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if np.isin(kind, (INTERVAL, LATENT)).any():
            lower = np.where(np.isin(kind, (INTERVAL, LATENT)), lo, hi)
            upper = np.where(kind == RIGHT, np.inf, hi)
            fitter.fit_interval_censoring(lower, upper)
            name = "Turnbull"
        else:
            fitter.fit(hi, event_observed=(kind == EXACT))
            name = "Kaplan-Meier"
    frame = fitter.survival_function_
    values = frame.iloc[:, 0].to_numpy()
    times = frame.index.to_numpy(float)
    positions = np.searchsorted(times, grid, side="right") - 1
    return name, np.where(positions >= 0, values[np.maximum(positions, 0)], 1.0)


def survival_check_table(outcomes, kind, lo, hi, predicted_times, grid) -> pd.DataFrame:
    """Observed estimate against the posterior predictive S(t) of the modelled patients."""
    rows = []
    for k, outcome in enumerate(outcomes):
        name, observed = observed_survival(kind[:, k], lo[:, k], hi[:, k], grid)
        survival = (predicted_times[:, :, k][:, :, None] > grid[None, None, :]).mean(axis=1)
        low, mid, high = np.quantile(survival, [0.025, 0.5, 0.975], axis=0)
        for t, o, a, b, c in zip(grid, observed, low, mid, high):
            rows.append({"outcome": outcome, "time_wk": float(t), "estimator": name,
                         "observed_survival": float(o), "predicted_median": float(b),
                         "predicted_low": float(a), "predicted_high": float(c),
                         "band": "95% equal-tailed posterior predictive"})
    return pd.DataFrame(rows)
