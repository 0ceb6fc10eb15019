"""Work over blocks of posterior draws, the blocks on threads.

The per-draw computations of the estimands (each patient's marginal log-likelihood by
quadrature) are NumPy and SciPy array functions over (draws, values) arrays, which release
the GIL: blocks of draws run on as many threads as the process has cores. Each block is
computed by the same operations on the same numbers whatever the thread or the order, and
the blocks are stacked in draw order, so the result does not depend on the number of
threads.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def usable_cores() -> int:
    """The cores this process may run on (its affinity where the system reports one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def on_threads(compute, blocks: list, threads: int | None = None) -> list:
    """``[compute(block) for block in blocks]``, in order, on ``threads`` threads (default:
    :func:`usable_cores`)."""
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
