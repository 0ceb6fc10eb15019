r"""Simulation-based calibration of a model on the real design.

For replicate :math:`r = 1..R`: draw :math:`\theta_r` from the model's own prior, simulate a
dataset :math:`y_r` from the model at :math:`\theta_r` on the real series' design
(:mod:`jdmbayes.estimands.simulate`), fit the model to :math:`y_r` and record, for each
checked parameter, the rank of :math:`\theta_r` among :math:`L` near-independent posterior
draws (the draws thinned evenly). If the model is fitted correctly, every rank is uniform on
:math:`0..L` (Talts et al. 2018).

The replicates are run by :mod:`jdmbayes.batch.sbc`; this module holds the settings, the
checked parameters and the checks.

Uniformity, per parameter:

* a chi-square test of the ranks in ``bins`` equal-width bins (about 20 at 200 replicates,
  fewer for fewer, so that each bin expects at least 5), with Holm's adjustment over
  every parameter of the run (family-wise error rate ``alpha``);
* the ECDF of the ranks against simultaneous bands (Säilynoja, Bürkner & Vehtari 2022,
  by simulation with a fixed generator, as arviz-stats does) at level :math:`1-\alpha/m`
  for :math:`m` parameters (Bonferroni).

A parameter passes when both hold; a model passes when all its parameters pass.

References
----------
Talts, Betancourt, Simpson, Vehtari & Gelman (2018), arXiv:1804.06788;
Säilynoja, Bürkner & Vehtari (2022), *Stat Comput* 32:32; Modrák et al. (2023),
*Bayesian Analysis* (SBC in practice); Holm (1979), *Scand J Stat* 6:65.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats


@dataclass(frozen=True)
class SBCSettings:
    replicates: int = 200
    chains: int = 2
    tune: int = 500
    draws: int = 500
    thin_to: int = 99            # L: posterior draws kept per replicate (ranks 0..L)
    target_accept: float = 0.99
    seed: int = 20240601
    chunk: int = 25              # replicates per Dask task
    alpha: float = 0.05

    @property
    def bins(self) -> int:
        return max(2, min(20, self.replicates // 5))

    def as_dict(self) -> dict:
        return {**asdict(self), "bins": self.bins}


# parameters checked in every replicate: all elements of the population-level ones and the
# first element of the patient- and cell-level ones
POPULATION = ("intercept", "dispersion", "beta_group", "sigma_cell", "sigma_patient",
              "beta_episode", "beta_covariate", "sigma_intercept", "change", "sigma_change",
              "tau_weeks", "spline_coef", "rho_baseline_change", "noise")
FIRST_ONLY = ("frailty", "cell_deviation", "baseline", "patient_change")


def checked_parameters(prior) -> list[tuple[str, str, tuple]]:
    """(label, variable, index) of every checked parameter present in the prior group."""
    out = []
    for name in (*POPULATION, *FIRST_ONLY):
        if name not in prior:
            continue
        array = prior[name]
        dims = [d for d in array.dims if d not in ("chain", "draw")]
        if not dims:
            out.append((name, name, ()))
            continue
        labels = array[dims[0]].values
        for j in range(1 if name in FIRST_ONLY else len(labels)):
            out.append((f"{name}[{labels[j]}]", name, (j,)))
    return out


def uniformity(ranks: pd.DataFrame, thin_to: int, bins: int, alpha: float) -> pd.DataFrame:
    """Per (model, parameter): chi-square p-value, Holm-adjusted over all rows, whether the
    rank ECDF stays inside the Bonferroni-level simultaneous band, and the verdict."""
    groups = list(ranks.groupby(["model", "parameter"], sort=False))
    m = len(groups)
    levels = thin_to + 1
    bins = min(bins, levels)
    edges = np.linspace(0, levels, bins + 1)
    levels_per_bin = np.histogram(np.arange(levels), bins=edges)[0]
    rows = []
    for (model, parameter), frame in groups:
        values = frame["rank"].to_numpy()
        n = len(values)
        counts = np.histogram(values, bins=edges)[0]
        expected = n * levels_per_bin / levels
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        p = float(stats.chi2.sf(chi2, bins - 1))
        points, lower, upper = ecdf_band(n, thin_to, 1 - alpha / m)
        ecdf = np.searchsorted(np.sort(values), points, side="right") / n
        inside = bool(((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12)).all())
        rows.append({"model": model, "parameter": parameter, "replicates": n,
                     "chi2": chi2, "df": bins - 1, "p": p, "inside_band": inside,
                     "median_ess_bulk": float(frame["ess_bulk"].median()),
                     "max_rhat": float(frame["rhat"].max()),
                     "replicates_with_divergences": int(
                         frame.groupby("replicate")["divergences"].first().gt(0).sum())})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].to_numpy())
    table["passes"] = (table["p_holm"] >= alpha) & table["inside_band"]
    return table


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate)."""
    order = np.argsort(p)
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


BAND_SIMULATIONS = 20_000
BAND_SEED = 2022


@functools.cache
def ecdf_band(n: int, thin_to: int, prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation points (ranks) and the simultaneous band of the rank ECDF at ``prob``
    (computed once per arguments: the verdicts and every figure panel share it)."""
    from arviz_stats.ecdf_utils import get_pointwise_confidence_band, simulate_confidence_bands

    levels = thin_to + 1
    points = np.arange(levels - 1)
    uniform_cdf = (points + 1) / levels
    # the pointwise level at which the band holds simultaneously with probability ``prob``
    # (ArviZ's simulation method; a fixed generator makes the band the same in every run)
    pointwise = simulate_confidence_bands(n, 1, uniform_cdf, prob, BAND_SIMULATIONS,
                                          np.random.default_rng(BAND_SEED))
    return (points, *get_pointwise_confidence_band(pointwise, n, uniform_cdf))
