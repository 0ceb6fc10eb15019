r"""Closed-form assurance of the normal endpoint (O'Hagan & Stevens 2001), the known answer the
simulation engine is checked against.

Two arms of ``n`` patients, outcome SD :math:`\sigma` known, so the observed difference is
:math:`d \sim N(\delta, V)`, :math:`V = 2\sigma^2/n`. With analysis prior
:math:`\delta \sim N(a, s^2)` (:math:`s=\infty`: flat) the posterior has precision
:math:`P = 1/V + 1/s^2`, mean :math:`(d/V + a/s^2)/P`. The rule
:math:`P(\delta > v \mid d) > p` holds iff :math:`d > c = V\{(v + z_p P^{-1/2})P - a/s^2\}`
(for ``<``: :math:`d < V\{(v - z_p P^{-1/2})P - a/s^2\}`). Under a design prior
:math:`\delta \sim N(m, t^2)`, marginally :math:`d \sim N(m, t^2 + V)`, so the assurance is
:math:`1 - \Phi((c - m)/\sqrt{t^2 + V})`; with :math:`t = 0` it is the classical power at
:math:`m`. A robustified prior (weight :math:`w` on :math:`N(m_0, t_0^2)`) mixes the two.
"""

from __future__ import annotations

import math

from scipy import stats

from jdmbayes.planning.design import TrialDesign


def _success_probability(design: TrialDesign, n: int, mean: float, sd: float) -> float:
    variance = 2 * design.sd**2 / n
    prior_sd = design.analysis_prior["sd"]
    flat = math.isinf(prior_sd)
    precision = 1 / variance + (0.0 if flat else prior_sd**-2)
    prior_term = 0.0 if flat else design.analysis_prior["mean"] / prior_sd**2
    z = stats.norm.ppf(design.success.probability)
    value = design.success.value
    spread = math.sqrt(sd**2 + variance)
    if design.success.comparison == ">":
        cut = variance * ((value + z * precision**-0.5) * precision - prior_term)
        return float(stats.norm.sf((cut - mean) / spread))
    cut = variance * ((value - z * precision**-0.5) * precision - prior_term)
    return float(stats.norm.cdf((cut - mean) / spread))


def normal_assurance(design: TrialDesign, n: int) -> float:
    """Assurance at ``n`` per arm under the design's (robustified) normal design prior."""
    informative = _success_probability(design, n, design.design_prior["mean"],
                                       design.design_prior["sd"])
    if design.robust_weight == 0:
        return informative
    vague = _success_probability(design, n, design.robust_mean, design.robust_sd)
    return (1 - design.robust_weight) * informative + design.robust_weight * vague


def normal_power(design: TrialDesign, n: int, effect: float) -> float:
    """Probability of success at a fixed true difference (classical power; the type I error
    at the null)."""
    return _success_probability(design, n, effect, 0.0)
