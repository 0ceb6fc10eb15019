"""Compile once, sample many times: nutpie (default) or PyMC's own NUTS.

Compiled nutpie models are cached per process under a key that names the model structure
(spec, data shapes, prior family signature); a new prior set with the same families or new
data of the same shapes is swapped in with ``compiled.with_data`` and never recompiled.

The chains run on as many threads (nutpie) or processes (PyMC) as there are chains, up to the
cores the process may use (:func:`sampler_cores`). Each chain has its own random stream from
the seed, so the draws are the same whatever the number of cores.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pymc as pm
import xarray as xr

from jdmbayes.estimands.blocks import Background
from jdmbayes.inference.draws import group_dataset, set_group
from jdmbayes.processes import usable_cores

SAMPLERS = ("nutpie", "pymc")
# NUTS' target acceptance unless the settings or the model say otherwise: high, because
# small series put hierarchical spreads in funnels
DEFAULT_TARGET_ACCEPT = 0.99
_COMPILED: dict[str, object] = {}
_MODELS: dict[str, pm.Model] = {}


@dataclass(frozen=True)
class SamplerSettings:
    sampler: str = "nutpie"
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    # NUTS' target acceptance; None: the model's own (``ModelKind.first_target_accept`` for
    # a fit with a retry budget, :mod:`jdmbayes.kinds.fit`), else DEFAULT_TARGET_ACCEPT
    target_accept: float | None = None
    seed: int = 20211028
    # nutpie's mass matrix: "diag" (default) or "low_rank" (diagonal plus low-rank
    # corrections, for posteriors with strong correlations such as many patients whose
    # group effects and cell deviations trade off)
    mass_matrix: str = "diag"
    # seconds of sampling (all attempts, compilation not counted) within which a fit that
    # failed a diagnostic gate climbs the retry ladder (jdmbayes.kinds.fit.RETRY_LADDER);
    # 0: no retry
    retry_budget_s: float = 0.0
    # with this > 0, the budget is at least this many times the first attempt's sampling
    # time (the default budget: a series whose one fit takes a large part of the fixed
    # seconds still gets the steps the advice names; an explicit budget leaves it 0)
    retry_budget_first_multiple: float = 0.0

    @property
    def target_or_default(self) -> float:
        return DEFAULT_TARGET_ACCEPT if self.target_accept is None else self.target_accept

    def as_dict(self) -> dict:
        return asdict(self)


def sampler_cores(chains: int) -> int:
    """Threads (nutpie) or processes (PyMC) the chains run on: one per chain, up to the cores
    this process may use (:func:`jdmbayes.processes.usable_cores`)."""
    return max(1, min(chains, usable_cores()))


@dataclass
class SamplingResult:
    idata: xr.DataTree
    compile_seconds: float
    sample_seconds: float
    reused_compiled: bool
    reused_model: bool = False
    # (parameters judged, diagnostics) of the gates judged on these draws right after
    # sampling (jdmbayes.kinds.common.judge_sampled), which the outputs' diagnostics reuse
    gated: tuple[list[str], dict] | None = None
    # each patient's log-likelihood for LOO, computing on a thread of its own since the
    # draws were sampled (jdmbayes.kinds.common.start_loo_loglik); None: not started
    loo_loglik: Background | None = None

    def timings(self) -> dict:
        return {"compile_s": self.compile_seconds, "sample_s": self.sample_seconds,
                "reused_compiled": self.reused_compiled, "reused_model": self.reused_model}


class SamplingStopped(Exception):
    """Sampling reached its time limit and was stopped; its draws were discarded."""

    def __init__(self, seconds: float, limit: float):
        super().__init__(f"stopped after {seconds:.0f} s of sampling (limit {limit:.0f} s)")
        self.seconds, self.limit = seconds, limit


def clear_caches() -> None:
    """Forget every built and compiled model of this process."""
    _MODELS.clear()
    _COMPILED.clear()


def compiled_count() -> int:
    """How many models this process has compiled (or loaded compiled) and keeps."""
    return len(_COMPILED)


def built_model(key: str, build) -> tuple[pm.Model, bool]:
    """The PyMC model of structure ``key``, built by ``build()`` at most once per process;
    returns the model and whether it was reused."""
    if key in _MODELS:
        return _MODELS[key], True
    _MODELS[key] = build()
    return _MODELS[key], False


def compiled_model(model: pm.Model, key: str):
    """The nutpie-compiled ``model``, compiled at most once per ``key`` in this process and
    its machine code cached on disk across processes (:mod:`jdmbayes.inference.compiled`)."""
    from jdmbayes.inference.compiled import compile_cached

    if key not in _COMPILED:
        # only logp and gradient are compiled to numba; deterministics are computed after
        # sampling, vectorised over the draws and not compiled (:func:`deterministic_draws`)
        _COMPILED[key], _ = compile_cached(model, [v.name for v in model.free_RVs])
        return _COMPILED[key], False
    return _COMPILED[key], True


def sample_posterior(model: pm.Model, settings: SamplerSettings, key: str,
                     data: dict[str, np.ndarray] | None = None, report=None,
                     name: str = "", time_limit: float | None = None,
                     leave_out: tuple[str, ...] = ()) -> SamplingResult:
    """Posterior draws of ``model``; ``data`` replaces ``pm.Data`` values (same shapes).
    ``leave_out``: deterministics nutpie's draws do without (PyMC's sampler computes them
    all).

    ``time_limit`` (nutpie only): seconds of sampling after which the chains are stopped and
    :class:`SamplingStopped` is raised (compilation does not count). The draws of a run that
    finishes within it are those of a run without it: the limit only watches the clock.

    Names in ``data`` that the model does not use (the prior of a parameter this model does
    not have) are ignored. ``report`` (a :mod:`jdmbayes.console` reporter) hears of the
    compilation and of the chains' progress, under the model name ``name``.
    """
    data = {k: v for k, v in (data or {}).items() if k in model.named_vars}
    if report is not None:
        report(model=name, stage="compiling", chains=settings.chains)
    if settings.sampler == "nutpie":
        import nutpie

        from jdmbayes.console import nutpie_callback

        start = time.perf_counter()
        compiled, reused = compiled_model(model, key)
        if data:
            compiled = compiled.with_data(**data)
        compiled_at = time.perf_counter()
        running = nutpie.sample(compiled, draws=settings.draws, tune=settings.tune,
                                chains=settings.chains, seed=settings.seed,
                                cores=sampler_cores(settings.chains),
                                target_accept=settings.target_or_default, progress_bar=False,
                                adaptation=settings.mass_matrix, blocking=time_limit is None,
                                progress_callback=None if report is None
                                else nutpie_callback(report, name))
        idata = running if time_limit is None else _within(running, compiled_at, time_limit)
        sampled_at = time.perf_counter()
        if computed_deterministics(model, leave_out):
            with model:
                if data:
                    pm.set_data(data)
            posterior = group_dataset(idata, "posterior")
            set_group(idata, "posterior",
                      posterior.assign(deterministic_draws(model, key, posterior,
                                                           leave_out).data_vars))
        # building the deterministics' function and computing them is counted as compiling,
        # so the sampling time, which the retry budget counts, is the sampler's alone
        compiling = compiled_at - start + time.perf_counter() - sampled_at
        return SamplingResult(idata, compiling, sampled_at - compiled_at, reused)
    if settings.sampler == "pymc":
        start = time.perf_counter()
        with model:
            if data:
                pm.set_data(data)
            idata = pm.sample(draws=settings.draws, tune=settings.tune, chains=settings.chains,
                              cores=sampler_cores(settings.chains),
                              random_seed=settings.seed,
                              target_accept=settings.target_or_default, progressbar=False,
                              compute_convergence_checks=False)
        return SamplingResult(idata, 0.0, time.perf_counter() - start, False)
    raise ValueError(f"unknown sampler {settings.sampler!r}; valid: {', '.join(SAMPLERS)}")


# PyTensor mode of the deterministics' function, which is vectorised over the draws
# (:func:`deterministic_draws`) and run by PyTensor's Python linker, each node one NumPy call
# over a block of draws. PyMC's ``compute_deterministics`` compiles the graph with
# PyTensor's default backend (numba, machine code cached on disk) and calls it once per
# draw instead: for the five bundled models that took 10.0 s from an empty cache (numba
# compiling) and 0.8 s warm, against 0.8 s either way here (``benchmarks/RESULTS.md``).
# The values agree to rounding (NumPy's and numba's kernels of log-gamma and the like
# differ in the last bits).
DETERMINISTICS_MODE = "FAST_COMPILE"
# values per block of draws in the largest array the function reads or returns (the
# observations' data, a per-patient deterministic): blocks keep the intermediates of a long
# series small whatever the number of draws (2 MB each; 25 times that where an integrated
# model's quadrature nodes multiply the observations)
DETERMINISTIC_BLOCK_VALUES = 250_000
_DETERMINISTICS: dict[tuple[str, tuple[str, ...]], tuple] = {}


def computed_deterministics(model: pm.Model, leave_out: tuple[str, ...] = ()) -> list:
    """The model's deterministics but those named in ``leave_out``."""
    return [d for d in model.deterministics if d.name not in leave_out]


