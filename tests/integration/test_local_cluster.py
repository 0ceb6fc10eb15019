"""The workers of jdmbayes' local Dask cluster start with the environment of
:mod:`jdmbayes.processes` and without Dask's statistical profiler (no sampling here)."""

from __future__ import annotations

import os

import dask

from jdmbayes.batch.fits import close_client, open_client


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
