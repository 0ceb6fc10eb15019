"""The log-gamma function threads can share (jdmbayes.models.lgamma): the values of C's
``lgamma`` to the bit, without writing its process-wide ``signgam``, in numba code and in
the sampled models' compiled log densities; and its derivative, the digamma function
written out, against SciPy's and in those log densities' gradients."""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from fractions import Fraction

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import special

from jdmbayes.models.lgamma import digamma, gammaln, lgamma_r

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
    """The same values to the bit; the gradient is SciPy's digamma on the Python linker
    and the inline one (``digamma``) on numba's, within 3e-14 of it."""
    x = pt.vector("x")
    ours, stock = gammaln(x), pt.gammaln(x)
    values = _values()
    positive = values[np.isfinite(values) & (values > 0)]
    for mode in ("NUMBA", "FAST_COMPILE"):
        f = pytensor.function([x], [ours, stock, pytensor.grad(ours.sum(), x),
                                    pytensor.grad(stock.sum(), x)], mode=mode)
        a, b, grad_a, grad_b = f(values)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(np.isnan(grad_a), np.isnan(grad_b))
        _, _, grad_a, grad_b = f(positive)
        if mode == "FAST_COMPILE":
            np.testing.assert_array_equal(grad_a, grad_b)
        else:
            assert not np.array_equal(grad_a, grad_b)     # numba's is the inline digamma
            np.testing.assert_allclose(grad_a, grad_b, rtol=3e-14, atol=3e-14)


@numba.vectorize(["float64(float64)"])
def _digammas(x):
    return digamma(x)


def test_inline_digamma_is_scipys():
    """Relative error (absolute where |psi| < 1) on 10^-300..10^300 and around psi's root;
    negative arguments away from the poles against SciPy, and next to them against the
    reflection formula with the distance to the pole exact (SciPy loses digits there)."""
    rng = np.random.default_rng(7)
    x = np.concatenate([10 ** rng.uniform(-300, 300, 20000), 10 ** rng.uniform(-6, 4, 50000),
                        rng.uniform(0.0, 20.0, 50000), 1.4616321449683622 + rng.normal(
                            0, 1e-3, 1000)])
    np.testing.assert_allclose(_digammas(x), special.digamma(x), rtol=3e-14, atol=3e-14)
    negative = -rng.uniform(0.0, 300.0, 20000)
    negative = negative[np.abs(negative - np.round(negative)) > 1e-3]
    np.testing.assert_allclose(_digammas(negative), special.digamma(negative), rtol=2e-12,
                               atol=1e-13)
    pole = np.arange(1.0, 200.0)
    distance = 10 ** rng.uniform(-12, -4, pole.size)
    near = -pole + distance
    offset = np.array([float(Fraction(v) + Fraction(int(p))) for v, p in zip(near, pole)])
    # psi(x) = psi(1 - x) - pi / tan(pi x), pi / tan(pi r) = 1/r - pi^2 r / 3 - ... (r small)
    reflected = special.digamma(1 - near) - (1 / offset - np.pi**2 * offset / 3)
    np.testing.assert_allclose(_digammas(near), reflected, rtol=1e-13)
    special_points = np.array([0.0, -0.0, -1.0, -7.0, np.inf, -np.inf, np.nan])
    np.testing.assert_array_equal(_digammas(special_points), special.digamma(special_points))


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
    reentrant one; every digamma of its gradient is the inline one."""
    from nutpie import compile_pymc as cp
    from pytensor.scalar.math import GammaLn, Psi

    from jdmbayes.models.lgamma import InlinePsi, ReentrantGammaLn
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
    # and its gradient's digamma is the inline one, not a call into SciPy's
    assert InlinePsi in kinds
    assert not [k for k in kinds if issubclass(k, Psi) and k is not InlinePsi]
