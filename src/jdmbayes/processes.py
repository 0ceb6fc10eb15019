"""Memory settings of the processes jdmbayes starts itself: the command line's own process and
the Dask workers of its local cluster. A caller's own process (a notebook using
:mod:`jdmbayes.api`) is left as it is. And the cores a process may run on
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

Neither setting changes a number: both decide only how memory is obtained from the system
(``benchmarks/RESULTS.md`` measures them).
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
