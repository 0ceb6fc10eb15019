r"""A single-arm trial of a bounded score analysed by the package's longitudinal model
(:func:`jdmbayes.models.longitudinal.build_longitudinal_model`: beta-binomial, plateau
shape, independent patient baseline and change, one group), fast or by MCMC.

Fast analysis: the patient effects are integrated out by Laplace's method, patient by
patient (each patient's baseline and change are a 2-dimensional integral; Newton's method to
the mode, then the Gaussian integral, as INLA and glmmTMB do; the compiled kernel also does
adaptive Gauss-Hermite quadrature with more nodes, :data:`AGQ_NODES`), and the six population
parameters :math:`\theta` (intercept, SD of baselines, change, SD of changes, time constant,
beta-binomial precision) get Laplace's approximation at the mode of that marginal posterior.
Where the decision is close (the approximate posterior probability of the rule within 1.5
on the log-odds scale of its threshold) that approximation is corrected by Pareto-smoothed
importance sampling with a Student-t proposal (scrambled Sobol points); elsewhere it decides
alone. The importance weights correct the outer approximation; the inner one (Laplace per
patient) remains, and the agreement check against MCMC on the full model
(``validation/plan-agreement/single_arm_cmas/``) says whether any of it matters for the
decision.

In the sampler's parameterisation (non-centred), for patient :math:`i` with values
:math:`y_{ij}` at weeks :math:`t_{ij}`:

.. math::

    \mu_{ij} = \alpha + \sigma_b z_{bi} + (\delta + \sigma_c z_{ci})(1 - e^{-t_{ij}/\tau}),
    \qquad \log p(y_i \mid \theta) = \log\int \prod_j \mathrm{BB}(y_{ij}; N,
    \mu_{ij}, \phi)\, \phi_2(z)\, dz \approx \ell_i(\hat z) - \tfrac12|\hat z|^2
    - \tfrac12 \log\det(-H_i),

with :math:`H_i` the Hessian of the integrand's log at its mode :math:`\hat z`. The estimand
is the population mean change by week :math:`T`,
:math:`N\,E_{u,v}[\mathrm{logit}^{-1}(\alpha + \sigma_b u + (\delta + \sigma_c v) h_T)
- \mathrm{logit}^{-1}(\alpha + \sigma_b u)]`, by Gauss-Hermite quadrature over new patients
(:func:`mean_change`), the quantity ``mean_change_wk<T>`` of a fit.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special, stats

from jdmbayes.planning.decision import TrialAnalysis, interval, rule_probability

NODES_PER_AXIS = 20
# Gauss-Hermite nodes per axis of each patient's 2-dimensional integral: 1 is Laplace's
# method (lme4's nAGQ = 1). Measured: the log integral of one patient is within 0.03 of
# brute-force quadrature (3 nodes: 0.025, 5 nodes: 0.003; tests/unit/test_score_planning.py),
# and the posterior probability of the bundled design's rule moves by < 0.006 between 1, 3
# and 5 nodes (each patient's error is mostly a smooth function of the population
# parameters), for 1/9 of the cost of 3 nodes
AGQ_NODES = 1
HYPER = ("intercept", "sigma_intercept", "change", "sigma_change", "tau_weeks", "noise")


def _nodes():
    x, w = np.polynomial.hermite_e.hermegauss(NODES_PER_AXIS)
    w = w / w.sum()
    u, v = np.meshgrid(x, x, indexing="ij")
    return u.ravel(), v.ravel(), np.outer(w, w).ravel()


NODE_U, NODE_V, NODE_W = _nodes()


def mean_change(theta: dict, week: float, upper: float) -> np.ndarray:
    """(S,) population mean change by ``week`` on the score's scale, for arrays of the
    population parameters (Gauss-Hermite over new patients' baseline and change)."""
    alpha = np.atleast_1d(theta["intercept"])[:, None]
    base = alpha + np.atleast_1d(theta["sigma_intercept"])[:, None] * NODE_U[None, :]
    h = 1.0 - np.exp(-week / np.atleast_1d(theta["tau_weeks"]))[:, None]
    # the simulated truth may correlate baseline and change (rho); the analysis does not
    rho = np.atleast_1d(theta.get("rho", 0.0))[:, None]
    v = rho * NODE_U[None, :] + np.sqrt(1 - rho**2) * NODE_V[None, :]
    change = np.atleast_1d(theta["change"])[:, None] + np.atleast_1d(
        theta["sigma_change"])[:, None] * v
    return upper * ((special.expit(base + change * h) - special.expit(base)) @ NODE_W)


def change_for_mean(theta: dict, target: float, week: float, upper: float) -> float:
    """The population change parameter ``delta`` (logit scale) that makes the mean change by
    ``week`` equal ``target`` with the other parameters of ``theta`` (one draw). A target
    beyond what the score's range allows for these baselines (a draw far in the tail of a
    vague design-prior component) gets the nearest attainable change (delta = +-LIMIT)."""
    def gap(delta):
        return float(mean_change({**theta, "change": np.array([delta])}, week, upper)[0]) \
            - target
    if gap(LIMIT) <= 0:
        return LIMIT
    if gap(-LIMIT) >= 0:
        return -LIMIT
    return optimize.brentq(gap, -LIMIT, LIMIT, xtol=1e-12)


# the largest change on the logit scale a simulated population may have (a change of 30 on
# the logit scale takes any baseline to the floor or ceiling)
LIMIT = 30.0


def patient_marginal(theta: dict, patient, week, value, n: int, upper: float,
                     start: tuple[np.ndarray, np.ndarray] | None = None,
                     modes: list | None = None, nodes: int | None = None) -> np.ndarray:
    """(S,) sum over patients of the Laplace-approximated log marginal likelihood, for (S,)
    arrays of the population parameters (-inf where the approximation breaks down).

    Observations must be sorted by patient. ``start``: (n,) patient modes to start
    Newton's method from (else 0); ``modes``, if given, receives the (S, n) modes found;
    ``nodes`` per axis of the quadrature (default :data:`AGQ_NODES`; 1 is Laplace).
    The work is done by :func:`jdmbayes.planning.laplace_kernel.laplace_marginal`."""
    from jdmbayes.planning.laplace_kernel import laplace_marginal

    if np.any(np.diff(patient) < 0):
        raise ValueError("observations must be sorted by patient")
    offsets = np.searchsorted(patient, np.arange(n + 1)).astype(np.int64)
    arrays = [np.ascontiguousarray(np.atleast_1d(theta[name]), dtype=float) for name in HYPER]
    size = arrays[0].size
    start_b, start_c = (np.zeros(n), np.zeros(n)) if start is None else start
    constant = (special.gammaln(upper + 1) - special.gammaln(value + 1)
                - special.gammaln(upper - value + 1))
    total, mode_b, mode_c = np.empty(size), np.empty((size, n)), np.empty((size, n))
    points, weights = np.polynomial.hermite.hermgauss(nodes or AGQ_NODES)
    laplace_marginal(*arrays, float(upper), offsets, np.asarray(week, float),
                     np.asarray(value, float), constant, np.asarray(start_b, float),
                     np.asarray(start_c, float), points, np.log(weights), total, mode_b, mode_c)
    if modes is not None:
        modes.append((mode_b, mode_c))
    return total


IS_DRAWS = 1024   # a power of 2 (Sobol points)
# importance sampling only where Laplace's posterior probability is within this distance
# of the rule's threshold on the log-odds scale (0.9: between 0.67 and 0.976)
SCREEN = 1.5
PROPOSAL_DF = 7
K_HAT_LIMIT = 0.7
STEP = 1e-3      # finite-difference step in the unconstrained parameters


class ScoreAnalysis:
    """The longitudinal model of a single-arm trial of ``n`` patients, built once; the
    population parameters' prior is the model's own (its log density compiled from it)."""

    def __init__(self, design, n: int, prior_set):
        import pandas as pd
        import pymc as pm
        import pytensor.tensor as pt
        from pymc.pytensorf import join_nonshared_inputs
        from pytensor.graph.replace import vectorize_graph

        from jdmbayes.models.indexing import LongitudinalData, build_group_design
        from jdmbayes.models.longitudinal import build_longitudinal_model

        self.design, self.n = design, n
        self.spec = score_spec(design)
        subjects = pd.DataFrame({"subject_id": [f"t{i + 1}" for i in range(n)]})
        group = build_group_design(subjects, self.spec, str(design.path))
        weeks = np.array([0.0, *design.visits_wk])
        template = LongitudinalData(subjects["subject_id"].tolist(), design.measure,
                                    np.repeat(np.arange(n), weeks.size), np.tile(weeks, n),
                                    np.full(n * weeks.size, design.upper / 2),
                                    pd.DataFrame(), np.full(n, design.followup_wk), group)
        self.model = build_longitudinal_model(template, self.spec, prior_set)
        rvs = [self.model[name] for name in HYPER]
        values = [self.model.rvs_to_values[rv] for rv in rvs]
        self.logged = []
        for rv in rvs:
            transform = self.model.rvs_to_transforms.get(rv)
            if transform is not None and type(transform).__name__ != "LogTransform":
                raise ValueError(f"{rv.name}: unsupported transform {transform}")
            self.logged.append(transform is not None)
        point = self.model.initial_point()
        prior = self.model.logp(vars=rvs, jacobian=True)
        [prior_x], x = join_nonshared_inputs({v.name: point[v.name] for v in values}, [prior],
                                             values)
        batch = pt.matrix("theta_batch")
        self._prior = pm.pytensorf.compile([batch], vectorize_graph(prior_x, {x: batch}))
        self.start = np.array([float(point[v.name]) for v in values])
        self._compiled = None

    def starting_point(self, observations: dict) -> np.ndarray:
        """Where the optimiser starts: moments of the empirical logits (baseline mean and
        SD; change by the last visit, mean and SD), the prior's time constant and
        precision; the prior's initial point where the data are too few."""
        upper, start = self.design.upper, self.start.copy()
        patient, week = observations["obs_patient"], observations["obs_week"]
        logit = special.logit((observations["obs_value"] + 0.5) / (upper + 1.0))
        first = week == 0
        last = np.r_[patient[1:] != patient[:-1], True] & ~first
        baseline = {p: v for p, v in zip(patient[first], logit[first])}
        change = np.array([v - baseline[p] for p, v in zip(patient[last], logit[last])
                           if p in baseline])
        if first.sum() >= 3 and change.size >= 3:
            h = 1.0 - np.exp(-np.median(week[last]) / np.exp(self.start[4]))
            start[0] = logit[first].mean()
            start[1] = np.log(max(logit[first].std(), 0.1))
            start[2] = change.mean() / h
            start[3] = np.log(max(change.std() / h, 0.1))
        return start

    def theta(self, x: np.ndarray) -> dict:
        """Population parameters from (S, 6) unconstrained values."""
        x = np.atleast_2d(x)
        return {name: np.exp(x[:, j]) if logged else x[:, j]
                for j, (name, logged) in enumerate(zip(HYPER, self.logged))}

    def log_posterior(self, x: np.ndarray, observations: dict, start=None,
                      modes: list | None = None, nodes: int | None = None) -> np.ndarray:
        """(S,) log posterior of the population parameters with the patient effects
        integrated out; ``start``, ``modes`` and ``nodes`` as :func:`patient_marginal`."""
        x = np.atleast_2d(x)
        marginal = patient_marginal(self.theta(x), observations["obs_patient"],
                                    observations["obs_week"], observations["obs_value"],
                                    self.n, self.design.upper, start, modes, nodes)
        return self._prior(x) + marginal

    def _taylor(self, x, observations, start):
        """Value, gradient and Hessian of the log posterior at ``x`` by central differences,
        every point in one vectorised call (1 + 2d + 2d(d-1) points)."""
        d = x.size
        eye = np.eye(d) * STEP
        pairs = [(i, j) for i in range(d) for j in range(i + 1, d)]
        points = [x, *(x + e for e in eye), *(x - e for e in eye)]
        for i, j in pairs:
            points += [x + eye[i] + eye[j], x + eye[i] - eye[j], x - eye[i] + eye[j],
                       x - eye[i] - eye[j]]
        values = self.log_posterior(np.array(points), observations, start)
        centre, plus, minus = values[0], values[1:d + 1], values[d + 1:2 * d + 1]
        gradient = (plus - minus) / (2 * STEP)
        hessian = np.diag((plus - 2 * centre + minus) / STEP**2)
        for k, (i, j) in enumerate(pairs):
            pp, pm, mp, mm = values[2 * d + 1 + 4 * k: 2 * d + 5 + 4 * k]
            hessian[i, j] = hessian[j, i] = (pp - pm - mp + mm) / (4 * STEP**2)
        return centre, gradient, hessian

    def posterior_mode(self, observations: dict):
        """Mode and Hessian of the log posterior of the population parameters (BFGS with
        central-difference gradients, then the finite-difference Hessian); each patient's
        mode at the last point evaluated starts Newton's method of the patient integrals at
        the next. None if the log posterior is not finite at the start."""
        warm = [None]

        def negative(x):
            modes = []
            value = self.log_posterior(x, observations, warm[0], modes)[0]
            if not np.isfinite(value):
                return np.inf, np.zeros_like(x)
            warm[0] = (modes[0][0][0], modes[0][1][0])
            d = x.size
            shifts = np.vstack([np.eye(d) * STEP, -np.eye(d) * STEP])
            values = self.log_posterior(x[None, :] + shifts, observations, warm[0])
            return -value, -(values[:d] - values[d:]) / (2 * STEP)

        start = self.starting_point(observations)
        if not np.isfinite(negative(start)[0]):
            return None
        found = optimize.minimize(negative, start, jac=True, method="BFGS",
                                  options={"gtol": 1e-4, "maxiter": 400})
        negative(found.x)
        _, _, hessian = self._taylor(found.x, observations, warm[0])
        return found.x, hessian, warm[0]

    def fast(self, observations: dict, rng: np.random.Generator):
        """Laplace over the population parameters of the patient-marginal posterior,
        corrected by PSIS near the decision; None when it cannot be trusted."""
        from arviz_stats.base import array_stats

        found = self.posterior_mode(observations)
        if found is None:
            return None
        mode, hessian, warm = found
        try:
            covariance = np.linalg.inv(-hessian)
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            return None
        # Laplace's approximation alone decides a trial whose posterior probability is far
        # from the rule's threshold; importance sampling refines the others
        gaussian = qmc_student_t(mode, covariance, np.inf, IS_DRAWS, rng)
        effect = mean_change(self.theta(gaussian), self.design.endpoint_week,
                             self.design.upper)
        probability = rule_probability(self.design, effect)
        edge = 0.5 / IS_DRAWS
        distance = special.logit(np.clip(probability, edge, 1 - edge)) - special.logit(
            self.design.success.probability)
        if abs(distance) > SCREEN:
            lower, upper = interval(self.design, effect)
            return TrialAnalysis(probability, lower, upper, "laplace")
        # a proposal of the Laplace width first; if its Pareto k says it misses the
        # posterior's tails, once more twice as wide with four times the draws
        for inflation, count in ((1.0, IS_DRAWS), (2.0, 4 * IS_DRAWS)):
            spread = covariance * inflation**2
            proposal = stats.multivariate_t(mode, spread, df=PROPOSAL_DF)
            draws = qmc_student_t(mode, spread, PROPOSAL_DF, count, rng)
            log_ratio = self.log_posterior(draws, observations, warm) - proposal.logpdf(draws)
            finite = np.isfinite(log_ratio)
            if finite.mean() < 0.99:
                continue
            log_ratio = np.where(finite, log_ratio, log_ratio[finite].min() - 50.0)
            log_weights, k_hat = array_stats.psislw(log_ratio.max() - log_ratio)
            if float(k_hat) <= K_HAT_LIMIT:
                weights = np.exp(log_weights - log_weights.max())
                effect = mean_change(self.theta(draws), self.design.endpoint_week,
                                     self.design.upper)
                lower, upper = interval(self.design, effect, weights)
                return TrialAnalysis(rule_probability(self.design, effect, weights), lower,
                                     upper, "fast", float(k_hat))
        return None

    def mcmc(self, observations: dict, seed: int, chains: int = 4, draws: int = 1000,
             tune: int = 1000):
        """NUTS (nutpie) on the full model (patient effects sampled), compiled once."""
        import nutpie

        from jdmbayes.inference.compiled import compile_cached

        if self._compiled is None:
            self._compiled, _ = compile_cached(self.model, [v.name for v in self.model.free_RVs])
        compiled = self._compiled.with_data(**observations)
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                              cores=1, progress_bar=False, target_accept=0.95)
        posterior = idata["posterior"]
        theta = {name: np.asarray(posterior[name]).reshape(-1) for name in HYPER}
        effect = mean_change(theta, self.design.endpoint_week, self.design.upper)
        lower, upper = interval(self.design, effect)
        return TrialAnalysis(rule_probability(self.design, effect), lower, upper, "mcmc")


