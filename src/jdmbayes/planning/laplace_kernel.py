"""Compiled inner loop of the single-arm score analysis: each patient's baseline and change
integrated out by Laplace's method (:mod:`jdmbayes.planning.score_analysis` states the
maths), for many values of the population parameters at once.

numba (PyTensor's own backend, so no new dependency) compiles it once per machine (cached
on disk); every function is scalar code over the observations of one patient. Its digamma
and trigamma are those of the marginal LOO's loop (:mod:`jdmbayes.models.lgamma`).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from jdmbayes.models.lgamma import digamma, lgamma_r, trigamma

NEWTON_MAX = 50
HALVINGS = 30
TOLERANCE = 1e-7
EDGE = 1e-15          # p kept this far from 0 and 1, where a Beta(p phi, (1-p) phi) is undefined


@numba.njit(cache=True)
def _p(mu: float) -> float:
    p = 1.0 / (1.0 + math.exp(-mu))
    return min(max(p, EDGE), 1.0 - EDGE)


@numba.njit(cache=True)
def _log_integrand(zb, zc, alpha, s_b, delta, s_c, tau, phi, upper, lg_phi, lo, hi, week,
                   value, constant):
    """The patient's log-likelihood plus the standard normal log densities of zb, zc
    (without their constant)."""
    total = -0.5 * (zb * zb + zc * zc)
    base, change = alpha + s_b * zb, delta + s_c * zc
    for j in range(lo, hi):
        p = _p(base + change * (1.0 - math.exp(-week[j] / tau)))
        a, b, y = p * phi, (1.0 - p) * phi, value[j]
        total += (constant[j] + lgamma_r(y + a) - lgamma_r(a)
                  + lgamma_r(upper - y + b) - lgamma_r(b) - lg_phi)
    return total


@numba.njit(cache=True)
def _curvature(zb, zc, alpha, s_b, delta, s_c, tau, phi, upper, lo, hi, week, value, clip):
    """Gradient and Hessian of the log integrand in (zb, zc); the likelihood's curvature
    in the logit is clipped at 0 when ``clip`` (so the Newton step ascends)."""
    g_b, g_c, h_bb, h_bc, h_cc = -zb, -zc, -1.0, 0.0, -1.0
    base, change = alpha + s_b * zb, delta + s_c * zc
    for j in range(lo, hi):
        h = 1.0 - math.exp(-week[j] / tau)
        p = _p(base + change * h)
        a, b, y = p * phi, (1.0 - p) * phi, value[j]
        d_p = phi * (digamma(y + a) - digamma(a) - digamma(upper - y + b) + digamma(b))
        d_pp = phi * phi * (trigamma(y + a) - trigamma(a) + trigamma(upper - y + b)
                            - trigamma(b))
        s = p * (1.0 - p)
        d1 = d_p * s
        d2 = d_pp * s * s + d_p * s * (1.0 - 2.0 * p)
        if clip and d2 > 0.0:
            d2 = 0.0
        g_b += s_b * d1
        g_c += s_c * d1 * h
        h_bb += s_b * s_b * d2
        h_bc += s_b * s_c * d2 * h
        h_cc += s_c * s_c * d2 * h * h
    return g_b, g_c, h_bb, h_bc, h_cc


@numba.njit(cache=True)
def laplace_marginal(alpha, s_b, delta, s_c, tau, phi, upper, offsets, week, value, constant,
                     start_b, start_c, nodes, log_weights, total, mode_b, mode_c):
    r"""For each row s of the population parameters (arrays of length S), ``total[s]``: the
    sum over patients of the Laplace approximation of log p(y_i | theta_s) (-inf where a
    patient's Hessian at the mode is not negative definite); ``mode_b``, ``mode_c`` (S, n):
    the modes. Observations are sorted by patient; patient i owns
    ``offsets[i]:offsets[i + 1]``.

    With Gauss-Hermite ``nodes`` and ``log_weights`` (one axis; one node at 0 is Laplace's
    method) the integral is adaptive Gauss-Hermite quadrature on the product grid, centred
    at the mode and scaled by the Cholesky factor L of the inverse negative Hessian:
    :math:`\log 2 + \log|L| + \mathrm{logsumexp}_{jk}(\log w_j w_k + x_j^2 + x_k^2
    + f(\hat z + \sqrt2 L x_{jk})) - \log 2\pi` (Liu & Pierce 1994; lme4's nAGQ)."""
    n = offsets.size - 1
    for s in range(alpha.size):
        lg_phi = lgamma_r(upper + phi[s]) - lgamma_r(phi[s])
        args = (alpha[s], s_b[s], delta[s], s_c[s], tau[s], phi[s], upper)
        result = 0.0
        for i in range(n):
            lo, hi = offsets[i], offsets[i + 1]
            zb, zc = start_b[i], start_c[i]
            f = _log_integrand(zb, zc, *args, lg_phi, lo, hi, week, value, constant)
            for _ in range(NEWTON_MAX):
                g_b, g_c, h_bb, h_bc, h_cc = _curvature(zb, zc, *args, lo, hi, week, value,
                                                        True)
                det = h_bb * h_cc - h_bc * h_bc
                step_b = (h_cc * g_b - h_bc * g_c) / det
                step_c = (h_bb * g_c - h_bc * g_b) / det
                length = 1.0
                for _ in range(HALVINGS):
                    trial = _log_integrand(zb - length * step_b, zc - length * step_c, *args,
                                           lg_phi, lo, hi, week, value, constant)
                    if trial >= f - 1e-12:
                        break
                    length *= 0.5
                zb -= length * step_b
                zc -= length * step_c
                f = trial
                if max(abs(length * step_b), abs(length * step_c)) < TOLERANCE:
                    break
            _, _, h_bb, h_bc, h_cc = _curvature(zb, zc, *args, lo, hi, week, value, False)
            det = h_bb * h_cc - h_bc * h_bc
            mode_b[s, i], mode_c[s, i] = zb, zc
            if not (det > 0.0 and h_bb < 0.0 and math.isfinite(f)):
                result = -np.inf
                continue
            # Cholesky factor of the covariance (-H)^-1 = [[-h_cc, h_bc], [h_bc, -h_bb]] / det
            c11, c12, c22 = -h_cc / det, h_bc / det, -h_bb / det
            l11 = math.sqrt(c11)
            l21 = c12 / l11
            l22 = math.sqrt(max(c22 - l21 * l21, 1e-300))
            peak = -np.inf
            terms = np.empty(nodes.size * nodes.size)
            k = 0
            for j in range(nodes.size):
                for m in range(nodes.size):
                    xb, xc = math.sqrt(2.0) * nodes[j], math.sqrt(2.0) * nodes[m]
                    value_jm = (log_weights[j] + log_weights[m] + nodes[j] ** 2 + nodes[m] ** 2
                                + _log_integrand(zb + l11 * xb, zc + l21 * xb + l22 * xc,
                                                 *args, lg_phi, lo, hi, week, value,
                                                 constant))
                    terms[k] = value_jm
                    peak = max(peak, value_jm)
                    k += 1
            result += (math.log(2.0) + math.log(l11 * l22) + peak
                       + math.log(np.exp(terms - peak).sum()) - math.log(2.0 * math.pi))
        total[s] = result
