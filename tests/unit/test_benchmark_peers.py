"""benchmarks/run.py runs where the optional peers are not installed: a missing PyStan is an
ImportError the harness reports as 'skipped', never a folder of ours imported in its place."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
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


def load_run_module():
    spec = importlib.util.spec_from_file_location("benchmark_run", ROOT / "benchmarks" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rerunning_one_section_keeps_every_other_section_whole():
    run = load_run_module()
    old = ("# Benchmark results\n\nMachine: m.\n\n## End to end\n\n| a |\n\nsecond paragraph\n\n"
           "## Scale\n\n| old scale |\n\n## Measured elsewhere\n\nfirst\n\n| table |\n\n"
           f"{run.MEASURED_HEADING}\n\n- how\n")
    previous = run.previous_sections(old)
    assert previous["## End to end"] == ["| a |", "", "second paragraph"]
    sections = {"end_to_end": ("## End to end", None), "scale": ("## Scale", None)}
    bodies = {"end_to_end": previous["## End to end"], "scale": ["| new scale |"]}
    kept = {"## Measured elsewhere": previous["## Measured elsewhere"]}
    text = run.results_text("m", sections, bodies, kept)
    assert "second paragraph" in text and "| new scale |" in text and "old scale" not in text
    assert "## Measured elsewhere\n\nfirst\n\n| table |\n" in text
    assert text.index("## Scale") < text.index("## Measured elsewhere") < text.index(
        run.MEASURED_HEADING)


def test_stan_peer_is_refused_where_httpstan_cannot_load_its_models():
    # httpstan 4.17 on Python 3.13 compiles a model for a minute, then cannot load it: the
    # peer says why instead, and run.py reports the row as skipped with that reason
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from stan_peer import stan_unusable

    reason = stan_unusable((3, 13, 0), "4.17.0")
    assert "Python 3.13" in reason and "httpstan 4.17.0" in reason
    assert "_PyThreadState_UncheckedGet" in reason
    assert stan_unusable((3, 14, 1), "4.13.0")
    assert stan_unusable((3, 12, 1), "4.17.0") == ""
    assert stan_unusable((3, 13, 0), "4.18.0") == ""


def test_stan_milestone_data_carries_the_interaction_basis_and_a_centred_frailty():
    # the scale benchmark's chosen model: Stan writes the hierarchically centred frailty
    # as the centred one (the same model) and the cell deviations in the same basis
    import dataclasses

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale
    from stan_peer import milestone_data

    from jdmbayes.models.milestones import interaction_basis
    from jdmbayes.models.spec import load_prior_set

    milestones, _ = scale.synthetic(40, seed=1)
    spec = scale._spec("milestones", "hierarchically_centred", "interaction")
    data = milestone_data(milestones, spec, load_prior_set("default", spec))
    assert data["centred"] == 1 and data["interaction"] == 1 and data["Q"] == 1
    assert np.array_equal(data["basis"], interaction_basis(milestones.design))
    plain = milestone_data(milestones, dataclasses.replace(spec, frailty="non_centred",
                                                           cell_deviations="non_centred"),
                           load_prior_set("default", spec))
    assert plain["centred"] == 0 and plain["interaction"] == 0
    assert plain["basis"].shape == (4, 0)
