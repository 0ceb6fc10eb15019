r"""Compiled inner loop of each patient's marginal log-likelihood under a beta-binomial score
(:mod:`jdmbayes.estimands.patient_marginal` states the maths and computes the other
likelihoods in NumPy).

For one draw and one patient with standard normal effects :math:`(u, v)`, value :math:`j`
has link-scale mean :math:`\mu_j = c_j + a_j u + b_j v`, :math:`p_j = \mathrm{expit}(\mu_j)`
and log-likelihood, without the binomial coefficient,
:math:`\log\Gamma(y_j + p_j\phi) + \log\Gamma(N - y_j + (1 - p_j)\phi) - \log\Gamma(p_j\phi)
- \log\Gamma((1 - p_j)\phi) + \log\Gamma(\phi) - \log\Gamma(N + \phi)`. Since :math:`y_j`
and :math:`N - y_j` are whole numbers, each difference of two log-gammas is the log of a
rising factorial, :math:`\log\Gamma(x + m) - \log\Gamma(x) = \log\prod_{k<m}(x + k)`,
computed as that product where it has few factors (:func:`log_rising`: fewer calls of
log-gamma, and where p rounds to 0 or 1 the limit, 0 for no factor, not inf - inf).
Newton's method with a backtracking line search finds the mode of the log integrand (the
value's curvature in :math:`\mu` clipped at 0), patient by patient, and the
:math:`5 \times 5` Gauss-Hermite points of the NumPy code are placed on the Laplace
approximation there.

The NumPy code evaluates a whole block of draws at once, so every step allocates arrays of
draws x values for each of a dozen special functions; here each (draw, patient) is scalar
code over that patient's values, and each of its special functions is called once per value
and step. numba (PyTensor's own backend, so no new dependency) compiles it once per machine
into the user's cache folder (:mod:`jdmbayes.cachedir`) and releases the GIL, so blocks of
draws run on threads (:mod:`jdmbayes.estimands.blocks`); its log-gamma is C's ``lgamma_r``
(:mod:`jdmbayes.models.lgamma`), which threads do not wait on each other for. A division by
zero gives inf or nan, as in NumPy, not an exception (a draw whose link-scale mean overflows
makes a Beta parameter 0; a value at that bound then has probability 1, a value away from it
probability 0).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from jdmbayes.models.lgamma import digamma, lgamma_r, trigamma

# a rising factorial of at most this many factors is their product's log (below)
RISING_PRODUCT_FACTORS = 26
# ... and of a base below this, so that the product stays finite: (1e10 + 26)^26 < 1e261
RISING_PRODUCT_BASE = 1e10


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def log_rising(x, m):
    """log(x (x + 1) ... (x + m - 1)) = lgamma(x + m) - lgamma(x) for a count m >= 0 and
    x >= 0: for m <= :data:`RISING_PRODUCT_FACTORS` and x below
    :data:`RISING_PRODUCT_BASE`, the log of the product (four running products, so the
    multiplications overlap; a relative error of at most m units in the last place, where
    the two log-gammas' difference loses up to the rounding of the larger); otherwise the
    difference of the two log-gammas. 0 for m = 0, also at x = 0 (where the difference is
    inf - inf)."""
    if m > RISING_PRODUCT_FACTORS or not x < RISING_PRODUCT_BASE:
        return lgamma_r(x + m) - lgamma_r(x)
    p0 = p1 = p2 = p3 = 1.0
    k = 0
    while k + 3 < m:
        p0 *= x + k
        p1 *= x + (k + 1)
        p2 *= x + (k + 2)
        p3 *= x + (k + 3)
        k += 4
    while k < m:
        p0 *= x + k
        k += 1
    return math.log((p0 * p1) * (p2 * p3))


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def rising_derivatives(x, m):
    """The derivatives of :func:`log_rising` in x: (digamma(x + m) - digamma(x),
    trigamma(x + m) - trigamma(x)); (0, 0) for m = 0, also at x = 0."""
    if m == 0:
        return 0.0, 0.0
    return digamma(x + m) - digamma(x), trigamma(x + m) - trigamma(x)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _log_integrand(u, v, c, a, b, phi, upper, lg_phi, value, rows):
    """The patient's log-likelihood (values ``rows``) at (u, v), without the binomial
    coefficients, plus the standard normal log density of (u, v) without its constant.
    A value y of N has the terms lgamma(y + alpha) - lgamma(alpha) and
    lgamma(N - y + beta) - lgamma(beta), each a rising factorial (:func:`log_rising`)."""
    total = -0.5 * (u * u + v * v)
    for j in rows:
        p = 1.0 / (1.0 + math.exp(-(c[j] + a[j] * u + b[j] * v)))
        y, alpha, beta = value[j], p * phi, (1.0 - p) * phi
        total += (log_rising(alpha, int(y)) + log_rising(beta, int(upper - y)) + lg_phi)
    return total


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _curvature(u, v, c, a, b, phi, upper, value, rows):
    """Gradient of the log integrand in (u, v) and its negative Hessian, each value's
    curvature in mu clipped at 0 (so that a Newton step ascends)."""
    g_u, g_v, p_uu, p_uv, p_vv = -u, -v, 1.0, 0.0, 1.0
    for j in rows:
        p = 1.0 / (1.0 + math.exp(-(c[j] + a[j] * u + b[j] * v)))
        y, alpha, beta = value[j], p * phi, (1.0 - p) * phi
        d_a, t_a = rising_derivatives(alpha, int(y))
        d_b, t_b = rising_derivatives(beta, int(upper - y))
        dp = p * (1.0 - p)
        first = phi * dp * (d_a - d_b)
        second = phi * dp * (1.0 - 2.0 * p) * (d_a - d_b) + (phi * dp) ** 2 * (t_a + t_b)
        second = min(second, 0.0)
        g_u += first * a[j]
        g_v += first * b[j]
        p_uu -= second * a[j] * a[j]
        p_uv -= second * a[j] * b[j]
        p_vv -= second * b[j] * b[j]
    return g_u, g_v, p_uu, p_uv, p_vv


@numba.njit(cache=True, nogil=True, error_model="numpy")
def beta_binomial_marginal(c, a, b, noise, value, upper, order, offsets, start_u, start_v,
                           grid_u, grid_v, log_weights, newton_steps, halvings, tolerance,
                           settled, out):
    """``out[s, i]``: patient i's marginal log-likelihood under draw s, without the binomial
    coefficients; ``c``, ``a``, ``b`` (S, values), ``noise`` (S,) is phi; patient i's values
    are ``order[offsets[i]:offsets[i + 1]]``; Newton starts at (``start_u``,
    ``start_v``) (S, n); ``grid_u``, ``grid_v``, ``log_weights``: the quadrature's points
    in standard units and their log weights."""
    n = offsets.size - 1
    terms = np.empty(grid_u.size)     # the quadrature's terms, one patient at a time
    for s in range(c.shape[0]):
        phi = noise[s]
        lg_phi = lgamma_r(phi) - lgamma_r(upper + phi)
        cs, as_, bs = c[s], a[s], b[s]
        for i in range(n):
            rows = order[offsets[i]:offsets[i + 1]]
            u, v = start_u[s, i], start_v[s, i]
            f = _log_integrand(u, v, cs, as_, bs, phi, upper, lg_phi, value, rows)
            for _ in range(newton_steps):
                g_u, g_v, p_uu, p_uv, p_vv = _curvature(u, v, cs, as_, bs, phi, upper,
                                                        value, rows)
                det = p_uu * p_vv - p_uv * p_uv
                step_u = (p_vv * g_u - p_uv * g_v) / det
                step_v = (p_uu * g_v - p_uv * g_u) / det
                # a step promising a rise below the integrand's rounding is taken whole
                whole = g_u * step_u + g_v * step_v < settled
                length = 1.0
                new_f = _log_integrand(u + step_u, v + step_v, cs, as_, bs, phi, upper,
                                       lg_phi, value, rows)
                tries = 1       # at most ``halvings`` trial lengths: 1, 1/2, 1/4, ...
                while not whole and not new_f >= f - 1e-12:
                    if tries == halvings:
                        length, new_f = 0.0, f
                        break
                    tries += 1
                    length *= 0.5
                    new_f = _log_integrand(u + length * step_u, v + length * step_v, cs,
                                           as_, bs, phi, upper, lg_phi, value, rows)
                u, v, f = u + length * step_u, v + length * step_v, new_f
                if length * math.hypot(step_u, step_v) < tolerance:
                    break
            _, _, p_uu, p_uv, p_vv = _curvature(u, v, cs, as_, bs, phi, upper, value, rows)
            # the points sit on L z: L the Cholesky factor of the inverse negative Hessian
            det = p_uu * p_vv - p_uv * p_uv
            l11 = math.sqrt(p_vv / det)
            l21 = -p_uv / det / l11
            l22 = math.sqrt(max(p_uu / det - l21 * l21, 1e-300))
            peak = -np.inf
            for k in range(grid_u.size):
                pu = u + l11 * grid_u[k]
                pv = v + l21 * grid_u[k] + l22 * grid_v[k]
                # the integrand's normal density is in _log_integrand
                terms[k] = log_weights[k] + _log_integrand(pu, pv, cs, as_, bs, phi, upper,
                                                           lg_phi, value, rows)
                peak = max(peak, terms[k])
            if peak == -np.inf or math.isnan(peak):
                out[s, i] = peak
                continue
            out[s, i] = (peak + math.log(np.exp(terms - peak).sum()) + math.log(l11 * l22)
                         - math.log(2.0 * math.pi))
