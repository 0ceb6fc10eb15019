"""Exact leave-one-out refits of several fits (:mod:`jdmbayes.kinds.exact_loo`): here, or on
Dask with one task per fit, so that a worker compiles (or loads from the disk cache) each
model once and refits it for every patient it must leave out."""

from __future__ import annotations

from jdmbayes.batch.fits import close_client, open_client
from jdmbayes.data.validate import Series
from jdmbayes.inference.fitted import ModelResult
from jdmbayes.kinds.exact_loo import RefitProblem, exact_loo, needs_refits


def exact_loo_refits(results: list[ModelResult], series: Series, jobs: int = 1,
                     scheduler: str | None = None, report=None) -> tuple[dict, list[dict]]:
    """(model name -> ``ELPDDataLOO`` with exact refits, for the fits that need any; every
    refit's record), in the order of ``results``. On Dask (``scheduler``, else a local
    cluster of up to ``jobs`` workers) when several fits need refits and ``jobs`` > 1 or a
    scheduler is named; else here, where ``report`` hears of each refit's progress."""
    problems = [RefitProblem.of(r) for r in results if needs_refits(r)]
    if len(problems) > 1 and (scheduler or jobs > 1):
        client = open_client(scheduler, min(jobs, len(problems)))
        try:
            outcomes = client.gather(client.map(exact_loo, problems, series=series,
                                                pure=False))
        finally:
            close_client(client)
    else:
        outcomes = [exact_loo(p, series, report) for p in problems]
    exact = {p.name: elpd for p, (elpd, _) in zip(problems, outcomes)}
    return exact, [record for _, records in outcomes for record in records]
