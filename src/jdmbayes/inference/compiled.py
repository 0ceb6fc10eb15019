"""nutpie-compiled PyMC models whose machine code is cached on disk, so that a second run in a
new process does not compile again.

nutpie compiles a PyMC model in two layers: PyTensor turns the log density and its gradient
into a numba function (which PyTensor caches on disk when nothing in the graph stops it: our
data are ``pm.Data``, not constants), and nutpie wraps it in a C-callable numba ``cfunc``
that reads the data through pointers. nutpie's wrapper is built from closures over the data
layout and cannot be cached, and compiling it links the whole graph again: most of the
10-25 s per model. This module builds the same two ``cfunc``s from generated source that
refers only to the graph's numba function and to numbers, and caches them with PyTensor's
cache locator under a key that hashes

* the graph function's own PyTensor cache key (every op, every constant, the dtypes),
* the data layout (which shared variable sits where, with its dtype and rank),
* the dimensions, this module's name and ``CACHE_VERSION``, and the jdmbayes, nutpie, numba
  and PyTensor versions,

so that a changed model, likelihood, prior family or data layout can never load another
model's machine code (``tests/integration/test_compile_cache.py`` shows it). New values of
the data (``compiled.with_data``) go through the pointers and need no compile at all.

The graphs are compiled without numba's fast-math flags: with them, the machine code (and so
the last bits of every gradient, which a sampler amplifies) depended on whether the graph was
compiled fresh or loaded from the cache, and the same seed gave other draws on a warm cache.

The cache lives where PyTensor keeps its numba cache (``<base_compiledir>/numba``), which
:func:`jdmbayes.cachedir.configure` puts in the user's cache folder.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from uuid import uuid4

import numpy as np

CACHE_VERSION = 3


def _layout(shared_vars, order: dict, shared_data: dict, keys: dict) -> list[tuple]:
    """(position among all shared variables, rank, dtype name) of each argument."""
    return [(order[var], shared_data[keys[var]].ndim, shared_data[keys[var]].dtype.name)
            for var in shared_vars]


def _extraction_lines(layout, ranks: list[int]) -> list[str]:
    """Source lines that rebuild each argument array ``a<i>`` from ``u``, nutpie's user data
    read as unsigned 64-bit integers: every variable's data pointer, then every size, then
    every shape (one entry per dimension), in the order of ``ranks``."""
    n = len(ranks)
    shape_start = (2 * n + np.concatenate([[0], np.cumsum(ranks)])).astype(int).tolist()
    lines = []
    for i, (position, rank, dtype) in enumerate(layout):
        dims = [f"int(u[{shape_start[position] + d}])" for d in range(rank)]
        shape = "()" if rank == 0 else "(" + ", ".join(dims) + ",)"
        lines.append(f"        a{i} = numba.carray(as_pointer(u[{position}]), {shape}, "
                     f"np.{dtype})")
    return lines


def _cache_key(kind: str, inner, layout, dims: tuple[int, ...]) -> str:
    """'' when the graph function is not cacheable itself (then neither is the wrapper)."""
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    inner_key = CACHED_SRC_FUNCTIONS.get(inner.py_func)
    if inner_key is None:
        return ""
    versions = [metadata.version(p) for p in ("jdmbayes", "nutpie", "numba", "pytensor")]
    # numba pickles the wrapper's globals by module name: a wrapper cached by a module that
    # has since moved or been renamed must not be loaded, so the name is part of the key
    text = repr((CACHE_VERSION, __name__, kind, inner_key, layout, dims, versions))
    return hashlib.sha256(text.encode()).hexdigest()


def _wrapper(kind: str, inner, layout, ranks: list[int], n_dim: int, n_out: int):
    """The ``cfunc`` nutpie calls: ``logp`` (value and gradient) or ``expand`` (every
    variable on its own scale, for the draws); returns it and whether it is cached."""
    import numba
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import compile_numba_function_src

    length = 2 * len(ranks) + sum(ranks)
    arguments = ", ".join(["x", *(f"a{i}" for i in range(len(layout)))])
    pointer = numba.types.CPointer(numba.types.double)
    if kind == "logp":
        signature = numba.types.int64(numba.types.uint64, pointer, pointer, pointer,
                                      numba.types.voidptr)
        head = ["def wrapper(dim, x_, out_, logp_, user_data_):",
                f"    if dim != {n_dim}:", "        return -1", "    try:",
                f"        out = numba.carray(out_, ({n_dim},))",
                "        logp = numba.carray(logp_, ())"]
        tail = [f"        value, grad = inner({arguments})", "        logp[()] = value",
                "        out[...] = grad", "        if not np.all(np.isfinite(out)):",
                "            return 3", "        if not np.isfinite(value):",
                "            return 4", "    except Exception:", "        return 1",
                "    return 0"]
    else:
        signature = numba.types.int64(numba.types.uint64, numba.types.uint64, pointer,
                                      pointer, numba.types.voidptr)
        head = ["def wrapper(dim, expanded, x_, out_, user_data_):",
                f"    if dim != {n_dim} or expanded != {n_out}:", "        return -1",
                "    try:", f"        out = numba.carray(out_, ({n_out},))"]
        tail = [f"        (values,) = inner({arguments})", "        out[...] = values",
                "    except Exception:", "        return -2", "    return 0"]
    source = "\n".join([*head, f"        x = numba.carray(x_, ({n_dim},))",
                        f"        u = numba.carray(user_data_, ({length},), np.uint64)",
                        *_extraction_lines(layout, ranks), *tail]) + "\n"
    key = _cache_key(kind, inner, layout, (n_dim, n_out, *ranks))
    env = {"__name__": __name__, "numba": numba, "np": np, "inner": inner,
           "as_pointer": address_as_void_pointer}
    function = compile_numba_function_src(source, "wrapper", env, cache_key=key or None)
    return numba.cfunc(signature, cache=bool(key))(function), bool(key)


def compile_cached(model, var_names: list[str]):
    """``nutpie.compile_pymc_model(model, var_names=var_names)`` with disk-cached wrappers.

    Returns the nutpie ``CompiledPyMCModel`` and whether both wrappers are cacheable.
    """
    import pytensor
    from nutpie import compile_pymc as cp
    from pymc.initial_point import make_initial_point_fn

    initial_point_fn = cp._wrap_with_lock(make_initial_point_fn(
        model=model, default_strategy="support_point", jitter_rvs=set(model.free_RVs),
        return_transformed=True))
    with pytensor.config.change_flags(numba__fastmath=False):
        (n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point, shape_info,
         reparameterized_names) = cp._make_functions(
            model, mode="NUMBA", compute_grad=True, join_expanded=True,
            pymc_initial_point_fn=initial_point_fn, var_names=var_names)
    shared_vars = list(dict.fromkeys([*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]))
    keys = {var: uuid4().hex for var in shared_vars}
    order = {var: i for i, var in enumerate(shared_vars)}
    shared_data = {}
    for var in shared_vars:
        value = np.array(var.get_value(), order="C", copy=True)
        value.flags.writeable = False
        shared_data[keys[var]] = value
    user_data = cp.make_user_data(keys, shared_data)
    ranks = [shared_data[keys[var]].ndim for var in shared_vars]
    logp_layout = _layout(logp_fn_pt.get_shared(), order, shared_data, keys)
    expand_layout = _layout(expand_fn_pt.get_shared(), order, shared_data, keys)
    logp_c, logp_cached = _wrapper("logp", logp_fn_pt.vm.jit_fn, logp_layout, ranks,
                                   n_dim, 0)
    expand_c, expand_cached = _wrapper("expand", expand_fn_pt.vm.jit_fn, expand_layout,
                                       ranks, n_dim, n_expanded)
    dims, coords = cp._prepare_dims_and_coords(model, shape_info, reparameterized_names)
    compiled = cp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c,
        initial_point_func=initial_point, shared_data=shared_data, shared_var_keys=keys,
        user_data=user_data, n_expanded=n_expanded, shape_info=shape_info,
        logp_func=logp_fn_pt, expand_func=expand_fn_pt,
        reparameterized_names=reparameterized_names)
    return compiled, logp_cached and expand_cached
