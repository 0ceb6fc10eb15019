r"""Each patient's marginal log-likelihood in a longitudinal model whose patient effects are
sampled: the patient's baseline and change integrated out, draw by draw, by adaptive
Gauss-Hermite quadrature. Patient-level LOO and model comparison use it (the conditional
likelihood, given the patient's own sampled effects, makes every patient influential).

For draw :math:`s` and patient :math:`i` with standard normal effects :math:`(u, v)`,
the link-scale mean of value :math:`j` is
:math:`\mu_j = c_j + a_j u + b_j v` with :math:`c_j = \alpha + m_i h_j + g_j`,
:math:`a_j = \sigma_{int} + \sigma_{change}\rho h_j`,
:math:`b_j = \sigma_{change}\sqrt{1-\rho^2}\, h_j` (:mod:`jdmbayes.models.longitudinal`),
and

.. math::

    \log p(y_i \mid \theta_s) = \log \int \prod_j p(y_{ij} \mid \mu_j)\,
    \phi(u)\phi(v)\, du\, dv.

Newton's method with a backtracking line search finds the mode of the integrand (the
curvature of each value's log-likelihood in :math:`\mu` is clipped at 0 so every step is
an ascent direction; a draw stops once none of its patients' effects moves more than
:data:`TOLERANCE`, so each draw's value is its own whatever block it is computed in), then
:data:`NODES` x :data:`NODES` Gauss-Hermite points are placed on the Laplace approximation
(mode and Cholesky factor of the inverse negative Hessian), as lme4's ``nAGQ`` and
glmmTMB do (Pinheiro & Bates 1995, *J Comput Graph Stat* 4:12). Merkle, Furr &
Rabe-Hesketh (2019, *Psychometrika* 84:802) on marginal likelihoods for LOO.

Blocks of draws (:func:`draws_per_block`) run on threads (:mod:`jdmbayes.estimands.blocks`).
"""

from __future__ import annotations

import numpy as np
from scipy import special

from jdmbayes.estimands.blocks import in_blocks
from jdmbayes.estimands.longitudinal import covariate_part, fixed_changes, patient_summer
from jdmbayes.estimands.marginal_kernel import beta_binomial_marginal
from jdmbayes.models.indexing import LongitudinalData
from jdmbayes.models.longitudinal import time_shape

NODES = 5            # per axis: 25 points per patient and draw
NEWTON_STEPS = 50
HALVINGS = 30        # step halvings per Newton step (backtracking line search)
TOLERANCE = 1e-7     # Newton stops when no patient's effects move more than this
SETTLED = 1e-9       # a Newton step promising a rise below this is taken without line search
DRAW_BLOCK = 200     # draws per block (memory: a block's (draws, values) arrays)
# the marginal log-likelihood's blocks hold at most this many (draw, value) pairs, so that
# each of a block's arrays stays near 3 MB however many values the series has (blocks run
# on threads, each with its own arrays)
BLOCK_VALUES = 360_000


def binomial_constant(value, upper):
    """log C(N, y): the beta-binomial log-likelihood's term free of the parameters."""
    return (special.gammaln(upper + 1) - special.gammaln(value + 1)
            - special.gammaln(upper - value + 1))


# Bernoulli numbers B2, B4, ..., B12 of the asymptotic series of the trigamma function
_TRIGAMMA_SERIES = (1 / 6, -1 / 30, 1 / 42, -1 / 30, 5 / 66, -691 / 2730)


def trigamma(x):
    """The trigamma function (NumPy, x > 0): the recurrence psi'(x) = psi'(x+1) + 1/x^2
    up to x >= 6, then the asymptotic series 1/x + 1/(2x^2) + sum_k B_2k / x^(2k+1)
    (Abramowitz & Stegun 6.4.12); relative error below 1e-11, and about seven times
    faster than ``scipy.special.polygamma(1, x)``, which the Newton steps would otherwise
    spend most of their time in."""
    x = np.asarray(x, dtype=float)
    shift = np.zeros_like(x)
    for _ in range(6):
        small = x < 6.0
        if not small.any():
            break
        shift = shift + np.where(small, 1.0 / np.where(small, x, 1.0) ** 2, 0.0)
        x = np.where(small, x + 1.0, x)
    r = 1.0 / x
    r2 = r * r
    series = 0.0
    for coefficient in reversed(_TRIGAMMA_SERIES):
        series = r2 * (coefficient + series)
    return shift + r + r2 * 0.5 + r * series


