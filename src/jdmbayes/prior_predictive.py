"""What a prior set implies on the outcome scale, without fitting (``fit --prior-predictive``).

Parameters are drawn from the prior (the likelihood is never evaluated) and pushed through
the same predictive code as the posterior: milestone times of the modelled patients, the
population-averaged quantities (median time, P(event by week w), mean change of a score)
and, for longitudinal models, whole trajectories of the measure on its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import predict_longitudinal as pl
from . import predict_milestones as pm_pred
from .indexing import index_longitudinal, index_milestones
from .longitudinal_model import build_longitudinal_model
from .milestone_model import build_milestone_model
from .sampling import sample_prior
from .spec import ModelSpec, PriorSet
from .validate import Series

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
COLUMNS = ["model", "outcome", "quantity", "group", "prior_mean",
           *[f"q{round(100 * q):02d}" for q in QUANTILES]]


@dataclass
class PriorPredictive:
    model: str
    kind: str
    rows: list[dict]
    # milestones: outcome -> (S * n,) simulated times of the modelled patients (weeks)
    times: dict[str, np.ndarray] = field(default_factory=dict)
    # longitudinal: weeks (W,), simulated values (S, W) of one random modelled patient per draw
    weeks: np.ndarray | None = None
    trajectories: np.ndarray | None = None
    expected: np.ndarray | None = None      # (S, W) expected value of the same patients
    measure: str = ""
    upper: float | None = None


def quantile_row(values: np.ndarray, **labels) -> dict:
    values = np.asarray(values, float).ravel()
    row = {**labels, "prior_mean": float(values.mean())}
    for q, v in zip(QUANTILES, np.quantile(values, QUANTILES)):
        row[f"q{round(100 * q):02d}"] = float(v)
    return row


def simulate_prior_predictive(series: Series, spec: ModelSpec, prior_set: PriorSet,
                              draws: int, seed: int) -> PriorPredictive:
    rng = np.random.default_rng([seed, 3])
    if spec.kind == "milestones":
        data = index_milestones(series, spec)
        prior = sample_prior(build_milestone_model(data, spec, prior_set), draws, seed).prior
        sampled = pm_pred.extract_draws(prior, data)
        times = pm_pred.predict_observed_patients(sampled, data, spec.family, rng)
        quantities = pm_pred.derived_quantities(sampled, data, spec.family, spec.replicates,
                                                rng)
        quantities.update(pm_pred.contrasts(sampled, data, spec.contrasts, spec.family))
        rows = [quantile_row(times[:, :, k], model=spec.name, outcome=o,
                             quantity="patient_time_wk", group="modelled patients")
                for k, o in enumerate(data.outcomes)]
        rows += [quantile_row(v, model=spec.name, outcome=o, quantity=q, group=g)
                 for (o, q, g), v in quantities.items()]
        return PriorPredictive(spec.name, spec.kind, rows,
                               times={o: times[:, :, k].ravel()
                                      for k, o in enumerate(data.outcomes)})
    data = index_longitudinal(series, spec)
    prior = sample_prior(build_longitudinal_model(data, spec, prior_set), draws, seed).prior
    post = pl.posterior_arrays(prior)
    quantities = pl.derived_quantities(post, data, spec, rng)
    quantities.update(pl.contrasts(quantities, data, spec.contrasts, spec.measure))
    weeks = np.unique(np.append(np.arange(0.0, spec.final_week, 1.0), spec.final_week))
    size = post["intercept"].shape[0]
    patient = rng.integers(0, data.n_patients, size)
    mu = (post["baseline"][np.arange(size), patient][:, None]
          + post["patient_change"][np.arange(size), patient][:, None]
          * pl.shape(weeks[None, :], post["tau_weeks"][:, None]))
    values = pl.draw_values(spec.likelihood, mu, post["noise"][:, None], spec.upper or 1.0, rng)
    rows = [quantile_row(values[:, w], model=spec.name, outcome=spec.measure,
                         quantity=f"value_wk{week:g}", group="a modelled patient")
            for w, week in enumerate(weeks) if week in (0.0, 12.0, spec.final_week)]
    rows += [quantile_row(v, model=spec.name, outcome=o, quantity=q, group=g)
             for (o, q, g), v in quantities.items()]
    expected = pl.expected_value(spec.likelihood, mu, post["noise"][:, None], spec.upper or 1.0)
    return PriorPredictive(spec.name, spec.kind, rows, weeks=weeks, trajectories=values,
                           expected=expected, measure=spec.measure, upper=spec.upper)


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
    from .formatting import significant

    lines = []
    for model, outcome, quantity, group, words, unit in CLAIMS:
        row = table[(table["model"] == model) & (table["outcome"] == outcome)
                    & (table["quantity"] == quantity) & (table["group"] == group)].iloc[0]
        low, median, high = (significant(row[c], 2) for c in ("q05", "q50", "q95"))
        lines.append(f"{words}: 90% prior probability between {low} and {high}"
                     + (f" {unit}" if unit else "") + f" (prior median {median})")
    return lines