def _deterministics_function(model: pm.Model, key: str, leave_out: tuple[str, ...] = ()):
    """The model's deterministics (but ``leave_out``) as a function of a block of draws of
    its free variables (each with a leading draw axis), compiled once per ``key`` and
    ``leave_out`` in this process; the data are the model's shared variables, read when it
    is called."""
    wanted = computed_deterministics(model, leave_out)
    if (key, leave_out) not in _DETERMINISTICS:
        import pytensor.tensor as pt
        from pymc.pytensorf import compile as compile_pymc
        from pytensor.graph.replace import vectorize_graph

        free = list(model.free_RVs)
        blocks = [pt.tensor(dtype=rv.dtype, shape=(None, *rv.type.shape), name=rv.name)
                  for rv in free]
        outputs = vectorize_graph(wanted, replace=dict(zip(free, blocks)))
        # a deterministic of the data alone has no draw axis: the same value at every draw
        outputs = [out if out.type.ndim > d.type.ndim
                   else pt.broadcast_to(out[None], (blocks[0].shape[0], *out.shape))
                   for out, d in zip(outputs, wanted)]
        # PyMC's compile: its rewrites (parameter checks removed) on the Python linker
        function = compile_pymc(blocks, outputs, mode=DETERMINISTICS_MODE,
                                on_unused_input="ignore")
        shared = [v for v in function.maker.fgraph.inputs if hasattr(v, "get_value")]
        _DETERMINISTICS[key, leave_out] = (function, shared)
    return _DETERMINISTICS[key, leave_out]


