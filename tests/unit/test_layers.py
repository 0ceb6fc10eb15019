"""The package's import contract (``[tool.importlinter]`` in pyproject.toml) holds, it can
fail, and no module imports itself through others (no cycle, lazy imports included)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(%r))"


def lint(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT % str(config)], cwd=ROOT,
                          capture_output=True, text=True)


def test_the_layers_contract_is_kept():
    run = lint(ROOT / "pyproject.toml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 kept, 0 broken" in run.stdout


def test_the_contract_fails_on_an_import_against_it(tmp_path):
    # the same contract with data above models: then models.indexing may not import
    # data.validate, as it does
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    layers = config["tool"]["importlinter"]["contracts"][0]["layers"]
    i, j = layers.index("models"), layers.index("data")
    layers[i], layers[j] = layers[j], layers[i]
    contract = config["tool"]["importlinter"]["contracts"][0]
    text = "[importlinter]\nroot_packages =\n    jdmbayes\n\n[importlinter:contract:one]\n"
    text += f"name = {contract['name']}\ntype = layers\ncontainers =\n    jdmbayes\n"
    text += "layers =\n" + "".join(f"    {layer}\n" for layer in layers)
    (tmp_path / "setup.cfg").write_text(text)
    run = lint(tmp_path / "setup.cfg")
    assert run.returncode != 0
    assert "jdmbayes.models is not allowed to import jdmbayes.data" in run.stdout


def test_no_import_cycle_anywhere():
    graph = grimp.build_graph("jdmbayes")
    modules = sorted(graph.modules)
    cycles = []
    for module in modules:
        for imported in graph.find_modules_directly_imported_by(module):
            if imported != "jdmbayes" and graph.chain_exists(imported, module):
                if not module.startswith(imported + ".") and module != "jdmbayes":
                    cycles.append(f"{module} -> {imported} -> ... -> {module}")
    assert not cycles, "\n".join(cycles)
