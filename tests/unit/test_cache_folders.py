"""Compiled code is cached in the user's cache folder (issue 13.2): PyTensor's compile folder,
the source it generates for numba and numba's own cache all sit under ``JDMBAYES_CACHE_DIR``
when it is set, nothing is left in the system's temporary folder, and a folder the user
chose is left alone. Each case runs in a fresh process, as :mod:`jdmbayes` configures
the folders before PyTensor and numba are imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from tests.conftest import ROOT

PROBE = textwrap.dedent("""
    import json
    import jdmbayes
    import numba, pytensor
    from jdmbayes.estimands import marginal_kernel
    from jdmbayes.planning import laplace_kernel
    print(json.dumps({"numba": numba.config.CACHE_DIR, "opt": int(numba.config.OPT),
                      "pytensor": str(pytensor.config.base_compiledir),
                      "generated_src": str(pytensor.config.generated_src_dir),
                      "kernel_cache": laplace_kernel.digamma._cache._cache_path,
                      "loo_kernel_cache":
                          marginal_kernel.beta_binomial_marginal._cache._cache_path}))
""")


def probe(env_changes: dict, program: str = PROBE) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("NUMBA_CACHE_DIR", "PYTENSOR_FLAGS", "JDMBAYES_CACHE_DIR",
                          "NUMBA_OPT")}
    env.update(env_changes)
    out = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_numba_and_pytensor_caches_live_in_the_users_cache_folder(tmp_path):
    found = probe({"JDMBAYES_CACHE_DIR": str(tmp_path)})
    assert found["numba"].startswith(str(tmp_path / "numba"))
    assert found["pytensor"] == str(tmp_path / "pytensor")
    assert found["generated_src"] == str(tmp_path / "pytensor" / "generated_src")
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


def test_pytensor_folders_the_user_chose_are_kept_and_the_other_is_still_set(tmp_path):
    chosen = tmp_path / "mine"
    found = probe({"JDMBAYES_CACHE_DIR": str(tmp_path / "ours"),
                   "PYTENSOR_FLAGS": f"base_compiledir={chosen}"})
    assert found["pytensor"] == str(chosen)
    assert found["generated_src"] == str(tmp_path / "ours" / "pytensor" / "generated_src")
    found = probe({"JDMBAYES_CACHE_DIR": str(tmp_path / "ours"),
                   "PYTENSOR_FLAGS": f"generated_src_dir={chosen / 'compiledir'}"})
    assert found["pytensor"] == str(tmp_path / "ours" / "pytensor")
    assert found["generated_src"] == str(chosen / "compiledir")


COMPILE = textwrap.dedent("""
    import json
    import jdmbayes
    import pytensor, pytensor.tensor as pt
    x = pt.dvector("x")
    f = pytensor.function([x], pt.exp(x).sum() + pt.log1p(x).sum(), mode="NUMBA")
    print(json.dumps({"value": float(f([0.5, 1.5]))}))
""")


def test_numba_compiles_leave_nothing_in_the_temporary_folder(tmp_path):
    """PyTensor writes the source of every numba function it compiles to a file; without a
    folder for them, a new file in the temporary folder per function and run, never
    removed. With jdmbayes imported they are in the cache folder, named by content, so a
    second run in a new process adds none."""
    temporary, cache = tmp_path / "tmp", tmp_path / "cache"
    temporary.mkdir()
    env = {"JDMBAYES_CACHE_DIR": str(cache), "TMPDIR": str(temporary)}
    found = probe(env, COMPILE)
    assert abs(found["value"] - (np.exp(0.5) + np.exp(1.5) + np.log1p(0.5) + np.log1p(1.5))) \
        < 1e-12
    assert list(temporary.iterdir()) == []
    sources = sorted((cache / "pytensor" / "generated_src").iterdir())
    assert sources and all(path.suffix == ".py" for path in sources)
    probe(env, COMPILE)
    assert list(temporary.iterdir()) == []
    assert sorted((cache / "pytensor" / "generated_src").iterdir()) == sources


def test_a_numba_optimisation_level_the_user_chose_is_kept(tmp_path):
    assert probe({"JDMBAYES_CACHE_DIR": str(tmp_path), "NUMBA_OPT": "2"})["opt"] == 2


def test_the_numba_cache_folder_is_keyed_on_every_source_with_numba_code(tmp_path, monkeypatch):
    """numba keys a cached function on its own file only: a kernel that calls digamma from
    models/lgamma.py would stay stale after an edit there. The folder's name is the digest
    of every source file with numba code, so an edit of any of them gives a new folder."""
    from jdmbayes import cachedir

    package = Path(cachedir.__file__).parent
    with_numba = sorted(str(path.relative_to(package)) for path in package.rglob("*.py")
                        if "numba.njit" in path.read_text() or "@intrinsic" in path.read_text())
    assert with_numba and set(with_numba) <= set(cachedir.NUMBA_SOURCES)
    found = probe({"JDMBAYES_CACHE_DIR": str(tmp_path)})
    assert found["numba"] == str(tmp_path / "numba" / cachedir.numba_source_digest())
    # an edit of the called file alone changes the digest
    copy = tmp_path / "package"
    for name in cachedir.NUMBA_SOURCES:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_bytes((package / name).read_bytes())
    monkeypatch.setattr(cachedir, "__file__", str(copy / "cachedir.py"))
    same = cachedir.numba_source_digest()
    (copy / "models" / "lgamma.py").write_text((copy / "models" / "lgamma.py").read_text()
                                                + "\n# edited\n")
    assert same == found["numba"].rsplit("/", 1)[1]
    assert cachedir.numba_source_digest() != same


def test_the_compiled_graphs_key_their_log_gamma_on_its_source():
    """PyTensor caches compiled graphs on each operation's key: the reentrant log-gamma's
    and the inline digamma's carry their module's digest."""
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    from pytensor.scalar.basic import float64

    from jdmbayes.models import lgamma

    x = float64("x")
    for op in (lgamma.gammaln.scalar_op, lgamma._inline_psi):
        node = op.make_node(x)
        _, key = numba_funcify_and_cache_key(op, node=node)
        assert key == lgamma.scalar_op_cache_key(op, cache_version=1,
                                                 source=lgamma.SOURCE_DIGEST)
        assert key != lgamma.scalar_op_cache_key(op, cache_version=1)
