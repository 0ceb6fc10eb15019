"""Compiled code is cached in the user's cache folder (issue 13.2): PyTensor's compile folder
and numba's own cache both sit under ``JDMBAYES_CACHE_DIR`` when it is set, and a folder the
user chose is left alone. Each case runs in a fresh process, as :mod:`jdmbayes` configures
the folders before PyTensor and numba are imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

PROBE = textwrap.dedent("""
    import json
    import jdmbayes
    import numba, pytensor
    from jdmbayes.estimands import marginal_kernel
    from jdmbayes.planning import laplace_kernel
    print(json.dumps({"numba": numba.config.CACHE_DIR, "opt": int(numba.config.OPT),
                      "pytensor": str(pytensor.config.base_compiledir),
                      "kernel_cache": laplace_kernel.digamma._cache._cache_path,
                      "loo_kernel_cache":
                          marginal_kernel.beta_binomial_marginal._cache._cache_path}))
""")


def probe(env_changes: dict) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("NUMBA_CACHE_DIR", "PYTENSOR_FLAGS", "JDMBAYES_CACHE_DIR",
                          "NUMBA_OPT")}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_numba_and_pytensor_caches_live_in_the_users_cache_folder(tmp_path):
    found = probe({"JDMBAYES_CACHE_DIR": str(tmp_path)})
    assert found["numba"] == str(tmp_path / "numba")
    assert found["pytensor"] == str(tmp_path / "pytensor")
    # numba's planning kernels and the marginal LOO's are cached there, not beside the
    # source in __pycache__
    assert found["kernel_cache"].startswith(str(tmp_path / "numba"))
    assert found["loo_kernel_cache"].startswith(str(tmp_path / "numba"))
    # and compiled at jdmbayes' optimisation level, not numba's default 3
    assert found["opt"] == 1


def test_a_numba_cache_folder_the_user_chose_is_kept(tmp_path):
    chosen = tmp_path / "mine"
    found = probe({"JDMBAYES_CACHE_DIR": str(tmp_path / "ours"),
                   "NUMBA_CACHE_DIR": str(chosen)})
    assert found["numba"] == str(chosen)
    assert found["kernel_cache"].startswith(str(chosen))


def test_a_numba_optimisation_level_the_user_chose_is_kept(tmp_path):
    assert probe({"JDMBAYES_CACHE_DIR": str(tmp_path), "NUMBA_OPT": "2"})["opt"] == 2
