"""Work over blocks of posterior draws, the blocks on threads.

The per-draw computations of the estimands (each patient's marginal log-likelihood by
quadrature) are NumPy and SciPy array functions over (draws, values) arrays, which release
the GIL: blocks of draws run on as many threads as the process has cores. Each block is
computed by the same operations on the same numbers whatever the thread or the order, and
the blocks are stacked in draw order, so the result does not depend on the number of
threads.

Work whose result is needed only later (the patients' log-likelihood for LOO, which the
fitting workflow needs once the outputs judge and power-scale the fit) runs on a thread of
its own with :func:`start_in_background` while the calling thread goes on: its blocks then
use the core the calling thread's single-threaded steps leave idle. The result is the same
numbers as computed in the foreground; :meth:`Background.stop` makes the blocks not yet
started return at once (the work was not needed after all).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from jdmbayes.processes import usable_cores

# the stop event of the Background whose thread this is (none on any other thread)
_background = threading.local()


class Stopped(Exception):
    """Work of a :class:`Background` stopped before it finished (:meth:`Background.stop`)."""


class Background:
    """``task()`` running on a daemon thread of its own (:func:`start_in_background`)."""

    def __init__(self, future: Future, stop: threading.Event):
        self._future, self._stop = future, stop

    def result(self):
        """Wait for the task; its value, or the exception it raised."""
        return self._future.result()

    def stop(self) -> None:
        """The task's blocks not yet started raise :class:`Stopped` instead of running (a
        no-op once the task is done)."""
        self._stop.set()


def start_in_background(task: Callable[[], object]) -> Background:
    """Run ``task()`` on a new daemon thread (the process never waits for it at exit) and
    return at once; blocks of :func:`on_threads` and :func:`in_blocks` that it runs stop
    when :meth:`Background.stop` is called."""
    future, stop = Future(), threading.Event()

    def run():
        _background.stop = stop
        future.set_running_or_notify_cancel()
        try:
            future.set_result(task())
        except BaseException as error:    # handed to whoever waits for the result
            future.set_exception(error)

    threading.Thread(target=run, name="jdmbayes-background", daemon=True).start()
    return Background(future, stop)


def on_threads(compute, blocks: list, threads: int | None = None) -> list:
    """``[compute(block) for block in blocks]``, in order, on ``threads`` threads (default:
    :func:`usable_cores`); called from a :class:`Background`'s thread, each block first
    checks that the background work was not stopped (:class:`Stopped`)."""
    stop = getattr(_background, "stop", None)
    if stop is not None:
        def compute(block, compute=compute):
            if stop.is_set():
                raise Stopped("background work stopped: its result is not needed")
            return compute(block)
    threads = min(threads or usable_cores(), len(blocks))
    if threads <= 1:
        return [compute(block) for block in blocks]
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(compute, blocks))


def in_blocks(size: int, block_size: int, compute, threads: int | None = None) -> np.ndarray:
    """``compute(block)`` for each slice of ``block_size`` draws of ``size``, stacked along
    draws (axis 0); on ``threads`` threads (default: :func:`usable_cores`)."""
    blocks = [slice(s, min(s + block_size, size)) for s in range(0, size, block_size)]
    return np.concatenate(on_threads(compute, blocks, threads))
