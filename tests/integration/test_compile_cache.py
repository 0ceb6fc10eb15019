"""The on-disk cache of compiled models: a new process loads the machine code instead of
compiling, a changed model never loads another model's code, and cached and fresh code give
the same log density and gradient as PyMC's own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

# run in a fresh process: prints, per model, whether both wrappers came from the disk cache
# and the log density and gradient at a fixed point from the wrapper and from PyMC
PROBE = textwrap.dedent("""
    import ctypes, json, sys
    import numpy as np
    import jdmbayes
    from dataclasses import replace
    from jdmbayes.inference.compiled import compile_cached
    from jdmbayes.models.milestones import build_milestone_model
    from jdmbayes.kinds.fit import index_model
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    series = jdmbayes.load_series()
    spec = load_model_spec("gc_discontinuation")
    out = {}
    for family in sys.argv[1].split(","):
        changed = replace(spec, family=family)
        model = build_milestone_model(index_model(series, changed), changed,
                                      load_prior_set("default", changed))
        compiled, cacheable = compile_cached(model, [v.name for v in model.free_RVs])
        hits = compiled.compiled_logp_func.cache_hits
        expand_hits = compiled.compiled_expand_func.cache_hits
        point = np.linspace(-0.5, 0.5, compiled.n_dim)
        grad, logp = np.zeros(compiled.n_dim), np.zeros(())
        ptr = ctypes.POINTER(ctypes.c_double)
        code = compiled.compiled_logp_func.ctypes(
            compiled.n_dim, point.ctypes.data_as(ptr), grad.ctypes.data_as(ptr),
            logp.ctypes.data_as(ptr), ctypes.c_void_p(compiled.user_data.ctypes.data))
        # PyMC's own log density (C backend) at the same point on the unconstrained scale
        names = [v.name for v in model.value_vars]
        shapes = [tuple(model.initial_point()[n].shape) for n in names]
        values, at = {}, 0
        for name, shape in zip(names, shapes):
            size = int(np.prod(shape))
            values[name] = point[at:at + size].reshape(shape)
            at += size
        reference = float(model.compile_logp()(values))
        reference_grad = np.concatenate([np.ravel(g) for g in model.compile_dlogp()(values)])
        out[family] = {"code": int(code), "cacheable": bool(cacheable), "hits": int(hits),
                       "expand_hits": int(expand_hits),
                       "logp": float(logp), "reference": reference,
                       "grad_error": float(np.max(np.abs(grad - reference_grad)))}
    print(json.dumps(out))
""")


def probe(cache, families: str) -> dict:
    env = dict(os.environ, JDMBAYES_CACHE_DIR=str(cache))
    env.pop("PYTENSOR_FLAGS", None)
    done = subprocess.run([sys.executable, "-c", PROBE, families], env=env, text=True,
                          capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_second_process_loads_from_cache_and_a_changed_model_does_not(tmp_path):
    cache = tmp_path / "cache"
    first = probe(cache, "weibull")
    assert first["weibull"]["cacheable"] and first["weibull"]["hits"] == 0
    assert first["weibull"]["expand_hits"] == 0
    assert (cache / "pytensor" / "numba").is_dir()        # the user's cache folder
    second = probe(cache, "weibull,lognormal")
    # the same model: both wrappers loaded from disk, not compiled
    assert second["weibull"]["hits"] == 1 and second["weibull"]["expand_hits"] == 1
    # another likelihood (same data, same layout): its log density is compiled afresh, never
    # the cached code; the map from sampler to parameter scale is the same graph as the
    # Weibull model's, so that one is legitimately shared
    assert second["lognormal"]["hits"] == 0 and second["lognormal"]["expand_hits"] == 1
    for run in (first, second):
        for family, r in run.items():
            assert r["code"] == 0, family
            assert r["logp"] == pytest.approx(r["reference"], rel=1e-9, abs=1e-9), family
            assert r["grad_error"] < 1e-8, family
    assert second["weibull"]["logp"] == first["weibull"]["logp"]       # bit for bit
    assert abs(second["weibull"]["logp"] - second["lognormal"]["logp"]) > 1e-3


def fit_summary(cache, out, **env_changes) -> bytes:
    """``summary.csv`` of a short fit of the log-normal measure and a milestone model with a
    frailty, in a new process whose compile caches live in ``cache``."""
    env = dict(os.environ, JDMBAYES_CACHE_DIR=str(cache), **env_changes)
    env.pop("PYTENSOR_FLAGS", None)
    if "NUMBA_OPT" not in env_changes:
        env.pop("NUMBA_OPT", None)
    done = subprocess.run([sys.executable, "scripts/fit.py", "--model", "ldh", "--model",
                           "rash_milestones", "--chains", "2", "--draws", "150", "--tune", "150",
                           "--seed", "4", "--allow-failed-diagnostics", "--out", str(out)],
                          env=env, text=True, capture_output=True, timeout=900,
                          cwd=ROOT)
    assert done.returncode in (0, 3), done.stderr[-3000:]
    return (out / "summary.csv").read_bytes()


def test_same_seed_same_numbers_with_cold_and_warm_caches(tmp_path):
    """Issue 18: the first run on a machine (empty PyTensor, numba and jdmbayes caches) and a
    later one (every cache left behind) give byte-identical summaries. The cause of the old
    difference was numba's fast-math flags: the machine code of a freshly compiled graph and
    of the cached one differed in the last bits of the gradient, which NUTS amplifies;
    :mod:`jdmbayes.inference.compiled` compiles without them."""
    cache = tmp_path / "cache"
    cold = fit_summary(cache, tmp_path / "cold")
    assert (cache / "pytensor").is_dir()
    warm = fit_summary(cache, tmp_path / "warm")
    assert cold == warm
    # compiled at numba's own default level (3), not jdmbayes' (1): the same numbers; and
    # a cache filled at 3 (an older jdmbayes) is loaded at 1 with the same numbers too
    at_three = tmp_path / "cache3"
    assert fit_summary(at_three, tmp_path / "opt3", NUMBA_OPT="3") == cold
    assert fit_summary(at_three, tmp_path / "opt3_then_1") == cold
