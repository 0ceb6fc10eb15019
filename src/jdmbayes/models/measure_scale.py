"""Generic longitudinal priors put on the measure's own scale.

A longitudinal prior set has two kinds of tables (:func:`jdmbayes.models.spec.load_prior_set`):
a measure's own (``[ldh.*]``, ``[cmas.tau_weeks]``), on its link scale as written, and its
kind's generic ones (``[longitudinal_log.*]``, ...), which no one measure owns. The generic
tables are stated in reference units and become numbers here, once per fit:

* **time** -- ``tau_weeks`` (a log-normal time constant) is stated as a fraction of the
  follow-up: its ``mu`` is shifted by :math:`\\log T`, with :math:`T` the spec's
  ``final_week``, so its median is the same share of any study's follow-up;
* **log-normal measures** -- on the log scale a reference centre :math:`c` and spread
  :math:`s` are taken, in this order of preference,

  - from the spec: ``plausible_range = [a, b]``, the range of values plausible for a patient
    (read as a 90% range): :math:`c = (\\log a + \\log b)/2`,
    :math:`s = (\\log b - \\log a) / (2 \\cdot 1.645)`;
  - else from the data, as rstanarm's ``autoscale``: :math:`c` and :math:`s` are the mean
    and SD of the observed log values (:math:`s` at least ``MIN_SPREAD``);

  then the intercept's location becomes :math:`c + \\mu s`, and every location and scale of
  the other log-scale parameters (baseline and change spreads, changes, group and covariate
  effects, the residual SD, spline coefficients) is multiplied by :math:`s`;
* **bounded scores** (beta-binomial, censored normal) -- the generic tables are already
  stated as fractions of the scale top (logit or identity scale of ``value / upper``): the
  spec's bounds are the reference, and only time is scaled.

Correlations (``lkj_corr``) have no scale. What was done is recorded in ``PriorSet.scaling``
(manifest, notes, report), so a measure never gets another measure's priors silently.

References: Gabry & Goodrich, *Prior distributions for rstanarm models* (autoscaling);
Gelman et al. (2008), *A weakly informative default prior distribution for logistic and
other regression models*, Ann. Appl. Stat. 2:1360-1383.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from pymc_extras.prior import Prior

from jdmbayes.errors import InputError, Problem
from jdmbayes.models.spec import ModelSpec, PriorSet

Z90 = 1.6448536269514722      # standard normal 95th percentile: a 90% range is c +- Z90 s
MIN_SPREAD = 0.05             # log scale: a data-derived spread is never taken as below this
TIME_PARAMETER = "tau_weeks"
UNSCALED = ("lkj_corr",)
LOCATION_PARAMETER = "intercept"
# how a distribution's arguments change when its variable is multiplied by s (and, for a
# location, shifted by c): locations and scales are multiplied (a location also shifted),
# rates divided, a log-normal's log location shifted by log s; shapes (nu) stay
LOCATION_SCALE = {"Normal": ("mu", "sigma"), "StudentT": ("mu", "sigma"),
                  "Cauchy": ("alpha", "beta"), "Laplace": ("mu", "b")}
SCALE_ONLY = {"HalfNormal": ("sigma",), "HalfStudentT": ("sigma",), "HalfCauchy": ("beta",)}
RATE = {"Exponential": ("lam",)}


@dataclasses.dataclass(frozen=True)
class MeasureScale:
    """What a longitudinal measure's generic priors are scaled by."""

    source: str                      # "spec", "data" or "bounds"
    follow_up: float                 # weeks: tau_weeks' unit
    centre: float | None = None      # log scale (log-normal measures)
    spread: float | None = None
    unit: str = ""

    def describe(self, measure: str, upper: float | None, time: bool) -> str:
        """How the generic tables were scaled (``time``: whether a time constant was)."""
        unit = f" {self.unit}" if self.unit else ""
        if self.source == "bounds":
            where = (f"stated as fractions of the scale top ({measure} 0 to {upper:g}, the "
                     "spec's bounds)")
        elif self.source == "spec":
            where = (f"centred on {math.exp(self.centre):.4g}{unit} with a log-scale spread "
                     f"of {self.spread:.3g}, from the spec's plausible_range")
        else:
            where = (f"scaled to the data as rstanarm's autoscale: centred on the mean log "
                     f"value ({math.exp(self.centre):.4g}{unit}), log-scale spread "
                     f"{self.spread:.3g} (the SD of the log values)")
        return where + (f"; the time constant in units of the follow-up ({self.follow_up:g} "
                        "weeks)" if time else "")

