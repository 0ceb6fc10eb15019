"""benchmarks/run.py runs where the optional peers are not installed: a missing PyStan is an
ImportError the harness reports as 'skipped', never a folder of ours imported in its place."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import ROOT

PROBE = """
import sys
sys.path.insert(0, {benchmarks!r})
import run
try:
    run.stan_end_to_end(["gc_discontinuation"], 10)
except ImportError as error:
    print("skipped:", error)
"""


@pytest.mark.skipif(importlib.util.find_spec("stan") is not None,
                    reason="PyStan is installed here: the peer runs instead")
def test_stan_peer_is_skipped_not_shadowed_when_pystan_is_absent():
    done = subprocess.run([sys.executable, "-c",
                           PROBE.format(benchmarks=str(ROOT / "benchmarks"))],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipped: No module named 'stan'" in done.stdout
