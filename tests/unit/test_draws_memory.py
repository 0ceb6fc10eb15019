"""Draws that certainly cannot fit in memory are refused before sampling (exit 2, nothing
written): every fit keeps each patient's log-likelihood at every draw, so chains x draws x
patients x 8 bytes is a lower bound on its memory (no sampling)."""

from __future__ import annotations

import pytest

from jdmbayes.api import BUNDLED
from jdmbayes.cli import main
from jdmbayes.data.validate import load_series
from jdmbayes.errors import InputError
from jdmbayes.kinds import fit as fit_module
from jdmbayes.models.spec import load_model_spec

BUNDLED_GC_PATIENTS = 25


def test_bound_is_chains_draws_patients_float64():
    spec = load_model_spec("gc_discontinuation")
    need = 4 * 1000 * BUNDLED_GC_PATIENTS * 8        # 800,000 bytes
    assert fit_module.draws_memory_problem(spec, BUNDLED_GC_PATIENTS, 4, 1000, need) is None
    problem = fit_module.draws_memory_problem(spec, BUNDLED_GC_PATIENTS, 4, 1000, need - 1)
    assert problem.rule == "draws_memory"
    assert "4 chains x 1,000 draws (--draws) of its 25 patients' log-likelihoods alone need " \
        "0.0 GB" in problem.message
    assert problem.message.endswith("(these alone allow at most 999)")
    # where the system does not say how much memory it has, nothing is refused
    assert fit_module.draws_memory_problem(spec, 25, 4, 10**12, None) is None


@pytest.mark.parametrize(("membership", "files", "limit"), [
    # cgroup v2, the process's own group, then the mount's root as a container sees it
    ("0::/user/job\n", {"user/job/memory.max": "2147483648\n"}, 2147483648),
    ("0::/user/job\n", {"memory.max": "1073741824\n"}, 1073741824),
    ("0::/user/job\n", {"user/job/memory.max": "max\n"}, None),
    # cgroup v1: the memory controller's hierarchy
    ("4:memory:/job\n3:cpu:/job\n", {"memory/job/memory.limit_in_bytes": "536870912\n"},
     536870912),
    ("4:cpuacct,memory:/job\n", {"memory/memory.limit_in_bytes": "536870912\n"}, 536870912),
    ("3:cpu:/job\n", {"memory/job/memory.limit_in_bytes": "536870912\n"}, None),
    ("0::/user/job\n", {}, None),
])
def test_a_containers_memory_limit_is_read(tmp_path, membership, files, limit):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    (tmp_path / "self_cgroup").write_text(membership)
    assert fit_module.cgroup_memory_limit(tmp_path, tmp_path / "self_cgroup") == limit
    assert fit_module.cgroup_memory_limit(tmp_path, tmp_path / "absent") is None


def test_the_lower_of_the_machines_memory_and_its_limit_bounds_the_draws(monkeypatch):
    monkeypatch.setattr(fit_module, "physical_memory", lambda: 8 * 10**9)
    monkeypatch.setattr(fit_module, "cgroup_memory_limit", lambda: 2 * 10**9)
    assert fit_module.memory_available() == 2 * 10**9
    monkeypatch.setattr(fit_module, "cgroup_memory_limit", lambda: 2**63 - 4096)  # no limit
    assert fit_module.memory_available() == 8 * 10**9
    monkeypatch.setattr(fit_module, "physical_memory", lambda: None)
    monkeypatch.setattr(fit_module, "cgroup_memory_limit", lambda: None)
    assert fit_module.memory_available() is None


def test_machine_memory_is_known_here():
    memory = fit_module.physical_memory()
    assert memory is not None and memory > 2**28


@pytest.mark.parametrize("command", ["fit", "sensitivity"])
def test_fit_and_sensitivity_refuse_before_sampling(command, tmp_path, capsys, monkeypatch):
    # a machine of 1 MB: 4 x 100 draws x 25 patients x 8 bytes = 80 kB fits, 4 x 10,000 not
    monkeypatch.setattr(fit_module, "physical_memory", lambda: 10**6)
    out = tmp_path / "run"
    extra = ["--priors", "default,sceptical"] if command == "sensitivity" else []
    assert main([command, "--model", "gc_discontinuation", *extra, "--draws", "10000",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "[draws_memory] model 'gc_discontinuation': 4 chains x 10,000 draws" in err
    assert "(these alone allow at most 1,250)" in err and "nothing was written" in err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_not_checked_for_a_schedulers_workers(tmp_path, monkeypatch):
    # fits on another machine's workers (--scheduler): their memory is not known here
    monkeypatch.setattr(fit_module, "physical_memory", lambda: 10**6)
    series = load_series(BUNDLED)
    spec = load_model_spec("gc_discontinuation")
    with pytest.raises(InputError, match="draws_memory"):
        fit_module.check_models(series, [spec], 4, 10000)
    fit_module.check_models(series, [spec], 4, 10000, scheduler="tcp://10.0.0.1:8786")