def measure_scale(spec: ModelSpec, values: np.ndarray | None) -> MeasureScale:
    """The reference of ``spec``'s measure (``values``: its observed values, for autoscaling
    a log-normal measure whose spec gives no ``plausible_range``)."""
    follow_up = float(spec.final_week)
    if spec.likelihood != "lognormal":
        return MeasureScale("bounds", follow_up, unit=spec.unit)
    if spec.plausible_range:
        low, high = np.log(spec.plausible_range)
        return MeasureScale("spec", follow_up, float((low + high) / 2),
                            float((high - low) / (2 * Z90)), spec.unit)
    logs = np.log(np.asarray(values, dtype=float))
    spread = float(np.std(logs, ddof=1)) if logs.size > 1 else 0.0
    return MeasureScale("data", follow_up, float(np.mean(logs)), max(spread, MIN_SPREAD),
                        spec.unit)


def _scaled_arguments(prior: Prior, spread: float, centre: float | None) -> dict:
    """``prior``'s arguments for its variable times ``spread`` (plus ``centre``, when given);
    ``ValueError`` for a distribution with no such rule."""
    arguments = {a: float(v) for a, v in prior.parameters.items()}
    distribution = prior.distribution
    if distribution == "LogNormal" and centre is None:
        arguments["mu"] = arguments.get("mu", 0.0) + math.log(spread)
        return arguments
    if distribution in LOCATION_SCALE:
        location, scale = LOCATION_SCALE[distribution]
        arguments[location] = arguments.get(location, 0.0) * spread + (centre or 0.0)
        arguments[scale] = arguments.get(scale, 1.0) * spread
    elif distribution in SCALE_ONLY and centre is None:
        (scale,) = SCALE_ONLY[distribution]
        arguments[scale] = arguments.get(scale, 1.0) * spread
    elif distribution in RATE and centre is None:
        (rate,) = RATE[distribution]
        arguments[rate] = arguments.get(rate, 1.0) / spread
    else:
        raise ValueError(distribution)
    return arguments


def scale_priors(prior_set: PriorSet, spec: ModelSpec, values: np.ndarray | None) -> PriorSet:
    """``prior_set`` with its generic tables turned into numbers on ``spec``'s measure (every
    other table as written), and ``scaling`` saying how; the same set if nothing is generic.
    A generic table whose distribution cannot be scaled is an ``InputError`` naming it."""
    if not prior_set.generic or prior_set.scaling:
        return prior_set
    scale = measure_scale(spec, values)
    priors, problems = dict(prior_set.priors), []
    for parameter in prior_set.generic:
        prior = priors[parameter]
        if parameter in UNSCALED:
            continue
        where = f"[{spec.prior_section}.{parameter}]"
        if parameter == TIME_PARAMETER:
            if prior.distribution != "LogNormal":
                problems.append(Problem(str(prior_set.path), "prior_generic_time",
                                        f"{where}: a generic time constant is stated as a "
                                        "fraction of the follow-up and must be LogNormal, got "
                                        f"{prior.distribution}; or give the measure its own "
                                        f"[{spec.measure}.{parameter}] in weeks",
                                        column=parameter))
                continue
            arguments = {a: float(v) for a, v in prior.parameters.items()}
            arguments["mu"] += math.log(scale.follow_up)
        elif scale.source == "bounds":
            continue
        else:
            try:
                arguments = _scaled_arguments(
                    prior, scale.spread, scale.centre if parameter == LOCATION_PARAMETER
                    else None)
            except ValueError as error:
                valid = sorted({*LOCATION_SCALE, *(() if parameter == LOCATION_PARAMETER
                                                    else (*SCALE_ONLY, *RATE, "LogNormal"))})
                problems.append(Problem(str(prior_set.path), "prior_generic_scale",
                                        f"{where}: a generic log-scale table is stated in "
                                        f"units of the measure's spread; {error} cannot be "
                                        f"scaled here (valid: {', '.join(valid)}), or give "
                                        f"the measure its own [{spec.measure}.{parameter}]",
                                        column=parameter))
                continue
        priors[parameter] = Prior(prior.distribution, **arguments)
    if problems:
        raise InputError(problems)
    scaling = {"source": scale.source, "follow_up_weeks": scale.follow_up,
               "log_centre": scale.centre, "log_spread": scale.spread, "unit": scale.unit,
               "generic_parameters": list(prior_set.generic),
               "description": scale.describe(spec.measure, spec.upper,
                                             TIME_PARAMETER in prior_set.generic)}
    return dataclasses.replace(prior_set, priors=priors, scaling=scaling)


def scaling_note(prior_set: PriorSet, measure: str) -> str:
    """One sentence for the notes: whose priors these are."""
    if not prior_set.scaling:
        return (f"Priors: the prior set's own tables for {measure} "
                f"([{measure}.*] of '{prior_set.name}').")
    generic = ", ".join(p for p in prior_set.scaling["generic_parameters"] if p not in UNSCALED)
    own = [p for p in prior_set.priors if p not in prior_set.scaling["generic_parameters"]]
    return (f"Priors ('{prior_set.name}'): the generic tables ({generic}) "
            f"{prior_set.scaling['description']}"
            + (f"; {measure}'s own tables for {', '.join(own)}" if own else "") + ".")
