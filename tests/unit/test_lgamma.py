"""The log-gamma function threads can share (jdmbayes.models.lgamma): the values of C's
``lgamma`` to the bit, without writing its process-wide ``signgam``, in numba code and in
the sampled models' compiled log densities."""

from __future__ import annotations

import ctypes
import ctypes.util
import math

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special

from jdmbayes.models.lgamma import gammaln, lgamma_r

# Gamma(-0.5) < 0, so C's lgamma sets signgam to -1 there
NEGATIVE_GAMMA = -0.5


@numba.njit
def _reentrant(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = lgamma_r(x[i])
    return out


@numba.njit
def _plain(x):
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = math.lgamma(x[i])
    return out


def _signgam() -> ctypes.c_int:
    return ctypes.c_int.in_dll(ctypes.CDLL(ctypes.util.find_library("m")), "signgam")


def _values() -> np.ndarray:
    rng = np.random.default_rng(20211028)
    return np.concatenate([rng.uniform(1e-6, 1.0, 2000), rng.uniform(0.5, 60.0, 5000),
                           rng.uniform(60.0, 1e7, 2000), -rng.uniform(0.01, 30.0, 500),
                           [1.0, 2.0, 1.0 + 1e-12, 2.0 - 1e-12, 1e-300, 1e300, 0.0,
                            np.inf, np.nan]])


def test_lgamma_r_gives_the_bits_of_lgamma():
    x = _values()
    np.testing.assert_array_equal(_reentrant(x), _plain(x))
    finite = np.isfinite(x) & (x > 0)
    np.testing.assert_allclose(_reentrant(x[finite]), special.gammaln(x[finite]), rtol=1e-13,
                               atol=1e-13)


def test_lgamma_r_leaves_signgam_alone_where_lgamma_writes_it():
    """The reason for lgamma_r: threads that all write one global variable wait on each
    other. Checked on the global itself, with math.lgamma as the control."""
    signgam = _signgam()
    x = np.array([NEGATIVE_GAMMA])
    signgam.value = 1
    _reentrant(x)
    assert signgam.value == 1
    _plain(x)
    assert signgam.value == -1
    signgam.value = 1


def test_pytensor_gammaln_is_pytensors_on_both_linkers_and_in_its_gradient():
    x = pt.vector("x")
    ours, stock = gammaln(x), pt.gammaln(x)
    values = _values()
    positive = values[np.isfinite(values) & (values > 0)]
    for mode in ("NUMBA", "FAST_COMPILE"):
        f = pytensor.function([x], [ours, stock, pytensor.grad(ours.sum(), x),
                                    pytensor.grad(stock.sum(), x)], mode=mode)
        a, b, grad_a, grad_b = f(values)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(f(positive)[2], f(positive)[3])
        np.testing.assert_array_equal(np.isnan(grad_a), np.isnan(grad_b))


def test_compiled_gammaln_leaves_signgam_alone():
    x = pt.vector("x")
    signgam = _signgam()
    signgam.value = 1
    pytensor.function([x], gammaln(x), mode="NUMBA")(np.array([NEGATIVE_GAMMA]))
    assert signgam.value == 1
    pytensor.function([x], pt.gammaln(x), mode="NUMBA")(np.array([NEGATIVE_GAMMA]))
    assert signgam.value == -1
    signgam.value = 1


@pytest.mark.parametrize("patient_effects", ["non_centred", "integrated"])
def test_the_scores_compiled_log_density_calls_no_plain_lgamma(patient_effects):
    """The graph nutpie compiles for the bundled CMAS model (patient effects sampled, or
    integrated out by quadrature) holds log-gamma functions, and every one is the
    reentrant one."""
    from nutpie import compile_pymc as cp
    from pytensor.scalar.math import GammaLn

    from jdmbayes.models.lgamma import ReentrantGammaLn
    from tests.unit.test_deterministic_draws import built

    model = built("cmas", {"patient_effects": patient_effects})
    logp_fn = cp._make_functions(model, mode="NUMBA", compute_grad=True, join_expanded=True,
                                 pymc_initial_point_fn=None,
                                 var_names=[v.name for v in model.free_RVs])[2]

    def ops(fgraph):
        """Every operation of the graph and of the graphs inside its operations (PyTensor's
        numba backend fuses elementwise ones into composite operations with graphs of
        their own)."""
        for node in fgraph.apply_nodes:
            for op in (node.op, getattr(node.op, "scalar_op", None)):
                if op is None:
                    continue
                yield op
                if getattr(op, "fgraph", None) is not None:
                    yield from ops(op.fgraph)

    kinds = [type(op) for op in ops(logp_fn.maker.fgraph)]
    assert ReentrantGammaLn in kinds
    assert not [k for k in kinds if issubclass(k, GammaLn) and k is not ReentrantGammaLn]
