"""What a prior set implies on the outcome scale, without fitting (``fit --prior-predictive``).

Parameters are drawn from the prior (the likelihood is never evaluated) and pushed through
the same predictive code as the posterior: milestone times of the modelled patients, the
population-averaged quantities (median time, P(event by week w), mean change of a score)
and, for longitudinal models, whole trajectories of the measure on its own scale.
"""

from __future__ import annotations

import pandas as pd

from jdmbayes.data.validate import Series
from jdmbayes.kinds.common import QUANTILES, PriorPredictive
from jdmbayes.kinds.registry import kind_of
from jdmbayes.models.spec import ModelSpec, PriorSet

__all__ = ["PriorPredictive", "simulate_prior_predictive", "prior_predictive_table",
           "outcome_scale_claims"]

COLUMNS = ["model", "outcome", "quantity", "group", "prior_mean",
           *[f"q{round(100 * q):02d}" for q in QUANTILES]]


def simulate_prior_predictive(series: Series, spec: ModelSpec, prior_set: PriorSet,
                              draws: int, seed: int) -> PriorPredictive:
    """What ``prior_set`` implies on the outcome scale for the modelled patients of
    ``series`` (the kind's own simulation: :mod:`jdmbayes.kinds.registry`)."""
    kind = kind_of(spec)
    data = kind.index(series, spec)
    return kind.prior_predictive(series, data, spec, kind.resolve_priors(data, spec, prior_set),
                                 draws, seed)


def prior_predictive_table(results: list[PriorPredictive]) -> pd.DataFrame:
    return pd.DataFrame([row for r in results for row in r.rows], columns=COLUMNS)


CLAIMS = (  # (model, outcome, quantity, group, words, unit)
    ("rash_milestones", "rash_improvement", "median_time_wk", "overall",
     "median time to rash improvement", "weeks"),
    ("rash_milestones", "rash_resolution", "median_time_wk", "overall",
     "median time to complete rash resolution", "weeks"),
    ("rash_milestones", "rash_resolution", "p_event_by_wk24", "overall",
     "P(rash resolved by week 24)", ""),
    ("rash_milestones", "rash_resolution", "time_ratio", "ruxolitinib/tofacitinib",
     "time ratio ruxolitinib/tofacitinib", ""),
    ("gc_discontinuation", "gc_discontinuation", "median_time_wk", "overall",
     "median time to glucocorticoid discontinuation", "weeks"),
    ("cmas", "cmas", "mean_change_wk24", "overall", "mean cmas change by week 24",
     "points of 52"),
    ("cat_bm", "cat_bm", "mean_change_wk24", "overall", "mean cat_bm change by week 24",
     "points of 17"),
    ("ldh", "ldh", "mean_change_wk24", "overall", "mean ldh change by week 24", "U/L"),
)


def outcome_scale_claims(table: pd.DataFrame) -> list[str]:
    """The 90% prior ranges each prior file states in its comments, from a prior
    predictive table of the bundled models (seed 1, 1,000 draws; a test recomputes them)."""
    from jdmbayes.results.formatting import significant

    lines = []
    for model, outcome, quantity, group, words, unit in CLAIMS:
        row = table[(table["model"] == model) & (table["outcome"] == outcome)
                    & (table["quantity"] == quantity) & (table["group"] == group)].iloc[0]
        # a probability below 0.001 reads as such, not as its many zeros
        low, median, high = ("<0.001" if quantity.startswith("p_event") and row[c] < 1e-3
                             else significant(row[c], 2) for c in ("q05", "q50", "q95"))
        lines.append(f"{words}: 90% prior probability between {low} and {high}"
                     + (f" {unit}" if unit else "") + f" (prior median {median})")
    return lines
