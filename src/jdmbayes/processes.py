"""Memory settings of the processes jdmbayes starts itself (the command line's own process and
the Dask workers of its local cluster), and how those workers start. A caller's own process
(a notebook using :mod:`jdmbayes.api`) is left as it is. And the cores a process may run on
(:func:`usable_cores`), which the sampler's chains and the blocks of draws share out.

* **Huge pages.** NumPy asks the kernel for transparent huge pages (2 MB) for every array of
  4 MB or more. Where the kernel grants them on request (``madvise`` in
  ``/sys/kernel/mm/transparent_hugepage/enabled``, the default of many distributions), every
  new array of that size is zeroed two megabytes at a time when first written. The
  estimands allocate and free many such arrays (draws x new patients, draws x values), so
  the zeroing cost CPU on every one. NumPy's own switch ``NUMPY_MADVISE_HUGEPAGE=0`` stops
  the request; a value the user set is kept.
* **malloc in the workers.** Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``,
  so that long-lived workers give memory back to the system. Setting any malloc threshold
  turns off glibc's dynamic mmap threshold: every array over 128 kB is then mapped and
  unmapped afresh, with a page fault for every 4 kB page of it. A worker of jdmbayes' local
  cluster lives for one batch of fits, so it keeps glibc's defaults.

* **Workers forked from a server that has imported jdmbayes.** A worker of the local cluster
  started afresh (multiprocessing's ``spawn``, Dask's default) imports jdmbayes, PyMC,
  PyTensor and numba before its first fit: about 3 s of a core per worker. Multiprocessing's
  fork server (:func:`worker_fork_server`) is started once per process, in the workers'
  environment, and imports those modules once; every worker is then a fork of it, with
  nothing left to import. A worker forked from it is the worker a spawned one would be only
  if the environment is the same (the cache folders are read when jdmbayes is imported), so
  a cluster asked for in another environment is spawned as before.

None of these changes a number: they decide only how memory is obtained from the system
and how a worker starts (``benchmarks/RESULTS.md`` measures them).
"""

from __future__ import annotations

import os

HUGE_PAGES_SWITCH = "NUMPY_MADVISE_HUGEPAGE"
DASK_MALLOC_TRIM = ("MALLOC_TRIM_THRESHOLD_", 65536)   # Dask's default for its workers


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def huge_pages_setting() -> str:
    """``NUMPY_MADVISE_HUGEPAGE`` for jdmbayes' processes: the user's value, else off."""
    return os.environ.get(HUGE_PAGES_SWITCH, "0")


def configure_own_process() -> None:
    """Stop NumPy asking for huge pages in this process (the command line's; NumPy is already
    imported, so its switch is called as NumPy's import does) and in the processes it
    starts (they inherit the variable), unless the user set ``NUMPY_MADVISE_HUGEPAGE``."""
    if HUGE_PAGES_SWITCH in os.environ:
        return
    os.environ[HUGE_PAGES_SWITCH] = "0"
    import numpy as np

    np._core.multiarray._set_madvise_hugepage(False)


def worker_environment(pre_spawn: dict) -> dict:
    """The environment Dask's nanny sets before starting a worker of the local cluster:
    ``pre_spawn`` (Dask's ``distributed.nanny.pre-spawn-environ``) without Dask's own malloc
    trim threshold (a threshold the user set is kept), with NumPy's huge pages off."""
    name, dask_default = DASK_MALLOC_TRIM
    kept = {k: v for k, v in pre_spawn.items()
            if not (k == name and str(v) == str(dask_default))}
    return {**kept, HUGE_PAGES_SWITCH: huge_pages_setting()}


# what a worker of the local cluster runs, imported once by the fork server it is forked from
WORKER_MODULES = ("distributed", "jdmbayes.batch.fits", "jdmbayes.kinds.fit",
                  "jdmbayes.results.report_plots", "jdmbayes.results.writer")

# the environment the fork server was started in, by this process, as :func:`_compared`
# compares it (None: not started by it)
_FORK_SERVER_ENVIRON: dict[str, str] | None = None


def nanny_environment(pre_spawn: dict) -> dict[str, str]:
    """The variables Dask's nanny sets before it starts a worker, read from ``pre_spawn``
    (the nanny's ``pre-spawn-environ``) as the nanny reads it: a variable already in this
    process' environment keeps that value (a user's exported ``OMP_NUM_THREADS`` wins over
    Dask's 1), one whose value is None is left out, and Python's hash seed is fixed, at
    Dask's own value where none is set, so that every worker hashes alike."""
    environ = {name: os.environ.get(name, str(value)) for name, value in pre_spawn.items()
               if value is not None}
    if environ.get("PYTHONHASHSEED") in (None, "0"):
        environ["PYTHONHASHSEED"] = "6640"
    return environ


def worker_fork_server(pre_spawn: dict, modules: tuple[str, ...] = WORKER_MODULES) -> bool:
    """Make sure multiprocessing's fork server runs, with ``modules`` imported, in this
    process' environment as Dask's nanny updates it with ``pre_spawn`` before starting a
    worker (:func:`nanny_environment`), and say whether a worker that needs that environment
    may be forked from it: yes if this function started it in the same environment; no where
    forking is not available, where the server was started by other code (its environment
    and modules are unknown), or where the environment has changed since (the caller then
    spawns its workers)."""
    global _FORK_SERVER_ENVIRON
    import multiprocessing
    from multiprocessing import forkserver

    environ = nanny_environment(pre_spawn)
    target = _compared({**os.environ, **environ})
    if _FORK_SERVER_ENVIRON is not None:
        return target == _FORK_SERVER_ENVIRON
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    if getattr(forkserver._forkserver, "_forkserver_pid", None) is not None:
        return False                       # started by other code
    # the server starts with this process' environment: the workers' variables are set for
    # that moment only, and only those that differ
    previous = {name: os.environ.get(name) for name in environ
                if os.environ.get(name) != environ[name]}
    os.environ.update({name: environ[name] for name in previous})
    try:
        multiprocessing.get_context("forkserver").set_forkserver_preload(list(modules))
        forkserver.ensure_running()        # returns at once: the server imports on its own
    finally:
        for name, value in previous.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
    _FORK_SERVER_ENVIRON = target
    return True


def _compared(environ: dict[str, str]) -> dict[str, str]:
    """An environment without the variables Dask sets for itself in the process that starts
    its workers (``__DASK_PARENT_PID``, for process titles)."""
    return {name: value for name, value in environ.items() if not name.startswith("__DASK_")}
