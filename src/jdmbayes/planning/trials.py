"""One simulated trial's data, given one truth from the design prior.

Time to event: the milestone model's generative process (:mod:`jdmbayes.models.milestones`)
for a new patient of arm ``a``: a frailty ``u ~ N(0, sigma_patient)``, gap ``k`` with
``log G_k = alpha_k + location_a + u + sigma_k * epsilon``, and the outcome's time the sum of
the gaps up to it. The trial sees it only at its visits: in the interval between the visits
around it (left-censored before the first), right-censored at the last visit attended when it
is later; dropout is exponential at the design's rate, and a patient who drops out before the
first visit contributes nothing. Patients ``0..n-1`` are the treatment arm, ``n..2n-1`` the
control arm.
"""

from __future__ import annotations

import numpy as np

from jdmbayes.models import families
from jdmbayes.models.indexing import INTERVAL, NONE, RIGHT
from jdmbayes.planning.design import TrialDesign

WEEKS_PER_YEAR = 365.25 / 7.0


def event_times(family: str, effect: float, nuisance: dict, n: int,
                rng: np.random.Generator) -> np.ndarray:
    """(2n,) true times of the design's outcome: treatment arm first, then control."""
    return times_at(family, np.repeat([nuisance["location_control"] + effect,
                                       nuisance["location_control"]], n), nuisance, rng)


def times_at(family: str, location: np.ndarray, nuisance: dict,
             rng: np.random.Generator) -> np.ndarray:
    """True times of the outcome of new patients at ``location`` (one per patient): the
    sum of their gaps, with a frailty each."""
    m = len(location)
    frailty = rng.normal(0.0, 1.0, m) * nuisance["sigma_patient"]
    alpha, sigma = np.atleast_1d(nuisance["intercept"]), np.atleast_1d(nuisance["dispersion"])
    eps = families.np_standard_error(family, rng, (m, len(alpha)))
    log_gaps = alpha[None, :] + (location + frailty)[:, None] + sigma[None, :] * eps
    return np.exp(log_gaps).sum(axis=1)


