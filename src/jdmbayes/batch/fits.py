"""Batches of fits on Dask: an in-process ``LocalCluster`` by default, or an existing
scheduler (``tcp://HOST:PORT``).

Fits that can share a compiled model (same model, same prior families) travel together as
one task, so a worker compiles once and swaps hyperparameters in as data. A task that saves
its fits (``run_saved_group``) writes each one atomically as soon as it is done and skips
those already on disk: when a worker dies, Dask runs the task again elsewhere and only the
missing fits are computed; rerunning an interrupted batch does the same.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from jdmbayes.errors import InputError
from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.processes import worker_environment, worker_fork_server

if TYPE_CHECKING:
    from jdmbayes.models.spec import ModelSpec, PriorSet


@dataclass(frozen=True)
class FitJob:
    """One model under one prior set on one series; everything a worker needs to fit it."""

    data: str
    model: str
    priors: str | None
    settings: SamplerSettings
    ci_prob: float
    ci_kind: str
    folder: str = ""        # where run_saved_group writes it ("" for in-memory fits)
    progress_topic: str = ""   # Dask event topic the worker reports progress on ("": none)
    verbose: bool = False      # let third-party warnings through to the console
    # the spec and prior set as the caller read and checked them (None: read from ``model``
    # and ``priors``): a worker fits what was checked, without reading or checking again
    spec: ModelSpec | None = None
    prior_set: PriorSet | None = None


SCHEDULER_TIMEOUT = "30s"   # how long a named scheduler is tried before giving up


def open_client(scheduler: str | None, workers: int):
    """A Dask client: on ``scheduler`` if given, else on a new local cluster of ``workers``
    single-threaded worker processes (nutpie runs its chains on its own threads), forked
    from one server that imported jdmbayes where the environment allows
    (:func:`jdmbayes.processes.worker_fork_server`)."""
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout=SCHEDULER_TIMEOUT)
        except OSError as error:    # refused, unreachable or timed out
            raise InputError(f"cannot reach the Dask scheduler at {scheduler} ({error}); "
                             "start it, or leave out --scheduler for a local cluster") from None
        except ValueError as error:   # Dask cannot read the address
            raise InputError(f"--scheduler {scheduler!r} is not a Dask scheduler address "
                             f"({error}): give tcp://HOST:PORT") from None
    # the workers' environment (jdmbayes.processes) and no statistical profiler: Dask's
    # samples each worker's threads 100 times a second for its dashboard, which is off
    environ = worker_environment(dask.config.get("distributed.nanny.pre-spawn-environ"))
    settings = {"distributed.nanny.pre-spawn-environ": environ,
                "distributed.worker.profile.enabled": False}
    # workers forked from a server that has imported what they run, unless the user chose
    # how Dask starts its workers (jdmbayes.processes)
    if dask.config.get("distributed.worker.multiprocessing-method") == "spawn" and \
            worker_fork_server(environ):
        settings["distributed.worker.multiprocessing-method"] = "forkserver"
    with dask.config.set(settings):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
    return Client(cluster)


def close_client(client) -> None:
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


def fit_job(job: FitJob, series=None, report=None):
    """Fit one job in this process and render its figures (``ModelResult``); ``series`` if
    already loaded. Progress goes to ``report``, or to the job's Dask event topic; warnings
    and third-party log lines are kept in ``result.log`` (and shown only if ``verbose``)."""
    from jdmbayes.console import CapturedLog, worker_reporter
    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.fit import fit_model
    from jdmbayes.models.spec import load_model_spec, load_prior_set
    from jdmbayes.results.report_plots import render_figures

    if report is None and job.progress_topic:
        report = worker_reporter(job.progress_topic)
    with CapturedLog(echo=job.verbose) as log:
        spec = job.spec or load_model_spec(job.model)
        prior_set = job.prior_set or load_prior_set(job.priors or spec.prior_set, spec)
        result = fit_model(series or load_series(job.data), spec, prior_set, job.settings,
                           job.ci_prob, job.ci_kind, report)
        result.figures = render_figures(result)
    result.log = log.lines
    if report is not None:
        report(model=spec.name, stage="done")
    return result


def run_in_memory(jobs: list[FitJob], client=None, report=None) -> list:
    """Fit every job and return the results in order: on ``client`` when given, else here
    (``report`` hears of an in-process fit's progress; workers use the jobs' topic)."""
    if client is None:
        return [fit_job(job, report=report) for job in jobs]
    futures = client.map(fit_job, jobs, pure=False)
    return client.gather(futures)


def run_saved_group(jobs: list[FitJob], manifest_extra: dict) -> list[dict]:
    """Fit the jobs one after another, writing each to its folder as soon as it is done;
    a job whose folder already exists is skipped. Returns one status row per job."""
    from jdmbayes.data.validate import load_series
    from jdmbayes.results.runfolder import RunFolder
    from jdmbayes.results.writer import now, run_manifest, write_results

    statuses = []
    series = {}     # data folder -> series, read once per group
    for job in jobs:
        folder = Path(job.folder)
        if (folder / "manifest.json").is_file():
            statuses.append({"folder": str(folder), "status": "reused"})
            continue
        started, clock = now(), time.perf_counter()
        if job.data not in series:
            series[job.data] = load_series(job.data)
        result = fit_job(job, series[job.data])
        manifest = run_manifest(job.data, series[job.data], [result], job.settings, job.ci_prob,
                                job.ci_kind, manifest_extra.get("command", []), started,
                                extra=manifest_extra)
        with RunFolder(folder) as tmp:
            write_results(tmp, [result], manifest)
        statuses.append({"folder": str(folder), "status": "fitted",
                         "seconds": time.perf_counter() - clock, **result.timings})
    return statuses


def run_saved(groups: list[list[FitJob]], manifest_extra: dict, client=None) -> list[dict]:
    """``run_saved_group`` for each group: on ``client`` (one task per group), else here."""
    if client is None:
        return [row for group in groups for row in run_saved_group(group, manifest_extra)]
    futures = [client.submit(run_saved_group, group, manifest_extra, pure=False)
               for group in groups]
    return [row for rows in client.gather(futures) for row in rows]


def with_folder(job: FitJob, folder: Path) -> FitJob:
    return replace(job, folder=str(folder))