def qmc_student_t(mean: np.ndarray, covariance: np.ndarray, df: float, count: int,
                  rng: np.random.Generator) -> np.ndarray:
    """(count, d) draws of a multivariate Student t from a scrambled Sobol sequence (a
    randomised quasi-Monte Carlo rule: unbiased, with far less variance than independent
    draws for the smooth part of the integrand; Owen 1997)."""
    d = mean.size
    points = stats.qmc.Sobol(d + 1, scramble=True, seed=rng).random(count)
    points = np.clip(points, 1e-12, 1 - 1e-12)
    normal = stats.norm.ppf(points[:, :d]) @ np.linalg.cholesky(covariance).T
    if np.isinf(df):          # the normal distribution
        return mean + normal
    scale = np.sqrt(df / stats.chi2.ppf(points[:, d], df))
    return mean + normal * scale[:, None]


def score_spec(design):
    """The longitudinal spec each single-arm trial is analysed with."""
    from jdmbayes.models.spec import ModelSpec

    return ModelSpec(name=f"{design.name}_analysis", kind="longitudinal", path=design.path,
                     raw={}, measure=design.measure, likelihood="beta_binomial",
                     upper=float(design.upper), shape="plateau", correlation=False,
                     patient_effects="non_centred", final_week=design.endpoint_week,
                     summary_weeks=(design.endpoint_week,), prior_set=design.analysis_priors)
