r"""Patient effects integrated out of a likelihood by adaptive Gauss-Hermite quadrature
(PyTensor), and the small pieces the integrated milestone frailty shares with it.

Two-dimensional effects (:func:`integrated_patient_effects`)
-------------------------------------------------------------
For patient :math:`i` with standard normal effects :math:`(u, v)` and values :math:`y_j`
whose link-scale mean is :math:`\mu_j = c_j + a_j u + b_j v`,

.. math::

    \log p(y_i) = \log \int \prod_j p(y_j \mid \mu_j)\, \phi(u)\phi(v)\, du\, dv
    \approx \log\big(l_{11} l_{22}\big) - \log 2\pi
    + \log \sum_{k} w_k\, e^{|z_k|^2/2}\, e^{g_i(\hat\theta_i + L_i z_k)},

with :math:`g_i(\theta) = \sum_j \log p(y_j\mid\mu_j(\theta)) - |\theta|^2/2`, its mode
:math:`\hat\theta_i`, :math:`L_i` (entries :math:`l_{11}, l_{21}, l_{22}`) the Cholesky
factor of the inverse negative Hessian there, and :data:`EFFECT_NODES` x
:data:`EFFECT_NODES` probabilists' Gauss-Hermite points :math:`z_k` with weights
:math:`w_k` (Pinheiro & Bates 1995, *J Comput Graph Stat* 4:12; lme4's ``nAGQ``; the
NumPy twin used after sampling is :mod:`jdmbayes.estimands.patient_marginal`).

The mode is found by :data:`EFFECT_NEWTON_STEPS` Newton steps from 0, each moving to the
best finite point among :data:`STEP_MULTIPLES` of the step (0 included: never downhill);
each value's curvature in :math:`\mu` is clipped at 0, so the negative Hessian is at least
the prior's identity and every step and factor is finite. The mode and factor place the
nodes; the sampler's gradient does not follow them through the Newton steps (a far
cheaper gradient; the log density itself is the quadrature's, and leapfrog steps with any
force field that depends on the position alone stay reversible and volume-preserving, so
NUTS still targets that density).
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.graph.replace import graph_replace
from pytensor.scalar.math import TriGamma

STEP_MULTIPLES = np.append(4.0 ** np.arange(2, -7, -1), 0.0)      # 16, 4, 1, 1/4 ... 1/4096, 0

# two-dimensional patient effects: Newton steps from 0 to the mode, then this many nodes per
# axis. Chosen by measurement (tests/unit/test_integrated_effects.py; benchmarks/RESULTS.md)
EFFECT_NEWTON_STEPS = 5
EFFECT_NODES = 5


def stop_gradient(x):
    """``x``, through which no gradient flows. PyTensor's ``disconnected_grad`` is a view
    that PyMC's pre-gradient rewrites remove (``pymc.pytensorf.rewrite_pregrad``, which the
    samplers' gradients go through), so the gradient would follow the Newton steps after
    all, second derivatives and their trigamma included; an opaque graph op declared
    disconnected from its input stays."""
    inner = x.type()
    return OpFromGraph([inner], [inner + 0.0], connection_pattern=[[False]], inline=False,
                       name="StopGradient")(x)


def patient_sum(values, obs_patient, n: int):
    """Sum of per-observation values ((obs,) or (obs, k)) by patient: (n,) or (n, k)."""
    shape = (n,) if values.ndim == 1 else (n, values.shape[1])
    return pt.inc_subtensor(pt.zeros(shape)[obs_patient], values)


def nan_to(x, fallback):
    """``x`` with each NaN replaced by ``fallback``."""
    return pt.switch(pt.isnan(x), fallback, x)


def trigamma(x):
    """The trigamma function of x > 0 in elementary operations (PyTensor): six steps of
    its recurrence, then its asymptotic series; relative error below 2e-12 on
    [1e-4, 1e4]. PyTensor's own has no numba implementation, so numba runs it in object
    mode, element by element in Python, holding the GIL."""
    shift = sum(1.0 / (x + k) ** 2 for k in range(6))
    iz = 1.0 / (x + 6.0)
    iz2 = iz * iz
    return shift + iz + 0.5 * iz2 + iz * iz2 * (
        1 / 6 - iz2 * (1 / 30 - iz2 * (1 / 42 - iz2 * (1 / 30 - iz2 * 5 / 66))))


def with_elementary_trigamma(expr):
    """``expr`` with every elementwise trigamma replaced by :func:`trigamma` (second
    derivatives of ``gammaln`` bring it in)."""
    found, seen, stack = {}, set(), [expr]
    while stack:
        var = stack.pop()
        if var.owner is None or id(var) in seen:
            continue
        seen.add(id(var))
        op = getattr(var.owner.op, "scalar_op", None)
        if isinstance(op, TriGamma):
            found[var] = trigamma(var.owner.inputs[0])
        stack.extend(var.owner.inputs)
    return graph_replace(expr, found, strict=False) if found else expr


def integrated_patient_effects(value_loglik, c, a, b, obs_patient, n: int,
                               newton_steps: int = EFFECT_NEWTON_STEPS,
                               nodes: int = EFFECT_NODES):
    """(n,) each patient's log-likelihood with the effects (u, v) integrated out (module
    docstring), and the (n, 2) mode and (n, 3) Cholesky entries (l11, l21, l22) of the
    Laplace approximation of each patient's effects given the data.

    ``value_loglik(mu)`` is each value's log-likelihood for link-scale means ``mu`` of shape
    (obs,) or (obs, k); ``c``, ``a``, ``b`` are (obs,).
    """
    multiples = pt.as_tensor(STEP_MULTIPLES)

    def log_integrand(u, v):                     # g at effects of shape (n, k)
        mu = (c[:, None] + a[:, None] * u[obs_patient] + b[:, None] * v[obs_patient])
        terms = nan_to(value_loglik(mu), -np.inf)
        return patient_sum(terms, obs_patient, n) - 0.5 * (u**2 + v**2)

    # each value's first and second derivative in mu, built once on a placeholder and
    # placed at each Newton step's mu (building them at every step would copy the steps
    # before it into the graph)
    placeholder = pt.vector("mu", dtype="float64")
    first_at = pt.grad(value_loglik(placeholder).sum(), placeholder)
    second_at = with_elementary_trigamma(pt.grad(first_at.sum(), placeholder))

    def gradient_and_precision(u, v):            # g's gradient, -Hessian (clipped), (n,)
        mu = c + a * u[obs_patient] + b * v[obs_patient]
        first, second = graph_replace([first_at, second_at], {placeholder: mu}, strict=False)
        second = pt.minimum(nan_to(second, 0.0), 0.0)
        first = nan_to(first, 0.0)

        def total(x):
            return patient_sum(x, obs_patient, n)

        return (total(first * a) - u, total(first * b) - v, 1.0 - total(second * a * a),
                -total(second * a * b), 1.0 - total(second * b * b))

    u, v = pt.zeros(n), pt.zeros(n)
    rows = pt.arange(n)
    for _ in range(newton_steps):
        g_u, g_v, p_uu, p_uv, p_vv = gradient_and_precision(u, v)
        det = p_uu * p_vv - p_uv**2
        step_u = nan_to((p_vv * g_u - p_uv * g_v) / det, 0.0)
        step_v = nan_to((p_uu * g_v - p_uv * g_u) / det, 0.0)
        cand_u = u[:, None] + step_u[:, None] * multiples[None, :]           # (n, steps)
        cand_v = v[:, None] + step_v[:, None] * multiples[None, :]
        best = pt.argmax(nan_to(log_integrand(cand_u, cand_v), -np.inf), axis=1)
        u, v = cand_u[rows, best], cand_v[rows, best]
    _, _, p_uu, p_uv, p_vv = gradient_and_precision(u, v)
    det = p_uu * p_vv - p_uv**2
    l11 = pt.sqrt(p_vv / det)                    # Cholesky factor of the inverse precision
    l21 = (-p_uv / det) / l11
    l22 = pt.sqrt(pt.maximum(p_uu / det - l21**2, 1e-300))
    u, v, l11, l21, l22 = (stop_gradient(x) for x in (u, v, l11, l21, l22))
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    z1, z2 = (g.ravel() for g in np.meshgrid(z, z, indexing="ij"))
    log_weights = np.log(np.outer(w, w)).ravel() + 0.5 * (z1**2 + z2**2)
    node_u = u[:, None] + l11[:, None] * z1[None, :]                             # (n, Q)
    node_v = v[:, None] + l21[:, None] * z1[None, :] + l22[:, None] * z2[None, :]
    weighted = log_integrand(node_u, node_v) + log_weights[None, :]
    loglik = pt.logsumexp(weighted, axis=1) + pt.log(l11 * l22) - np.log(2 * np.pi)
    return loglik, pt.stack([u, v], axis=1), pt.stack([l11, l21, l22], axis=1)
