r"""Assurance and operating characteristics by simulating and analysing trials.

For each sample size ``n`` per arm and each scenario, trials are simulated and each is
analysed (:mod:`jdmbayes.planning.analysis`); the trial succeeds when the design's rule holds.

- **Assurance** (O'Hagan & Stevens 2001): the scenario ``design prior``, each trial's truth
  drawn from the (robustified) design prior. Its Monte Carlo SE is
  :math:`\sqrt{\hat p(1-\hat p)/T}` for ``T`` trials.
- **Operating characteristics**: the scenario ``effect = x``, the effect fixed at ``x`` (the
  nuisance parameters still drawn from the design prior); at the null effect this is the
  type I error of the rule. The null is always simulated.

Trial ``t`` of scenario ``s`` at size ``n`` has its own generator,
``SeedSequence([seed, s, n, t])``, so results do not depend on how trials are split into
chunks or workers. Chunks run on Dask (:func:`run_trials`); each worker builds and compiles
the analysis model once per size and reuses it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jdmbayes.planning.analysis import TimeToEventAnalysis, analyse_normal, analysis_spec
from jdmbayes.planning.design import TrialDesign
from jdmbayes.planning.design_prior import DesignPrior
from jdmbayes.planning.score_analysis import ScoreAnalysis, score_spec
from jdmbayes.planning.trials import (
    event_times,
    location_for_probability,
    observe_at_visits,
    simulate_normal,
    simulate_scores,
    single_arm_times,
)

DESIGN_PRIOR = "design prior"
CHUNK = 250
TRIAL_COLUMNS = ["scenario", "n_per_arm", "trial", "true_effect", "vague_component",
                 "probability", "success", "lower", "upper", "method", "k_hat"]


def scenarios(design: TrialDesign) -> list[tuple[str, float | None]]:
    """(name, fixed effect or None): the design prior, then each fixed effect (the null
    first, always included)."""
    fixed = [design.null_effect] + [e for e in design.fixed_effects if e != design.null_effect]
    return [(DESIGN_PRIOR, None)] + [(f"effect = {e:g}", e) for e in fixed]


@dataclass(frozen=True)
class Chunk:
    scenario: int
    n: int
    first: int
    count: int

    @property
    def name(self) -> str:
        return f"s{self.scenario}_n{self.n}_t{self.first}"


def chunks(design: TrialDesign, trials: int, size: int = CHUNK) -> list[Chunk]:
    return [Chunk(s, n, first, min(size, trials - first))
            for s in range(len(scenarios(design))) for n in design.n_per_arm
            for first in range(0, trials, size)]


_ANALYSES: dict = {}


def analysis_for(design: TrialDesign, n: int, prior_set):
    """The compiled analysis model of size ``n`` (a :class:`TimeToEventAnalysis` or a
    :class:`ScoreAnalysis`), built at most once per process."""
    # everything the built model depends on: the design's every key and the priors' values
    key = (json.dumps(design.raw, sort_keys=True, default=str), str(design.path), n,
           json.dumps(prior_set.as_dicts(), sort_keys=True, default=str))
    if key not in _ANALYSES:
        kind = ScoreAnalysis if design.endpoint == "change" else TimeToEventAnalysis
        _ANALYSES[key] = kind(design, n, prior_set)
    return _ANALYSES[key]


def trial_rng(seed: int, scenario: int, n: int, trial: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, scenario, n, trial]))


def simulate_and_analyse(design: TrialDesign, prior: DesignPrior, prior_set, chunk: Chunk,
                         seed: int, method: str) -> pd.DataFrame:
    """Every trial of ``chunk``: its truth, its analysis and whether it succeeded.

    ``method``: ``fast`` (Laplace + PSIS, MCMC where the Pareto k says it cannot be
    trusted), ``mcmc`` (every trial by NUTS) or ``both`` (each trial both ways: the
    agreement check; the row's ``probability`` is the fast one, ``probability_mcmc`` the
    other)."""
    name, fixed = scenarios(design)[chunk.scenario]
    rows = []
    for trial in range(chunk.first, chunk.first + chunk.count):
        rng = trial_rng(seed, chunk.scenario, chunk.n, trial)
        effect, nuisance, vague = prior.draw(design, 1, rng, fixed)
        effect, vague = float(effect[0]), bool(vague[0])
        nuisance = {k: v[0] for k, v in nuisance.items()}
        extra = {}
        if design.endpoint == "normal":
            result = analyse_normal(design, simulate_normal(design, effect, chunk.n, rng),
                                    chunk.n)
        else:
            analysis = analysis_for(design, chunk.n, prior_set)
            if design.endpoint == "change":
                observations = simulate_scores(design, effect, nuisance, chunk.n, rng)
            elif design.endpoint == "event_by_week":
                location = location_for_probability(
                    prior.source["family"], nuisance, float(design.from_analysis_scale(effect)),
                    design.endpoint_week)
                observations = observe_at_visits(design, single_arm_times(
                    prior.source["family"], location, nuisance, chunk.n, rng), rng)
            else:
                observations = observe_at_visits(design, event_times(
                    prior.source["family"], effect, nuisance, chunk.n, rng), rng)
            mcmc_seed = int(rng.integers(2**31))
            result = None if method == "mcmc" else analysis.fast(observations, rng)
            if method == "both":
                exact = analysis.mcmc(observations, mcmc_seed)
                extra = {"probability_mcmc": exact.probability,
                         "success_mcmc": exact.probability > design.success.probability,
                         "fast_usable": result is not None}
            if result is None:
                result = analysis.mcmc(observations, mcmc_seed)
        true_effect = float(design.from_analysis_scale(effect))
        rows.append({"scenario": name, "n_per_arm": chunk.n, "trial": trial,
                     "true_effect": true_effect, "vague_component": vague,
                     "probability": result.probability,
                     "success": result.probability > design.success.probability,
                     "lower": result.lower, "upper": result.upper, "method": result.method,
                     "k_hat": result.k_hat, **extra})
    return pd.DataFrame(rows)


def plan_table(design: TrialDesign, trials: pd.DataFrame) -> pd.DataFrame:
    """One row per size: assurance and its MCSE, type I error, success probability at each
    fixed effect, expected interval width, and how many trials needed MCMC."""
    null = f"effect = {design.null_effect:g}"
    rows = []
    for n, at_n in trials.groupby("n_per_arm", sort=True):
        row = {"n_per_arm": int(n)}
        for name, group in at_n.groupby("scenario", sort=False):
            p = float(group["success"].mean())
            mcse = math.sqrt(p * (1 - p) / len(group))
            if name == DESIGN_PRIOR:
                width = group["upper"] - group["lower"]
                row.update(assurance=p, assurance_mcse=mcse, trials=len(group),
                           expected_interval_width=float(width.mean()),
                           expected_interval_width_mcse=float(width.std(ddof=1)
                                                              / math.sqrt(len(group))))
            elif name == null:
                row.update(type1_error=p, type1_error_mcse=mcse)
            else:
                label = name.replace("effect = ", "")
                row[f"success_at_effect_{label}"] = p
                row[f"success_at_effect_{label}_mcse"] = mcse
        row["trials_analysed_by_mcmc"] = int((at_n["method"] == "mcmc").sum())
        row["trials_total"] = len(at_n)
        rows.append(row)
    first = ["n_per_arm", "assurance", "assurance_mcse", "type1_error", "type1_error_mcse",
             "expected_interval_width", "expected_interval_width_mcse"]
    table = pd.DataFrame(rows)
    return table[first + [c for c in table.columns if c not in first]]


def operating_characteristics(trials: pd.DataFrame) -> pd.DataFrame:
    """Long table: probability of success by size and scenario, with its MCSE."""
    rows = []
    for (scenario, n), group in trials.groupby(["scenario", "n_per_arm"], sort=False):
        p = float(group["success"].mean())
        rows.append({"scenario": scenario, "n_per_arm": int(n), "probability_of_success": p,
                     "mcse": math.sqrt(p * (1 - p) / len(group)), "trials": len(group)})
    return pd.DataFrame(rows).sort_values(["scenario", "n_per_arm"], kind="stable")


def effective_sample_size(design: TrialDesign, prior: DesignPrior,
                          trials: pd.DataFrame) -> dict:
    """Moment-method ESS of the design prior's informative component, in patients per arm
    (:mod:`jdmbayes.planning.design_prior`)."""
    largest = max(design.n_per_arm)
    at = trials[(trials["scenario"] == DESIGN_PRIOR) & (trials["n_per_arm"] == largest)]
    from scipy import stats

    z = stats.norm.ppf(0.5 + design.interval_prob / 2)
    lower, upper = at["lower"].to_numpy(), at["upper"].to_numpy()
    lower, upper = design.to_analysis_scale(lower), design.to_analysis_scale(upper)
    posterior_var = float(np.mean(((upper - lower) / (2 * z)) ** 2))
    unit = largest * posterior_var
    return {"method": "moment (unit variance n * posterior variance at the largest size, "
                      "under the design)",
            "ess_patients_per_arm": unit / prior.informative_variance(),
            "unit_variance": unit, "design_prior_effect_variance": prior.informative_variance(),
            "informative_weight": 1 - design.robust_weight}


def analysis_prior_set(design: TrialDesign):
    """The named prior set the design's trials are analysed with, read for the analysis
    model's kind (milestones, or the longitudinal model of a score)."""
    from jdmbayes.models.measure_scale import scale_priors
    from jdmbayes.models.spec import load_prior_set

    if design.endpoint == "change":
        spec = score_spec(design)
        return scale_priors(load_prior_set(design.analysis_priors, spec), spec, None)
    return load_prior_set(design.analysis_priors, analysis_spec(design))
