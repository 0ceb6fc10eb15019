"""A long plan says, after each chunk of trials, the time so far and about how much is left
at that pace (no sampling: the chunks are stand-ins that take known times)."""

from __future__ import annotations

import pandas as pd

from jdmbayes.console import chunks_progress, duration
from jdmbayes.planning import run as plan_run


def test_duration_in_words():
    assert [duration(x) for x in (0.4, 59.4, 60, 185.2, 3599.6, 7620)] == [
        "0 s", "59 s", "1 min 00 s", "3 min 05 s", "1 h 00 min", "2 h 07 min"]


def test_time_left_at_the_pace_so_far():
    # 3 of 40 chunks in 72 s: 24 s each, 37 left -> 888 s
    assert chunks_progress(3, 40, 72.0) == "  3/40 chunks, 1 min 12 s so far, about " \
        "14 min 48 s left"
    assert chunks_progress(40, 40, 960.0) == "  40/40 chunks, 16 min 00 s so far"


def test_plan_chunks_report_progress(monkeypatch):
    clock = iter([100.0, 110.0, 130.0, 160.0])      # start, then after each of 3 chunks
    monkeypatch.setattr(plan_run, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(plan_run, "simulate_and_analyse",
                        lambda design, prior, prior_set, chunk, seed, method:
                        pd.DataFrame({"chunk": [chunk]}))
    lines = []
    frames = plan_run._compute(["a", "b", "c"], None, None, None, 1, "fast", None,
                               echo=lines.append)
    assert [f["chunk"].iloc[0] for f in frames] == ["a", "b", "c"]
    assert lines == ["  1/3 chunks, 10 s so far, about 20 s left",
                     "  2/3 chunks, 30 s so far, about 15 s left",
                     "  3/3 chunks, 1 min 00 s so far"]
