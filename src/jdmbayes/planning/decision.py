"""What a trial's analysis reports, and the success rule applied to posterior draws: the
posterior probability of the rule's event and the interval of the effect (kind and level
from the design), from plain or weighted draws."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jdmbayes.planning.design import TrialDesign


@dataclass(frozen=True)
class TrialAnalysis:
    """What the success rule and the plan need from one analysed trial (effect on the
    design's scale: a time ratio or a difference)."""

    probability: float       # posterior P(effect <comparison> value)
    lower: float             # equal-tailed interval of the effect, design.interval_prob
    upper: float
    method: str              # "fast", "mcmc" or "exact"
    k_hat: float = float("nan")


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, probs) -> np.ndarray:
    """Quantiles of weighted draws (the weighted empirical CDF at each draw's midpoint)."""
    order = np.argsort(values)
    share = weights[order] / np.sum(weights)
    return np.interp(probs, np.cumsum(share) - share / 2, values[order])


def rule_probability(design: TrialDesign, effect_draws: np.ndarray,
                     weights: np.ndarray | None = None) -> float:
    """P(effect <comparison> value) from draws of the effect on the analysis scale."""
    value = float(design.to_analysis_scale(design.success.value))
    hit = effect_draws < value if design.success.comparison == "<" else effect_draws > value
    if weights is None:
        return float(hit.mean())
    return float(np.sum(weights * hit) / np.sum(weights))


def interval(design: TrialDesign, effect_draws: np.ndarray,
             weights: np.ndarray | None = None) -> tuple[float, float]:
    tail = (1 - design.interval_prob) / 2
    probs = [tail, 1 - tail]
    if weights is None:
        q = np.quantile(effect_draws, probs)
    else:
        q = weighted_quantiles(effect_draws, weights, probs)
    q = design.from_analysis_scale(q)
    return float(q[0]), float(q[1])