def value_derivatives(likelihood: str, value, mu, noise, upper, derivatives: bool = True,
                      constant: bool = True):
    """(log-likelihood, first, second derivative in mu) of each value (NumPy); only the
    log-likelihood (and None, None) when ``derivatives`` is false; without the beta-binomial
    :func:`binomial_constant` when ``constant`` is false."""
    if likelihood == "beta_binomial":
        p = special.expit(mu)
        a, b = p * noise, (1 - p) * noise
        # log B(y + a, N - y + b) - log B(a, b) with a + b = phi: four log-gamma functions
        # per value and two per draw (special.betaln costs three times as much here)
        gammaln = special.gammaln
        loglik = (gammaln(value + a) + gammaln(upper - value + b) - gammaln(a) - gammaln(b)
                  + (gammaln(noise) - gammaln(upper + noise)))
        if constant:
            loglik = loglik + binomial_constant(value, upper)
        if not derivatives:
            return loglik, None, None
        d_a = special.digamma(value + a) - special.digamma(a)
        d_b = special.digamma(upper - value + b) - special.digamma(b)
        t_a = trigamma(value + a) - trigamma(a)
        t_b = trigamma(upper - value + b) - trigamma(b)
        dp = p * (1 - p)
        first = noise * dp * (d_a - d_b)
        second = noise * dp * (1 - 2 * p) * (d_a - d_b) + (noise * dp) ** 2 * (t_a + t_b)
        return loglik, first, second
    if likelihood == "censored_normal":
        y = value / upper
        floor, ceiling = value <= 0, value >= upper
        z = (y - mu) / noise
        loglik = -0.5 * z**2 - np.log(noise * np.sqrt(2 * np.pi)) - np.log(upper)
        first, second = z / noise, np.full_like(z, -1.0 / noise**2)
        for at, sign in ((floor, -1.0), (ceiling, 1.0)):
            edge = sign * (mu - (0.0 if sign < 0 else 1.0)) / noise   # Phi(edge) is the mass
            log_mass = special.log_ndtr(edge)
            ratio = np.exp(-0.5 * edge**2 - 0.5 * np.log(2 * np.pi) - log_mass)
            loglik = np.where(at, log_mass, loglik)
            first = np.where(at, sign * ratio / noise, first)
            second = np.where(at, -ratio * (edge + ratio) / noise**2, second)
        return loglik, first, second
    if likelihood == "lognormal":
        log_y = np.log(value)
        z = (log_y - mu) / noise
        loglik = -0.5 * z**2 - np.log(noise * np.sqrt(2 * np.pi)) - log_y
        return loglik, z / noise, np.full_like(z, -1.0 / noise**2)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def log_integrand(at: dict, u: np.ndarray, v: np.ndarray, derivatives: bool = True):
    """(draws, n) sum of each patient's values' log-likelihood at effects (u, v) and, with
    ``derivatives``, its gradient and (curvature-clipped) Hessian entries in (u, v); ``at``
    holds one block of draws' c, a, b (module docstring), noise and the data."""
    patient = at["data"].patient
    a, b, per_patient = at["a"], at["b"], at["per_patient"]
    mu = at["c"] + a * u[:, patient] + b * v[:, patient]
    loglik, first, second = value_derivatives(at["likelihood"], at["data"].value, mu,
                                              at["noise"], at["upper"], derivatives,
                                              constant=False)
    if not derivatives:
        return (per_patient(loglik),)
    second = np.minimum(second, 0.0)
    return (per_patient(loglik), per_patient(first * a), per_patient(first * b),
            per_patient(second * a * a), per_patient(second * a * b),
            per_patient(second * b * b))


