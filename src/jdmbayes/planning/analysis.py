r"""Each simulated trial analysed by the package's own model, fast or by full MCMC.

Time to event: the trial is analysed by :func:`jdmbayes.models.milestones.build_milestone_model`
with the design's one outcome, its family, one grouping column (the arm, control the
reference) and the design's analysis prior set, so the effect is ``beta_group``, the log
time ratio treatment/control. One model is built and compiled per trial size; each trial
swaps its observations in as data.

Fast analysis (the default where the check against MCMC passes,
``validation/plan-agreement/``): Laplace's approximation at the posterior mode in the
sampler's unconstrained space, then corrected by Pareto-smoothed importance sampling
(Vehtari et al. 2024) with a multivariate Student-t proposal (7 degrees of freedom) of that
mode and curvature. The importance weights make it the exact posterior up to Monte Carlo
error whenever the proposal covers it; the Pareto :math:`\hat k` says when it does not
(:math:`\hat k > 0.7`), and that trial is analysed by MCMC instead (counted in the plan).

Normal endpoint: the conjugate update of a normal prior (or flat) by the difference of two
means with known SD, exact.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from jdmbayes.planning.decision import TrialAnalysis, interval, rule_probability
from jdmbayes.planning.design import TrialDesign

IS_DRAWS = 1000
PROPOSAL_DF = 7
K_HAT_LIMIT = 0.7


def analyse_normal(design: TrialDesign, means: np.ndarray, n: int) -> TrialAnalysis:
    """Conjugate normal analysis of the difference in means (known SD)."""
    variance = 2 * design.sd**2 / n
    prior_sd = design.analysis_prior["sd"]
    precision = 1 / variance + (0.0 if math.isinf(prior_sd) else prior_sd**-2)
    prior_term = 0.0 if math.isinf(prior_sd) else design.analysis_prior["mean"] / prior_sd**2
    mean = ((means[0] - means[1]) / variance + prior_term) / precision
    sd = precision**-0.5
    z = (design.success.value - mean) / sd
    probability = special.ndtr(z) if design.success.comparison == "<" else special.ndtr(-z)
    half = stats.norm.ppf(0.5 + design.interval_prob / 2) * sd
    return TrialAnalysis(float(probability), mean - half, mean + half, "exact")


class TimeToEventAnalysis:
    """The milestone model of a two-arm trial of ``n`` per arm, built and compiled once."""

    def __init__(self, design: TrialDesign, n: int, prior_set):
        import pymc as pm
        import pytensor
        import pytensor.tensor as pt
        from pymc.pytensorf import join_nonshared_inputs
        from pytensor.graph.replace import vectorize_graph

        from jdmbayes.models.indexing import INTERVAL, MilestoneData, build_group_design
        from jdmbayes.models.milestones import build_milestone_model

        self.design, self.n, self.prior_set = design, n, prior_set
        self.spec = analysis_spec(design)
        labels = [a.label for a in design.arms for _ in range(n)]
        size = len(labels)              # 2n for two arms, n for one
        subjects = pd.DataFrame({"subject_id": [f"t{i + 1}" for i in range(size)],
                                 "arm": labels})
        group = build_group_design(subjects, self.spec, str(design.path))
        template = MilestoneData(subjects["subject_id"].tolist(), (design.outcome,),
                                 np.full((size, 1), INTERVAL), np.ones((size, 1)),
                                 np.zeros((size, 1)), np.ones(size), group)
        self.model = build_milestone_model(template, self.spec, prior_set)
        point = self.model.initial_point()
        values = self.model.value_vars
        logp = self.model.logp(jacobian=True)
        dlogp = pt.grad(logp, values)
        dlogp = pt.concatenate([g.ravel() for g in dlogp])
        [logp_x, dlogp_x], x = join_nonshared_inputs(point, [logp, dlogp], values)
        self._value_and_grad = pytensor.function([x], [logp_x, dlogp_x])
        batch = pt.matrix("x_batch")
        self._batch_logp = pytensor.function([batch], vectorize_graph(logp_x, {x: batch}))
        offsets, start = {}, 0
        for v in values:
            size = int(np.prod(point[v.name].shape))
            offsets[v.name] = (start, size)
            start += size
        self.size = start
        self.start = np.concatenate([np.ravel(point[v.name]) for v in values])
        self.offsets = offsets
        self._pm = pm
        self._compiled = None

    def event_log_odds(self, intercept, dispersion) -> np.ndarray:
        """Log-odds of the event by the design's week under the analysis model (one arm)."""
        from jdmbayes.models import families

        log_s = families.np_log_survival(self.design.family, self.design.endpoint_week,
                                         intercept, dispersion)
        return special.logit(-np.expm1(log_s))

    def set_data(self, observations: dict[str, np.ndarray]) -> None:
        self._pm.set_data(observations, model=self.model)

    def fast(self, observations: dict[str, np.ndarray],
             rng: np.random.Generator) -> TrialAnalysis | None:
        """Laplace + PSIS; None when the importance sampling cannot be trusted."""
        self.set_data(observations)

        def negative(x):
            value, grad = self._value_and_grad(x)
            return -float(value), -np.asarray(grad, float)

        found = optimize.minimize(negative, self.start, jac=True, method="BFGS",
                                  options={"gtol": 1e-6, "maxiter": 500})
        mode = found.x
        hessian = np.empty((self.size, self.size))
        step = 1e-4
        for j in range(self.size):
            shift = np.zeros(self.size)
            shift[j] = step
            hessian[j] = (negative(mode + shift)[1] - negative(mode - shift)[1]) / (2 * step)
        hessian = (hessian + hessian.T) / 2
        try:
            covariance = np.linalg.inv(hessian)
            np.linalg.cholesky(covariance)
        except np.linalg.LinAlgError:
            return None
        proposal = stats.multivariate_t(mode, covariance, df=PROPOSAL_DF, seed=rng)
        draws = proposal.rvs(IS_DRAWS).reshape(IS_DRAWS, self.size)
        log_ratio = self._batch_logp(draws) - proposal.logpdf(draws)
        if not np.all(np.isfinite(log_ratio)):
            return None
        from arviz_stats.base import array_stats

        # arviz-stats takes the LOO convention (log weights are minus its argument)
        log_weights, k_hat = array_stats.psislw(log_ratio.max() - log_ratio)
        k_hat = float(k_hat)
        if k_hat > K_HAT_LIMIT:
            return None
        weights = np.exp(log_weights - log_weights.max())
        if len(self.design.arms) == 2:
            effect = draws[:, self.offsets["beta_group"][0]]
        else:
            effect = self.event_log_odds(draws[:, self.offsets["intercept"][0]],
                                         np.exp(draws[:, self.offsets["dispersion_log__"][0]]))
        lower, upper = interval(self.design, effect, weights)
        return TrialAnalysis(rule_probability(self.design, effect, weights), lower, upper,
                             "fast", k_hat)

    def mcmc(self, observations: dict[str, np.ndarray], seed: int, chains: int = 4,
             draws: int = 1000, tune: int = 1000) -> TrialAnalysis:
        """NUTS (nutpie) on the same model, compiled once per trial size."""
        import nutpie

        from jdmbayes.inference.compiled import compile_cached

        if self._compiled is None:
            self._compiled, _ = compile_cached(self.model, [v.name for v in self.model.free_RVs])
        compiled = self._compiled.with_data(**observations)
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                              cores=1, progress_bar=False)
        posterior = idata["posterior"]
        if len(self.design.arms) == 2:
            effect = np.asarray(posterior["beta_group"]).reshape(-1)
        else:
            effect = self.event_log_odds(np.asarray(posterior["intercept"]).reshape(-1),
                                         np.asarray(posterior["dispersion"]).reshape(-1))
        lower, upper = interval(self.design, effect)
        return TrialAnalysis(rule_probability(self.design, effect), lower, upper, "mcmc")


def analysis_spec(design: TrialDesign):
    """The milestone spec each trial is analysed with."""
    from jdmbayes.models.spec import ModelSpec

    if len(design.arms) == 1:        # a single arm: no grouping, no contrast
        grouping, contrasts = (), ()
    else:
        treatment, control = (a.label for a in design.arms)
        grouping, contrasts = ("arm",), (("arm", treatment, control),)
    return ModelSpec(name=f"{design.name}_analysis", kind="milestones", path=design.path,
                     raw={}, grouping=grouping, contrasts=contrasts,
                     prior_set=design.analysis_priors, outcomes=(design.outcome,),
                     family=design.family, frailty="none", cell_deviations="non_centred")

