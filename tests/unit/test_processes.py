"""The memory settings of jdmbayes' own processes (:mod:`jdmbayes.processes`): NumPy's huge
pages off unless the user chose, and Dask's malloc trim threshold left out of the local
cluster's workers unless the user set another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from jdmbayes.processes import HUGE_PAGES_SWITCH, nanny_environment, worker_environment
from tests.conftest import ROOT

DASK_DEFAULT = {"MALLOC_TRIM_THRESHOLD_": 65536, "OMP_NUM_THREADS": 1,
                "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}


def test_workers_keep_glibcs_dynamic_thresholds_and_ask_for_no_huge_pages(monkeypatch):
    monkeypatch.delenv(HUGE_PAGES_SWITCH, raising=False)
    environ = worker_environment(DASK_DEFAULT)
    assert environ == {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1,
                       "OPENBLAS_NUM_THREADS": 1, HUGE_PAGES_SWITCH: "0"}


def test_a_users_own_settings_are_kept(monkeypatch):
    monkeypatch.setenv(HUGE_PAGES_SWITCH, "1")
    environ = worker_environment({**DASK_DEFAULT, "MALLOC_TRIM_THRESHOLD_": "1000000"})
    assert environ["MALLOC_TRIM_THRESHOLD_"] == "1000000"
    assert environ[HUGE_PAGES_SWITCH] == "1"


PROBE = textwrap.dedent("""
    import json, os
    import numpy as np
    from jdmbayes.processes import configure_own_process
    configure_own_process()
    # NumPy's switch returns the setting it replaces: the one configure_own_process left
    print(json.dumps({"variable": os.environ.get("NUMPY_MADVISE_HUGEPAGE"),
                      "huge_pages": np._core.multiarray._set_madvise_hugepage(True)}))
""")


def probe(variable: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != HUGE_PAGES_SWITCH}
    if variable is not None:
        env[HUGE_PAGES_SWITCH] = variable
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_command_lines_process_and_its_children_ask_for_no_huge_pages():
    assert probe(None) == {"variable": "0", "huge_pages": False}


def test_the_command_line_keeps_a_users_choice_of_huge_pages():
    assert probe("1") == {"variable": "1", "huge_pages": True}


def test_usable_cores_is_the_affinity_and_the_chains_take_up_to_one_each(monkeypatch):
    from jdmbayes import processes
    from jdmbayes.inference import sampling

    if hasattr(os, "sched_getaffinity"):
        assert processes.usable_cores() == len(os.sched_getaffinity(0))
    # one thread per chain up to the cores: not the 2 that were hard-coded before
    for cores, chains, expected in ((8, 4, 4), (3, 4, 3), (1, 4, 1), (16, 6, 6)):
        monkeypatch.setattr(sampling, "usable_cores", lambda cores=cores: cores)
        assert sampling.sampler_cores(chains) == expected


SERVER = textwrap.dedent("""
    import json, os
    from jdmbayes.processes import worker_fork_server
    before = dict(os.environ)
    first = worker_fork_server({"JDMBAYES_SERVER_PROBE": "1"}, ("json",))
    unchanged = dict(os.environ) == before
    again = worker_fork_server({"JDMBAYES_SERVER_PROBE": "1"}, ("json",))
    other = worker_fork_server({"JDMBAYES_SERVER_PROBE": "2"}, ("json",))
    print(json.dumps([first, unchanged, again, other]))
""")


def test_the_fork_server_leaves_this_process_environment_and_serves_only_its_own():
    """Starting the workers' fork server sets their variables for that moment only; a later
    cluster may fork from it only with the same environment."""
    env = {k: v for k, v in os.environ.items() if k != "JDMBAYES_SERVER_PROBE"}
    out = subprocess.run([sys.executable, "-c", SERVER], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True, timeout=120)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [True, True, True, False]


def test_the_fork_servers_environment_is_read_as_dasks_nanny_reads_it(monkeypatch):
    """A forked worker has the server's environment, a spawned one the nanny's: the server
    must be started with what the nanny would set. The nanny takes a variable already
    exported over its config's value and leaves out one set to None (Dask's own reading,
    ``distributed.nanny._get_env_variables``, is the yardstick), then fixes the hash seed."""
    import dask
    from distributed.nanny import _get_env_variables

    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    config = {**DASK_DEFAULT, "JDMBAYES_UNSET_PROBE": None}
    environ = nanny_environment(config)
    assert environ == {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "4",
                       "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                       "PYTHONHASHSEED": "6640"}
    with dask.config.set({"distributed.nanny.pre-spawn-environ": config}):
        assert _get_env_variables("distributed.nanny.pre-spawn-environ") == \
            {k: v for k, v in environ.items() if k != "PYTHONHASHSEED"}
    # a seed of the user's is kept, 0 (hashing randomised) is not
    assert nanny_environment({"PYTHONHASHSEED": 7})["PYTHONHASHSEED"] == "7"
    assert nanny_environment({"PYTHONHASHSEED": 0})["PYTHONHASHSEED"] == "6640"