def starting_effects(draws: dict, fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) where Newton starts: each draw's own sampled effects of the patient in
    standard-normal units (near the mode, so few steps are needed), else 0."""
    if "baseline" not in draws:
        zeros = np.zeros_like(fixed)
        return zeros, zeros.copy()
    s_b, s_d = draws["sigma_intercept"][:, None], draws["sigma_change"][:, None]
    rho = draws["rho_baseline_change"][:, None]
    u = (draws["baseline"] - draws["intercept"][:, None]) / s_b
    spread = s_d * np.sqrt(1 - rho**2)
    v = np.where(spread > 0, (draws["patient_change"] - fixed - s_d * rho * u)
                 / np.where(spread > 0, spread, 1.0), 0.0)
    return u, v


def integrand_terms(d: dict, fixed: np.ndarray, data: LongitudinalData, spec, shape,
                    per_patient) -> dict:
    """What :func:`log_integrand` needs for a block of draws ``d`` (each (S, ...)): the
    values' c, a and b (module docstring), noise and the data; ``fixed`` (S, n) is each
    patient's change without the patient effect."""
    h = shape.values(data.week, d)
    s_b, s_d = d["sigma_intercept"][:, None], d["sigma_change"][:, None]
    rho = d["rho_baseline_change"][:, None]
    c = d["intercept"][:, None] + fixed[:, data.patient] * h + shape.offset(data.week, d)
    return {"c": c, "a": s_b + s_d * rho * h, "b": s_d * np.sqrt(1 - rho**2) * h,
            "noise": d["noise"][:, None], "upper": float(spec.upper or 1.0), "data": data,
            "likelihood": spec.likelihood, "per_patient": per_patient}


# drawing each patient's effects given the data from the quadrature's Laplace approximation:
# proposals from it, widened by this factor, corrected by this many independence
# Metropolis-Hastings steps
PROPOSAL_WIDTH = 1.2
CORRECTION_STEPS = 8