def observe_at_visits(design: TrialDesign, times: np.ndarray,
                      rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The milestone model's observation arrays (one outcome) of ``times`` seen at the
    design's visits with its dropout: ``obs_kind``, ``obs_time_lo``, ``obs_time_hi``,
    ``obs_origin``."""
    m = len(times)
    visits = np.asarray(design.visits_wk, float)
    end = np.full(m, design.followup_wk)
    if design.dropout_per_year > 0:
        end = np.minimum(end, rng.exponential(WEEKS_PER_YEAR / design.dropout_per_year, m))
    attended = np.searchsorted(visits, end, side="right")      # visits seen: visits[:attended]
    last = np.where(attended > 0, visits[np.maximum(attended - 1, 0)], 0.0)
    position = np.searchsorted(visits, times, side="left")     # first visit at or after
    seen = (attended > 0) & (times <= last)
    kind = np.where(attended == 0, NONE, np.where(seen, INTERVAL, RIGHT))
    hi = np.where(seen, visits[np.minimum(position, len(visits) - 1)], last)
    lo = np.where(seen & (position > 0), visits[np.maximum(position - 1, 0)], 0.0)
    hi = np.where(kind == NONE, 1.0, hi)
    return {"obs_kind": kind.astype(int), "obs_time_lo": lo, "obs_time_hi": hi,
            "obs_origin": np.zeros(m)}


def simulate_normal(design: TrialDesign, effect: float, n: int,
                    rng: np.random.Generator) -> np.ndarray:
    """(2,) the two arms' sample means of ``n`` patients each (treatment, control)."""
    treated = rng.normal(effect, design.sd, n)
    control = rng.normal(0.0, design.sd, n)
    return np.array([treated.mean(), control.mean()])


def simulate_scores(design: TrialDesign, effect: float, theta: dict, n: int,
                    rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A single-arm trial of a bounded score: the longitudinal model's observation arrays
    (``obs_patient``, ``obs_week``, ``obs_value``) of ``n`` new patients measured at
    baseline and at each visit until follow-up or dropout, from population parameters
    ``theta`` with the change set so that the population mean change by the design's
    ``endpoint_week`` is ``effect`` (:func:`~jdmbayes.planning.score_analysis.change_for_mean`)."""
    from scipy import special

    from jdmbayes.planning.score_analysis import change_for_mean

    theta = {k: np.atleast_1d(v) for k, v in theta.items()}
    delta = change_for_mean(theta, effect, design.endpoint_week, design.upper)
    u, v = rng.standard_normal(n), rng.standard_normal(n)
    rho = float(theta.get("rho", [0.0])[0])
    v = rho * u + np.sqrt(1 - rho**2) * v
    baseline = theta["intercept"][0] + theta["sigma_intercept"][0] * u
    change = delta + theta["sigma_change"][0] * v
    end = np.full(n, design.followup_wk)
    if design.dropout_per_year > 0:
        end = np.minimum(end, rng.exponential(WEEKS_PER_YEAR / design.dropout_per_year, n))
    weeks = np.array([0.0, *design.visits_wk])
    patient = np.repeat(np.arange(n), weeks.size)
    week = np.tile(weeks, n)
    seen = week <= end[patient]
    patient, week = patient[seen], week[seen]
    mu = baseline[patient] + change[patient] * (1 - np.exp(-week / theta["tau_weeks"][0]))
    p = np.clip(special.expit(mu), 1e-12, 1 - 1e-12)
    phi = theta["noise"][0]
    value = rng.binomial(int(design.upper), rng.beta(p * phi, (1 - p) * phi)).astype(float)
    return {"obs_patient": patient, "obs_week": week, "obs_value": value}


# common random numbers for the probability of the event by a week (a smooth Monte Carlo
# estimate: the last gap's distribution function is averaged over simulated earlier gaps
# and frailties, so the estimate is smooth and monotone in the location)
PROBABILITY_DRAWS = 4096


def _common_numbers(family: str, gaps: int):
    """Frailties and earlier gaps' errors from one scrambled Sobol sequence (fixed seed):
    quasi-random points give the probability to about 1e-3 with 4,096 of them."""
    from scipy import special, stats

    points = stats.qmc.Sobol(gaps, scramble=True, seed=20240611).random(PROBABILITY_DRAWS)
    points = np.clip(points, 1e-12, 1 - 1e-12)
    error = {"weibull": lambda v: np.log(-np.log1p(-v)), "lognormal": special.ndtri,
             "loglogistic": special.logit}[family]
    return special.ndtri(points[:, 0]), error(points[:, 1:])


def event_probability(family: str, nuisance: dict, location, week: float) -> np.ndarray:
    """(S,) probability that a new patient at ``location`` (S,) reaches the outcome by
    ``week``: the sum of the gaps up to it, marginal over the frailty."""
    from scipy import special

    alpha = np.atleast_2d(nuisance["intercept"])                    # (S, K)
    sigma = np.atleast_2d(nuisance["dispersion"])
    spread = np.atleast_1d(nuisance["sigma_patient"])
    location = np.atleast_1d(location)
    u, eps = _common_numbers(family, alpha.shape[1])
    shift = location[:, None] + spread[:, None] * u[None, :]        # (S, M)
    before = np.zeros_like(shift)
    for k in range(alpha.shape[1] - 1):
        before = before + np.exp(alpha[:, k:k + 1] + shift + sigma[:, k:k + 1] * eps[None, :, k])
    left = week - before
    z = (np.log(np.maximum(left, 1e-300)) - alpha[:, -1:] - shift) / sigma[:, -1:]
    log_s = {"weibull": lambda z: -np.exp(z),
             "lognormal": lambda z: special.log_ndtr(-z),
             "loglogistic": lambda z: -np.logaddexp(0.0, z)}[family](z)
    return np.where(left > 0, -np.expm1(log_s), 0.0).mean(axis=1)


def location_for_probability(family: str, nuisance: dict, target: float,
                             week: float) -> float:
    """The arm location (log-time scale) at which the probability of the event by ``week``
    is ``target``, for one draw of the other parameters (bounded by +-50)."""
    from scipy import optimize

    def gap(location):
        return float(event_probability(family, nuisance, np.array([location]), week)[0]) \
            - target
    if gap(-50.0) <= 0:
        return -50.0
    if gap(50.0) >= 0:
        return 50.0
    return optimize.brentq(gap, -50.0, 50.0, xtol=1e-10)


def single_arm_times(family: str, location: float, nuisance: dict, n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """(n,) true times of the outcome for ``n`` new patients at ``location``."""
    return times_at(family, np.full(n, float(location)), nuisance, rng)
