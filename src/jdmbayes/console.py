"""What a person sees while models fit: one progress bar per model, a short final table, and
third-party warnings and log lines kept out of the console (unless ``--verbose``) but never
lost: :class:`CapturedLog` keeps them for the run folder's ``log.txt``.

Progress events are plain dicts ``{"model", "stage", "done", "total", "chains",
"divergences"}`` (stage ``compiling``, ``sampling``, ``summarising`` or ``done``). A fit in
this process calls the reporter directly; a fit on a Dask worker publishes them as worker
events on a topic the client subscribes to (:func:`worker_reporter`, :func:`subscribe`).
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from collections.abc import Callable

Reporter = Callable[..., None]
THIRD_PARTY_LOGGERS = ("pymc", "pytensor", "nutpie", "arviz", "distributed", "numba",
                       "py.warnings")


class CapturedLog(logging.Handler):
    """Warnings and third-party log records as lines, from ``start()`` to ``stop()``; with
    ``echo`` they also reach stderr as before."""

    def __init__(self, echo: bool = False):
        super().__init__(logging.DEBUG)
        self.echo = echo
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        self._saved: dict[str, tuple] = {}
        self._showwarning = None

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def start(self) -> CapturedLog:
        existing = list(logging.Logger.manager.loggerDict)
        for name in THIRD_PARTY_LOGGERS:
            logger = logging.getLogger(name)
            self._saved[name] = (list(logger.handlers), logger.propagate, logger.level)
            if not self.echo:
                logger.handlers = []
            logger.addHandler(self)
            logger.propagate = False
            logger.setLevel(logging.INFO)
            # a child logger with handlers of its own (distributed.client has) would print
            # past the capture: its records go up to the capturing parent instead
            for child_name in existing:
                child = logging.Logger.manager.loggerDict[child_name]
                if child_name.startswith(name + ".") and isinstance(child, logging.Logger) \
                        and child.handlers and not self.echo:
                    self._saved[child_name] = (list(child.handlers), child.propagate,
                                               child.level)
                    child.handlers, child.propagate = [], True
        self._showwarning = warnings.showwarning
        warnings.showwarning = self._warning
        return self

    def _warning(self, message, category, filename, lineno, file=None, line=None):
        text = warnings.formatwarning(message, category, filename, lineno, line).rstrip()
        self.lines.append(f"{time.strftime('%Y-%m-%d %H:%M:%S')} warning: {text}")
        if self.echo and self._showwarning is not None:
            self._showwarning(message, category, filename, lineno, file, line)

    def stop(self) -> None:
        for name, (handlers, propagate, level) in self._saved.items():
            logger = logging.getLogger(name)
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)
        self._saved.clear()
        if self._showwarning is not None:
            warnings.showwarning = self._showwarning
            self._showwarning = None

    def __enter__(self) -> CapturedLog:
        return self.start()

    def __exit__(self, *exc) -> bool:
        self.stop()
        return False


class ProgressDisplay:
    """One bar per model on stderr (rich), when stderr is a terminal; otherwise one plain
    line per model as it finishes."""

    def __init__(self, models: list[str], chains: int, enabled: bool = True):
        from rich.console import Console

        self.console = Console(stderr=True)
        self.chains = chains
        self.started = time.perf_counter()
        self.finished: set[str] = set()
        self.progress = None
        self.tasks = {}
        if enabled and self.console.is_terminal:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.progress = Progress(TextColumn("{task.fields[model]:<20}"),
                                     TextColumn("{task.fields[stage]:<12}"), BarColumn(),
                                     MofNCompleteColumn(), TextColumn("draws, {task.fields["
                                                                      "chains]} chains"),
                                     TextColumn("{task.fields[divergences]}"),
                                     TimeElapsedColumn(), console=self.console)
            for model in models:
                self.tasks[model] = self.progress.add_task(
                    model, total=None, model=model, stage="waiting", chains=chains,
                    divergences="")

    def __call__(self, model: str, stage: str, done: int = 0, total: int | None = None,
                 chains: int | None = None, divergences: int = 0) -> None:
        if self.progress is not None and model in self.tasks:
            fields = {"stage": stage, "chains": chains or self.chains}
            if stage == "sampling":   # the other stages keep the draws count as it was
                fields.update(completed=done, total=total,
                              divergences=f"{divergences} divergent" if divergences else "")
            self.progress.update(self.tasks[model], **fields)
        if stage == "done" and model not in self.finished:
            self.finished.add(model)
            if self.progress is None:
                seconds = time.perf_counter() - self.started
                print(f"{model}: done ({seconds:.0f} s after the start)", file=sys.stderr,
                      flush=True)

    def __enter__(self) -> ProgressDisplay:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> bool:
        if self.progress is not None:
            self.progress.stop()
        return False


def nutpie_callback(report: Reporter, model: str, every: float = 0.5):
    """A nutpie ``progress_callback`` that reports summed chain progress at most every
    ``every`` seconds (and always at the end)."""
    last = [0.0]

    def callback(chains) -> None:
        done = sum(c.finished_draws for c in chains)
        total = sum(c.total_draws for c in chains)
        now = time.perf_counter()
        if now - last[0] < every and done < total:
            return
        last[0] = now
        report(model=model, stage="sampling", done=done, total=total, chains=len(chains),
               divergences=sum(c.divergences for c in chains))

    return callback


def worker_reporter(topic: str) -> Reporter:
    """A reporter that publishes progress as events of this Dask worker on ``topic``."""
    from distributed import get_worker

    worker = get_worker()

    def report(**event) -> None:
        worker.log_event(topic, event)

    return report


EVENT_FIELDS = ("model", "stage", "done", "total", "chains", "divergences")


def subscribe(client, topic: str, display: Reporter) -> None:
    """Feed the workers' progress events on ``topic`` to ``display`` (Dask adds fields of
    its own to an event, such as the worker: they are left out)."""
    client.subscribe_topic(topic, lambda event: display(
        **{k: v for k, v in event[1].items() if k in EVENT_FIELDS}))


def duration(seconds: float) -> str:
    """Seconds in words for the console: '45 s', '3 min 05 s', '2 h 07 min'."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def chunks_progress(done: int, total: int, elapsed: float) -> str:
    """'  3/40 chunks, 1 min 12 s so far, about 14 min 48 s left': the time left at the pace
    so far (the chunks are alike in size, so each takes about elapsed / done)."""
    line = f"  {done}/{total} chunks, {duration(elapsed)} so far"
    if 0 < done < total:
        line += f", about {duration(elapsed / done * (total - done))} left"
    return line


def final_table(results, seconds: dict[str, float] | None = None) -> str:
    """A short plain-text table: one line per model with its verdict and diagnostics."""
    header = f"{'model':<20} {'verdict':<8} {'max R-hat':>9} {'ESS bulk':>9} {'ESS tail':>9} " \
             f"{'diverg.':>7} {'LOO k>0.7':>9}"
    lines = [header, "-" * len(header)]
    for r in results:
        d = r.diagnostics
        lines.append(f"{r.name:<20} {d['verdict']:<8} {d['r_hat_max']:>9.4f} "
                     f"{d['ess_bulk_min']:>9.0f} {d['ess_tail_min']:>9.0f} "
                     f"{d['divergences']:>7d} {d.get('n_pareto_k_above_0_7', '-'):>9}")
    if any(not r.diagnostics.get("loo_trustworthy", True) for r in results):
        lines.append("LOO k>0.7: patients whose Pareto k exceeds 0.7; where it is not 0, "
                     "elpd_loo is not reliable (diagnostics.json says so) and jdmbayes "
                     "compare refits the model without each of them (exact LOO)")
    return "\n".join(lines)
