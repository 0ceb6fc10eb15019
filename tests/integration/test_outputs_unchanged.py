"""Refactoring changes nothing users see: for one model of each kind, at a fixed seed,
``summary.csv``, ``diagnostics.json`` and ``grant.md`` are byte-identical to the files kept in
``tests/golden/`` (written by this test with ``JDMBAYES_UPDATE_GOLDEN=1``).

Byte identity of MCMC draws holds on one stack and the CPUs it was checked on: the golden files
record the numerical packages' versions and the CPUs (as numba compiles for them) on which these
outputs were found byte-identical, and the comparison is made only where both match (otherwise
the test is skipped and says why). Updating on another CPU with the same packages adds that CPU
when the outputs are the same bytes, and replaces the files (and the list) when they are not.
"""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import pytest

from jdmbayes.cli import main
from jdmbayes.kinds.registry import KINDS
from tests.conftest import ROOT

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FILES = ("summary.csv", "diagnostics.json", "grant.md")
FLARES = ROOT / "docs" / "example-flares"
# kind -> (model name, the fit arguments that select it): a bundled model on the bundled
# series, or a worked example with its own series
MODEL_OF_KIND = {"milestones": ("gc_discontinuation", ["--model", "gc_discontinuation"]),
                 "longitudinal": ("cmas", ["--model", "cmas"]),
                 "episodes": ("flares", ["--model", str(FLARES / "flares.toml"),
                                         "--data", str(FLARES)])}
ARGS = ["--seed", "19", "--chains", "2", "--draws", "200", "--tune", "200", "--jobs", "1",
        "--allow-failed-diagnostics"]
PACKAGES = ("numpy", "scipy", "pytensor", "numba", "nutpie", "pymc", "arviz", "arviz-stats",
            "pandas", "xarray")


def platform_marker() -> dict:
    import llvmlite.binding as llvm

    return {"cpu": llvm.get_host_cpu_name(),
            "packages": {p: metadata.version(p) for p in PACKAGES}}


def update_golden(folder: Path, out: Path, marker: dict) -> None:
    """Write this run's files as the golden ones, or add this CPU to theirs when they are
    the same bytes on the same packages."""
    folder.mkdir(parents=True, exist_ok=True)
    recorded = (json.loads((folder / "platform.json").read_text())
                if (folder / "platform.json").is_file() else {})
    same = recorded.get("packages") == marker["packages"] and all(
        (folder / name).is_file() and (folder / name).read_bytes() == (out / name).read_bytes()
        for name in FILES)
    cpus = sorted({*recorded.get("cpus", []), marker["cpu"]}) if same else [marker["cpu"]]
    for name in FILES:
        (folder / name).write_bytes((out / name).read_bytes())
    (folder / "platform.json").write_text(json.dumps(
        {"cpus": cpus, "packages": marker["packages"]}, indent=1) + "\n")


def test_every_kind_has_a_golden_model():
    assert set(MODEL_OF_KIND) == set(KINDS)


@pytest.mark.parametrize("kind", sorted(MODEL_OF_KIND))
def test_outputs_are_byte_identical_to_the_golden_files(kind, tmp_path):
    model, target = MODEL_OF_KIND[kind]
    out = tmp_path / "run"
    assert main(["fit", *target, *ARGS, "--out", str(out)]) in (0, 3)
    folder = GOLDEN / model
    marker = platform_marker()
    if os.environ.get("JDMBAYES_UPDATE_GOLDEN") == "1":
        update_golden(folder, out, marker)
    recorded = json.loads((folder / "platform.json").read_text())
    if marker["cpu"] not in recorded["cpus"] or marker["packages"] != recorded["packages"]:
        pytest.skip(f"golden files of {model} were checked on {recorded}, this is {marker}")
    for name in FILES:
        assert (out / name).read_bytes() == (folder / name).read_bytes(), f"{model}/{name}"