def deterministic_draws(model: pm.Model, key: str, posterior: xr.Dataset,
                        leave_out: tuple[str, ...] = ()) -> xr.Dataset:
    """The model's deterministics (but those named in ``leave_out``) at every draw of
    ``posterior`` (chain, draw, ...), as PyMC's ``compute_deterministics`` gives them (same
    names, dims and coordinates), computed a block of draws at a time
    (:data:`DETERMINISTIC_BLOCK_VALUES`; the blocks follow from the shapes of all the
    deterministics alone, so a rerun, or one that leaves some out, computes the same blocks
    and gives the same values).

    A draw's values are those of a block of one draw, to the bit, except the Newton modes
    of an integrated frailty (:data:`DATA_CONDITIONAL`; a line search picks the best of
    several step lengths, so a difference in the last bits of a sum can pick another):
    with a block of one draw they moved by up to 5e-7 (relative), and the patients'
    log-likelihoods by up to 1e-12, in 3% of the values, on prior draws of the bundled
    ``rash_milestones`` with its frailty integrated out
    (``tests/unit/test_deterministic_draws.py``)."""
    from pymc.backends.arviz import coords_and_dims_for_inferencedata, dict_to_dataset

    function, shared = _deterministics_function(model, key, leave_out)
    wanted = computed_deterministics(model, leave_out)
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    total = chains * draws
    inputs = [np.ascontiguousarray(posterior[rv.name].values).reshape(
        total, *posterior[rv.name].shape[2:]) for rv in model.free_RVs]
    widest = max([int(np.prod(x.shape[1:])) for x in inputs]
                 + [int(np.size(v.get_value(borrow=True))) for v in shared]
                 + [int(np.prod(d.type.shape)) if None not in d.type.shape else 1
                    for d in model.deterministics])    # all: the blocks of a full run
    size = max(1, DETERMINISTIC_BLOCK_VALUES // max(widest, 1))
    filled = None     # each deterministic's draws, filled block by block
    for start in range(0, total, size):
        block = [np.asarray(b) for b in function(*(x[start:start + size] for x in inputs))]
        if filled is None:
            filled = [np.empty((total, *b.shape[1:]), b.dtype) for b in block]
        for whole, part in zip(filled, block):
            whole[start:start + size] = part
    values = {d.name: whole.reshape(chains, draws, *whole.shape[1:])
              for d, whole in zip(wanted, filled)}
    coords, dims = coords_and_dims_for_inferencedata(model)
    return dict_to_dataset(values, inference_library=pm, dims=dims,
                           coords={**coords, "chain": posterior["chain"].values,
                                   "draw": posterior["draw"].values},
                           sample_dims=["chain", "draw"], skip_event_dims=True)


def _within(running, started: float, limit: float) -> xr.DataTree:
    """The draws of nutpie's background sampler ``running`` if it finishes within ``limit``
    seconds of ``started``; else it is cancelled and :class:`SamplingStopped` raised."""
    try:
        return running.wait(timeout=max(limit - (time.perf_counter() - started), 1e-3))
    except TimeoutError:   # nutpie's wait: the chains were still running at the timeout
        running.cancel()
        raise SamplingStopped(time.perf_counter() - started, limit) from None


# deterministics that describe the patient effects given the observed data (where an
# integrated model's quadrature put its nodes): meaningless, and costly, in prior draws
DATA_CONDITIONAL = ("frailty_mode", "frailty_sd", "effect_mode", "effect_chol")


# PyTensor mode of the prior draws' function: run by PyTensor's Python linker (each node a
# NumPy call), not compiled. It is called once per fit and is random-number generation and
# a few elementwise transforms over all draws at once, so interpreting it takes about 0.1 s
# per bundled model, where numba (PyTensor's default) takes 1-3 s to compile it on a
# machine's first run and 0.1-0.2 s to load it from the disk cache on every later one. The
# draws are NumPy's in both; the transforms agree to rounding (within 2e-13 on the bundled
# priors, whose largest values are in the hundreds).
PRIOR_DRAWS_MODE = "FAST_COMPILE"


def sample_prior(model: pm.Model, draws: int, seed: int) -> xr.DataTree:
    """Prior draws of the model's parameters (the likelihood potential is not involved),
    computed without compiling (:data:`PRIOR_DRAWS_MODE`)."""
    names = [v.name for v in model.free_RVs] + [
        v.name for v in model.deterministics
        if not v.name.startswith("loglik") and v.name not in DATA_CONDITIONAL]
    with model, warnings.catch_warnings():
        # the likelihood is a Potential; leaving it out is the point of prior draws
        warnings.filterwarnings("ignore", message="The effect of Potentials")
        return pm.sample_prior_predictive(draws=draws, random_seed=seed, var_names=names,
                                          compile_kwargs={"mode": PRIOR_DRAWS_MODE})