def laplace_proposal(at: dict, mode: np.ndarray, chol: np.ndarray, rng
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised effects (u, v), each (S, n), drawn from the widened Laplace
    approximation, and their log importance weight (target over proposal, up to a constant
    per draw and patient)."""
    z1, z2 = rng.standard_normal((2, *mode.shape[:2]))
    l11, l21, l22 = (PROPOSAL_WIDTH * chol[..., k] for k in range(3))
    u, v = mode[..., 0] + l11 * z1, mode[..., 1] + l21 * z1 + l22 * z2
    weight = (log_integrand(at, u, v, derivatives=False)[0] - 0.5 * (u**2 + v**2)
              + 0.5 * (z1**2 + z2**2))
    return u, v, np.where(np.isnan(weight), -np.inf, weight)


def laplace_corrected_effects(post: dict, data: LongitudinalData, spec, mode: np.ndarray,
                              chol: np.ndarray, rng: np.random.Generator
                              ) -> tuple[np.ndarray, np.ndarray]:
    """(S, n) baselines and changes of the modelled patients drawn given each posterior
    draw and the patient's values, for a model whose effects were integrated out by
    quadrature (:func:`jdmbayes.models.quadrature.integrated_patient_effects`, which gives
    ``mode`` (S, n, 2) and ``chol`` (S, n, 3) of each patient's standardised effects).

    Each draw starts from the Laplace approximation (normal at the mode, covariance ``L
    L'`` widened by :data:`PROPOSAL_WIDTH`) and takes :data:`CORRECTION_STEPS` independence
    Metropolis-Hastings steps with it as proposal, whose stationary law is the exact
    conditional one; with an acceptance rate near 1 (a nearly normal conditional law) a
    few steps leave no trace of the start."""
    size, n = post["intercept"].shape[0], data.n_patients
    shape = time_shape(data, spec)
    fixed = fixed_changes(post, data.design, data.design.patient_cell,
                          covariate_part(post, data))
    per_patient = patient_summer(data)
    baseline, change = np.empty((size, n)), np.empty((size, n))
    for start in range(0, size, DRAW_BLOCK):
        block = slice(start, min(start + DRAW_BLOCK, size))
        d = {k: v[block] for k, v in post.items()}
        at = integrand_terms(d, fixed[block], data, spec, shape, per_patient)
        u, v, weight = laplace_proposal(at, mode[block], chol[block], rng)
        for _ in range(CORRECTION_STEPS):
            new_u, new_v, new_weight = laplace_proposal(at, mode[block], chol[block], rng)
            accept = np.log(rng.uniform(size=u.shape)) < new_weight - weight
            u, v = np.where(accept, new_u, u), np.where(accept, new_v, v)
            weight = np.where(accept, new_weight, weight)
        s_b, s_d = d["sigma_intercept"][:, None], d["sigma_change"][:, None]
        rho = d["rho_baseline_change"][:, None]
        baseline[block] = d["intercept"][:, None] + s_b * u
        change[block] = fixed[block] + s_d * (rho * u + np.sqrt(1 - rho**2) * v)
    return baseline, change


def rows_of(at: dict, rows: np.ndarray) -> dict:
    """:func:`integrand_terms` of the draws ``rows`` of a block only."""
    return {**at, "c": at["c"][rows], "a": at["a"][rows], "b": at["b"][rows],
            "noise": at["noise"][rows]}


def integrand_mode(at: dict, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) at the mode of each patient's integrand (log-likelihood plus the standard
    normal log density of the effects), by Newton's method from (u, v), each (S, n): a
    draw stops once none of its patients' effects moves more than :data:`TOLERANCE` in a
    step, so the steps left are taken by the draws still moving only."""
    u, v = u.copy(), v.copy()
    rows = np.arange(u.shape[0])
    for _ in range(NEWTON_STEPS):
        sub, ru, rv = rows_of(at, rows), u[rows], v[rows]
        f, g_u, g_v, h_uu, h_uv, h_vv = log_integrand(sub, ru, rv)
        f, g_u, g_v = f - 0.5 * (ru**2 + rv**2), g_u - ru, g_v - rv
        p_uu, p_uv, p_vv = 1 - h_uu, -h_uv, 1 - h_vv          # negative Hessian
        det = p_uu * p_vv - p_uv**2
        step_u = (p_vv * g_u - p_uv * g_v) / det
        step_v = (p_uu * g_v - p_uv * g_u) / det
        # backtracking: halve each patient's step until the integrand does not fall. Near
        # the mode the rise a step promises (the Newton decrement g'step) is below the
        # integrand's rounding, so comparing values there says nothing: such a step is
        # taken whole (halving it would cost every patient of the block one evaluation
        # per halving, up to HALVINGS of them per Newton step)
        settled = g_u * step_u + g_v * step_v < SETTLED
        length = np.ones_like(ru)
        for _ in range(HALVINGS):
            new_u, new_v = ru + length * step_u, rv + length * step_v
            new_f = (log_integrand(sub, new_u, new_v, derivatives=False)[0]
                     - 0.5 * (new_u**2 + new_v**2))
            worse = ~(new_f >= f - 1e-12) & ~settled
            if not worse.any():
                break
            length = np.where(worse, length / 2, length)
        length = np.where(worse, 0.0, length)
        u[rows], v[rows] = ru + length * step_u, rv + length * step_v
        rows = rows[np.max(length * np.hypot(step_u, step_v), axis=1) >= TOLERANCE]
        if not rows.size:
            break
    return u, v


def draws_per_block(n_values: int) -> int:
    """Draws per block of :func:`marginal_loglik`: :data:`DRAW_BLOCK`, fewer where that
    would hold more than :data:`BLOCK_VALUES` (draw, value) pairs (a draw's value does not
    depend on its block)."""
    return max(1, min(DRAW_BLOCK, BLOCK_VALUES // max(n_values, 1)))


def marginal_loglik(post: dict, data: LongitudinalData, spec, compiled: bool = True
                    ) -> np.ndarray:
    """(S, n) marginal log-likelihood of each patient's values under each draw (module
    docstring); ``post`` as :func:`jdmbayes.estimands.longitudinal.posterior_arrays`.
    Blocks of :func:`draws_per_block` draws run on threads (:func:`in_blocks`). A
    beta-binomial score is computed by the compiled loop of
    :mod:`jdmbayes.estimands.marginal_kernel`, patient by patient (a patient's Newton steps
    stop once their effects move less than :data:`TOLERANCE`); ``compiled=False`` computes
    it in NumPy as the other likelihoods are, the reference the tests hold that loop to."""
    size = post["intercept"].shape[0]
    shape = time_shape(data, spec)
    upper = float(spec.upper or 1.0)
    fixed = fixed_changes(post, data.design, data.design.patient_cell,
                          covariate_part(post, data))
    per_patient = patient_summer(data)

    # the beta-binomial's parameter-free term, added once per patient
    constant = (per_patient(binomial_constant(data.value, upper)[None, :])
                if spec.likelihood == "beta_binomial" else 0.0)
    nodes, weights = np.polynomial.hermite_e.hermegauss(NODES)
    grid_u, grid_v = (g.ravel() for g in np.meshgrid(nodes, nodes, indexing="ij"))
    log_weights = (np.log(np.outer(weights, weights)).ravel()
                   + 0.5 * (grid_u**2 + grid_v**2))

    compiled = compiled and spec.likelihood == "beta_binomial"
    if compiled:
        # the compiled loop (marginal_kernel): patient i's values are order[offsets[i]:...]
        order = np.argsort(data.patient, kind="stable")
        offsets = np.searchsorted(data.patient[order], np.arange(data.n_patients + 1))
        values = np.ascontiguousarray(data.value, dtype=float)

    def compute(block: slice) -> np.ndarray:
        d = {k: v[block] for k, v in post.items()}
        at = integrand_terms(d, fixed[block], data, spec, shape, per_patient)
        start_u, start_v = starting_effects(d, fixed[block])
        if compiled:
            out = np.empty(start_u.shape)
            beta_binomial_marginal(
                *(np.ascontiguousarray(np.broadcast_to(at[k], at["c"].shape), dtype=float)
                  for k in ("c", "a", "b")),
                np.ascontiguousarray(at["noise"][:, 0], dtype=float), values, upper,
                order, offsets, np.ascontiguousarray(start_u, dtype=float),
                np.ascontiguousarray(start_v, dtype=float), grid_u, grid_v, log_weights,
                NEWTON_STEPS, HALVINGS, TOLERANCE, SETTLED, out)
            return out + constant
        u, v = integrand_mode(at, start_u, start_v)
        _, _, _, h_uu, h_uv, h_vv = log_integrand(at, u, v)
        p_uu, p_uv, p_vv = 1 - h_uu, -h_uv, 1 - h_vv
        # the points sit on L z: L the Cholesky factor of the inverse negative Hessian
        det = p_uu * p_vv - p_uv**2
        c_uu, c_uv, c_vv = p_vv / det, -p_uv / det, p_uu / det
        l11 = np.sqrt(c_uu)
        l21 = c_uv / l11
        l22 = np.sqrt(np.maximum(c_vv - l21**2, 1e-300))
        terms = []
        for z1, z2, lw in zip(grid_u, grid_v, log_weights):
            pu, pv = u + l11 * z1, v + l21 * z1 + l22 * z2
            loglik = log_integrand(at, pu, pv, derivatives=False)[0]
            terms.append(lw + loglik - 0.5 * (pu**2 + pv**2))
        return (special.logsumexp(np.stack(terms), axis=0) + np.log(l11 * l22)
                - np.log(2 * np.pi) + constant)

    return in_blocks(size, draws_per_block(len(data.value)), compute)
