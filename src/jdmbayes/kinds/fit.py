"""Fit one model end to end: index -> build -> sample -> predict -> diagnose -> summarise.

Every step that depends on the model's kind is the kind's own (:mod:`jdmbayes.kinds.registry`).
"""

from __future__ import annotations

from jdmbayes.data.validate import Series
from jdmbayes.errors import InputError
from jdmbayes.inference.fitted import ModelResult
from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.kinds.common import sample_model
from jdmbayes.kinds.registry import kind_of
from jdmbayes.models.spec import ModelSpec, PriorSet


def index_model(series: Series, spec: ModelSpec):
    """The arrays ``spec`` is fitted to (every spec-against-series rule is checked here)."""
    return kind_of(spec).index(series, spec)


def check_models(series: Series, specs: list[ModelSpec]) -> None:
    """Every problem of every spec against the series, before anything is sampled or
    written: one ``InputError`` listing them all."""
    problems = []
    for spec in specs:
        try:
            index_model(series, spec)
        except InputError as error:
            problems.extend(p for p in error.problems if p not in problems)
    if problems:
        raise InputError(problems)


def fit_model(series: Series, spec: ModelSpec, prior_set: PriorSet, settings: SamplerSettings,
              ci_prob: float, ci_kind: str, report=None) -> ModelResult:
    """One model end to end; ``report`` hears of its progress (:mod:`jdmbayes.console`)."""
    kind = kind_of(spec)
    data = kind.index(series, spec)
    sampled, prior = sample_model(lambda: kind.build(data, spec, prior_set), spec, prior_set,
                                  settings, kind.observed_arrays(data), data.design,
                                  kind.loglik_name(spec), report)
    result = kind.outputs(data, spec, prior_set, sampled, prior, settings, ci_prob, ci_kind)
    result.key_parameters, result.figure_names = kind.key_parameters, kind.figures
    result.excluded, result.row_counts = data.excluded, data.rows
    result.covariates = data.design.covariate_info
    result.notes.append(result.rows_note())
    return result
