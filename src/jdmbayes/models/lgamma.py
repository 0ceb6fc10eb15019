r"""The log-gamma function for code that runs on several threads at once.

C's ``lgamma`` stores the sign of :math:`\Gamma(x)` in the process-wide variable ``signgam``
at every call, so threads calling it write one memory location in turn: on this project's
2-core machine a compiled loop of ``lgamma`` took up to 21.8 ns per call on each of two
threads against 9.3 ns on one (``benchmarks/RESULTS.md``, ``benchmarks/lgamma_threads.py``).
numba compiles ``math.lgamma`` and PyTensor's ``gammaln`` to that call, and nutpie runs its
chains, and :mod:`jdmbayes.estimands.blocks` its blocks of draws, on threads of one process.
``lgamma_r`` (POSIX, in glibc and macOS's libm) computes the same value and returns the sign
through a pointer instead: the same bits, each thread at full speed. (Windows' C runtime has
no ``lgamma_r`` and no ``signgam``: there its ``lgamma`` is used.)

* :func:`lgamma_r` is for numba code (``math.lgamma``'s replacement);
* :func:`gammaln` is for PyTensor graphs (``pytensor.tensor.gammaln``'s): the same
  operation and NumPy implementation, compiled by numba to ``lgamma_r``; its gradient is
  the digamma function compiled inline.

Its derivatives, :func:`digamma` and :func:`trigamma`, are written out for numba code
(recurrence, then asymptotic series). PyTensor's numba backend calls SciPy's compiled
digamma through a function pointer at every value; the gradient of :func:`gammaln` uses
:func:`digamma` compiled into the graph's loop instead (:class:`InlinePsi`): the log
density and gradient of a 2,000-patient score took 1.69 against 1.99 ms
(``benchmarks/RESULTS.md``). It agrees with SciPy's to a relative 1e-13.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
from pathlib import Path

import llvmlite.binding as llvm
import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from pytensor.link.numba.dispatch import basic as numba_basic
from pytensor.link.numba.dispatch.scalar import register_scalar_funcify, scalar_op_cache_key
from pytensor.scalar.basic import complex_types, discrete_types, upgrade_to_float
from pytensor.scalar.math import GammaLn, Psi
from pytensor.tensor.elemwise import Elemwise

# PyTensor caches the compiled graphs holding these operations on disk, keyed on each
# operation's key: with this module's digest in it, an edit of the functions they compile
# to (lgamma_r, digamma) compiles those graphs again
SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()


def _lgamma_r_address() -> int | None:
    """The address of the C library's ``lgamma_r``; None where it has none (Windows' C
    runtime, whose ``lgamma`` keeps no ``signgam`` and so shares nothing between threads)."""
    try:
        library = ctypes.CDLL(ctypes.util.find_library("m"))
        return ctypes.cast(library.lgamma_r, ctypes.c_void_p).value
    except (OSError, AttributeError, TypeError):
        return None


_ADDRESS = _lgamma_r_address()
if _ADDRESS is not None:
    # known to numba's linker by address (CPython loads libm globally, so it is found by
    # name too; this does not rely on it)
    llvm.add_symbol("lgamma_r", _ADDRESS)

    @intrinsic
    def lgamma_r(typingctx, x):
        """log|Gamma(x)| of a float (numba only): C's ``lgamma_r``, the sign in a local."""
        if not isinstance(x, types.Float):
            return None

        def codegen(context, builder, sig, args):
            function_type = ir.FunctionType(ir.DoubleType(),
                                            [ir.DoubleType(), ir.IntType(32).as_pointer()])
            function = cgutils.get_or_insert_function(builder.module, function_type,
                                                      "lgamma_r")
            sign = cgutils.alloca_once(builder, ir.IntType(32))
            return builder.call(function, [args[0], sign])

        return types.float64(types.float64), codegen
else:
    @numba.njit(inline="always")
    def lgamma_r(x):
        """log|Gamma(x)| (numba only): the C runtime's ``lgamma``, which shares nothing."""
        return math.lgamma(x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def digamma(x: float) -> float:
    """psi(x): for x > 0 the recurrence up to x >= 10, then the asymptotic series through
    B10 (Abramowitz & Stegun 6.3.18; within 3e-14 of SciPy's, relative, or absolute where
    |psi| < 1); for x < 0 the reflection psi(1 - x) - pi / tan(pi x); at 0 -1/x (-inf at
    +0, inf at -0) and nan at a negative integer, as SciPy's."""
    result = 0.0
    if x <= 0.0:
        if x == math.floor(x):
            return -1.0 / x if x == 0.0 else math.nan
        # tan has period pi: reduced to [-1/2, 1/2] (exactly), pi r keeps its precision
        result, x = -math.pi / math.tan(math.pi * (x - round(x))), 1.0 - x
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    return result + math.log(x) - 0.5 / x - f * (
        1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def trigamma(x: float) -> float:
    """psi'(x), x > 0: the recurrence up to x >= 10, then the asymptotic series through B10
    (Abramowitz & Stegun 6.4.12); relative error below 1e-13."""
    result = 0.0
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    f = 1.0 / (x * x)
    return result + 1.0 / x + 0.5 * f + f / x * (
        1.0 / 6 - f * (1.0 / 30 - f * (1.0 / 42 - f * (1.0 / 30 - f * 5.0 / 66))))


class InlinePsi(Psi):
    """PyTensor's ``Psi`` (the same gradient, C code and NumPy implementation), which numba
    compiles to :func:`digamma` in the graph's own loop instead of a call into SciPy."""


@register_scalar_funcify(InlinePsi)
def _numba_inline_psi(op, node, **kwargs):
    @numba_basic.numba_njit
    def inline_psi(x):
        return digamma(float(x))

    return inline_psi, scalar_op_cache_key(op, cache_version=1, source=SOURCE_DIGEST)


_inline_psi = InlinePsi(upgrade_to_float, name="psi_inline")


class ReentrantGammaLn(GammaLn):
    """PyTensor's ``GammaLn`` (the same C code and NumPy implementation), which numba
    compiles to ``lgamma_r`` instead of ``lgamma``; its gradient's digamma is
    :class:`InlinePsi`."""

    def pullback(self, inputs, outputs, grads):
        (x,), (gz,) = inputs, grads
        if x.type in complex_types or outputs[0].type in discrete_types:
            return super().pullback(inputs, outputs, grads)
        return [gz * _inline_psi(x)]


@register_scalar_funcify(ReentrantGammaLn)
def _numba_reentrant_gammaln(op, node, **kwargs):
    @numba_basic.numba_njit
    def reentrant_gammaln(x):
        return lgamma_r(float(x))

    return reentrant_gammaln, scalar_op_cache_key(op, cache_version=1, source=SOURCE_DIGEST)


gammaln = Elemwise(ReentrantGammaLn(upgrade_to_float, name="gammaln_r"), name="gammaln_r")
