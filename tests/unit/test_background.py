"""Work on a thread of its own (jdmbayes.estimands.blocks.start_in_background): the patients'
LOO log-likelihood runs there while the gates are judged. Its result is the foreground's,
to the bit; its errors reach whoever waits; once stopped, no further block starts; and the
outputs compute it again where it was stopped (jdmbayes.kinds.common.sampled_loo_loglik)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from jdmbayes.estimands.blocks import Stopped, in_blocks, start_in_background
from jdmbayes.kinds.common import sampled_loo_loglik


def block_values(block: slice) -> np.ndarray:
    rng = np.random.default_rng(block.start)
    return np.log1p(rng.uniform(size=(block.stop - block.start, 7)))


def test_background_gives_the_foreground_numbers():
    foreground = in_blocks(1003, 50, block_values, threads=2)
    background = start_in_background(lambda: in_blocks(1003, 50, block_values, threads=2))
    np.testing.assert_array_equal(background.result(), foreground)
    assert foreground.shape == (1003, 7)


def test_an_error_reaches_whoever_waits():
    def fails():
        raise ValueError("draw 17 has no finite log-likelihood")

    with pytest.raises(ValueError, match="draw 17"):
        start_in_background(fails).result()


@pytest.mark.parametrize("threads", [1, 2])
def test_once_stopped_no_further_block_starts(threads):
    started, release = [], threading.Event()

    def compute(block):
        started.append(block.start)
        release.wait(10)
        return np.zeros(block.stop - block.start)

    background = start_in_background(lambda: in_blocks(20, 1, compute, threads=threads))
    deadline = time.monotonic() + 10
    while len(started) < threads and time.monotonic() < deadline:
        time.sleep(0.001)
    background.stop()
    release.set()
    with pytest.raises(Stopped):
        background.result()
    # the blocks running when it was stopped finish; none of the other 20 - threads starts
    assert sorted(started) == list(range(threads))


def test_blocks_outside_a_background_thread_never_stop():
    # a stopped Background's event belongs to its own thread only
    background = start_in_background(lambda: None)
    background.result()
    background.stop()
    assert in_blocks(30, 4, block_values, threads=2).shape == (30, 7)


def test_the_outputs_compute_again_what_was_stopped():
    values = np.arange(24.0).reshape(2, 3, 4)
    calls = []
    kind = SimpleNamespace(loo_loglik=lambda data, spec, prior_set, idata: calls.append(1)
                           or values + 1)
    finished = start_in_background(lambda: values)
    finished.result()
    got = sampled_loo_loglik(kind, None, None, None,
                             SimpleNamespace(loo_loglik=finished, idata=None))
    assert got is values and calls == []

    stopped = start_in_background(lambda: in_blocks(5, 1, lambda b: (time.sleep(0.05),
                                                                      np.zeros(1))[1],
                                                    threads=1))
    stopped.stop()
    got = sampled_loo_loglik(kind, None, None, None,
                             SimpleNamespace(loo_loglik=stopped, idata=None))
    np.testing.assert_array_equal(got, values + 1)
    assert calls == [1]

    got = sampled_loo_loglik(kind, None, None, None, SimpleNamespace(loo_loglik=None,
                                                                     idata=None))
    assert calls == [1, 1]
