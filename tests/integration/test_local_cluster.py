"""The workers of jdmbayes' local Dask cluster start with the environment of
:mod:`jdmbayes.processes`, forked from a server that imported jdmbayes where the environment
allows, and without Dask's statistical profiler (no sampling here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import dask

from jdmbayes.batch.fits import close_client, open_client
from tests.conftest import ROOT


def test_local_workers_have_jdmbayes_memory_settings_and_no_profiler(monkeypatch):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    client = open_client(None, 1)
    try:
        seen = client.run(lambda: (os.environ.get("MALLOC_TRIM_THRESHOLD_"),
                                   os.environ.get("NUMPY_MADVISE_HUGEPAGE"),
                                   dask.config.get("distributed.worker.profile.enabled")))
    finally:
        close_client(client)
    assert list(seen.values()) == [(None, "0", False)]
    # the settings were for the cluster only: this process's Dask configuration is as it was
    assert dask.config.get("distributed.worker.profile.enabled") is True


FORKED = textwrap.dedent("""
    import json, os, sys
    from multiprocessing import forkserver
    from jdmbayes.batch.fits import close_client, open_client

    def workers(client):
        return sorted(client.run(lambda: (os.getppid(), "pymc" in sys.modules,
                                          os.environ.get("JDMBAYES_PROBE"),
                                          os.environ.get("NUMPY_MADVISE_HUGEPAGE"),
                                          hash("jdmbayes"))).values())

    seen = {}
    for name, probe in (("first", None), ("again", None), ("changed", "1")):
        if probe is not None:
            os.environ["JDMBAYES_PROBE"] = probe
        client = open_client(None, 2)
        try:
            seen[name] = workers(client)
        finally:
            close_client(client)
    print(json.dumps({"main": os.getpid(), "server": forkserver._forkserver._forkserver_pid,
                      **seen}))
""")


def test_local_workers_are_forked_from_a_server_with_jdmbayes_imported_in_their_environment():
    """Workers are forks of one server that imported jdmbayes (and PyMC) in the workers'
    environment; a cluster asked for after the environment changed is spawned as before,
    from this process, and sees the change."""
    # as a user's shell starts it (an in-process cluster of another test may have set
    # Dask's variables in this process)
    env = {k: v for k, v in os.environ.items()
           if k not in ("JDMBAYES_PROBE", "NUMPY_MADVISE_HUGEPAGE", "PYTHONHASHSEED")}
    out = subprocess.run([sys.executable, "-c", FORKED], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True, timeout=300)
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    server, main = seen["server"], seen["main"]
    assert server not in (None, main)
    # every worker, forked or spawned, hashes with Dask's seed for its workers (6640)
    hashes = {row.pop() for name in ("first", "again", "changed") for row in seen[name]}
    assert len(hashes) == 1
    assert seen["first"] == seen["again"] == [[server, True, None, "0"]] * 2
    # spawned: their parent is this process, and PyMC is not imported until a fit needs it
    assert seen["changed"] == [[main, False, "1", "0"]] * 2
