"""Convergence diagnostics of a fit and the verdict against the gates."""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np

from jdmbayes.inference.convergence import convergence
from jdmbayes.inference.draws import group_dataset
from jdmbayes.inference.summarise import TAIL

GATES = {"r_hat_max": 1.01, "ess_min": 400, "divergences_max": 0, "ebfmi_min": 0.3}
ADVICE = {
    "r_hat": "chains disagree: run longer (--tune, --draws) or check for multimodality",
    "ess_bulk": "too few effective draws: increase --draws (and --chains)",
    "ess_tail": "tails poorly explored: increase --draws; check heavy-tailed priors",
    "divergences": "divergent transitions: the posterior has regions the sampler cannot "
                   "follow; reparameterise or tighten weakly identified priors",
    "ebfmi": "low E-BFMI: the sampler explores energy poorly; reparameterise "
             "(non-centred random effects) or use more informative hyperpriors",
}


# why a patient's Pareto k can exceed 0.7, by what the per-patient log-likelihood is
LOO_CAUSES = {
    "conditional": "conditional LOO with one random effect per patient",
    "marginal": "LOO on each patient's marginal likelihood: these patients' values move the "
                "posterior too far for importance sampling"}
# ArviZ's Pareto smoothing (PSIS: LOO and power-scaling) fits a Pareto tail to the largest
# log densities of the draws, and raises where it cannot: these are its reasons, in words
PSIS_FAILURES = {
    "tail values are the same": "the largest log densities are all equal across the draws "
                                "(the chains barely moved)",
    "n_draws_tail must be at least": "too few draws for Pareto smoothing (at least 25 in "
                                     "all)"}


def psis_failure(error: ValueError) -> str | None:
    """Why ArviZ's Pareto smoothing failed, in words; None for any other error."""
    return next((words for text, words in PSIS_FAILURES.items() if text in str(error)), None)


def diagnose(idata, parameters: list[str], loglik_var: str | None = None,
             loglik_kind: str = "conditional",
             earlier: tuple[list[str], dict] | None = None) -> dict:
    """Max R-hat, min ESS, divergences, E-BFMI per chain, max Pareto k and the verdict;
    ``loglik_kind`` says whether the per-patient log-likelihood is conditional on the
    patient's effects or marginal (the warning names the cause). ``earlier``: (parameters
    judged, result) of this function on the same draws (the gates judged right after
    sampling); its R-hat, ESS, divergences and E-BFMI are taken as they are when it judged
    the same parameters, else they are computed again."""
    posterior = group_dataset(idata, "posterior")
    judged = [p for p in parameters if p in posterior]
    if earlier is not None and earlier[0] == judged:
        result = {k: earlier[1][k] for k in CONVERGENCE_KEYS}
    else:
        result = _convergence(idata, posterior[judged])
    return _with_loo_and_verdict(result, idata, loglik_var, loglik_kind)


# the keys of diagnose's result that depend on the posterior draws and sample stats alone
CONVERGENCE_KEYS = ("r_hat_max", "ess_bulk_min", "ess_tail_min", "divergences",
                    "ebfmi_per_chain", "n_draws", "r_hat_max_at", "ess_bulk_min_at",
                    "ess_tail_min_at")


def _convergence(idata, posterior) -> dict:
    # ArviZ's R-hat and ESS, computed a block of elements at a time (the same numbers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat, ess_bulk, ess_tail = convergence(posterior, TAIL)
    def extreme(dataset, fn):
        values = np.concatenate([np.atleast_1d(v.values).ravel() for v in dataset.values()])
        values = values[np.isfinite(values)]
        return float(fn(values)) if values.size else float("nan")

    def where(dataset, value) -> str:
        """The parameter (and element) that has ``value``: the gate's worst."""
        for name, array in dataset.items():
            hits = np.argwhere(np.atleast_1d(array.values) == value)
            if hits.size:
                if array.ndim == 0:
                    return str(name)
                labels = [str(array[dim].values[i]) if dim in array.coords else str(i)
                          for dim, i in zip(array.dims, hits[0])]
                return f"{name}[{', '.join(labels)}]"
        return ""

    stats = idata.sample_stats
    divergences = int(stats["diverging"].sum()) if "diverging" in stats else 0
    ebfmi = ([float(x) for x in az.bfmi(idata)["energy"].values] if "energy" in stats
             else [])
    result = {
        "r_hat_max": extreme(rhat, np.max),
        "ess_bulk_min": extreme(ess_bulk, np.min),
        "ess_tail_min": extreme(ess_tail, np.min),
        "divergences": divergences,
        "ebfmi_per_chain": ebfmi,
        "n_draws": int(posterior.sizes["chain"] * posterior.sizes["draw"]),
    }
    # the parameter each of these extremes belongs to (the failure messages name it)
    result.update(r_hat_max_at=where(rhat, result["r_hat_max"]),
                  ess_bulk_min_at=where(ess_bulk, result["ess_bulk_min"]),
                  ess_tail_min_at=where(ess_tail, result["ess_tail_min"]))
    return result


def _with_loo_and_verdict(result: dict, idata, loglik_var: str | None,
                          loglik_kind: str) -> dict:
    divergences, ebfmi = result["divergences"], result["ebfmi_per_chain"]
    loo = None
    if loglik_var is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                loo = az.loo(idata, var_name=loglik_var, pointwise=True)
            except ValueError as error:
                reason = psis_failure(error)
                if reason is None:
                    raise
                result.update(loo_trustworthy=False,
                              loo_warning=f"LOO not computed: {reason}")
    if loo is not None:
        result.update(pareto_k_max=float(np.max(loo.pareto_k.values)),
                      n_pareto_k_above_0_7=int((loo.pareto_k.values > 0.7).sum()),
                      elpd_loo=float(loo.elpd), elpd_loo_se=float(loo.se),
                      p_loo=float(loo.p), loo_unit="patient")
        result["loo_trustworthy"] = result["n_pareto_k_above_0_7"] == 0
        if not result["loo_trustworthy"]:
            result["loo_warning"] = (
                f"{result['n_pareto_k_above_0_7']} of {loo.pareto_k.size} patients have "
                f"Pareto k > 0.7: elpd_loo is not reliable ({LOO_CAUSES[loglik_kind]}); "
                "jdmbayes compare refits the model without each of them (exact LOO) "
                "before it ranks models")
    failures = []
    if not result["r_hat_max"] <= GATES["r_hat_max"]:
        failures.append(("r_hat", f"max R-hat {result['r_hat_max']:.4f}"
                                  f"{_at(result['r_hat_max_at'])} > {GATES['r_hat_max']}"))
    for kind in ("ess_bulk", "ess_tail"):
        if not result[f"{kind}_min"] >= GATES["ess_min"]:
            failures.append((kind, f"min {kind.split('_')[1]} ESS "
                             f"{result[f'{kind}_min']:.0f}{_at(result[f'{kind}_min_at'])} "
                             f"< {GATES['ess_min']}"))
    if divergences > GATES["divergences_max"]:
        failures.append(("divergences", f"{divergences} divergent transitions"))
    if ebfmi and min(ebfmi) < GATES["ebfmi_min"]:
        failures.append(("ebfmi", f"min E-BFMI {min(ebfmi):.3f} < {GATES['ebfmi_min']}"))
    result["gates"] = dict(GATES)
    result["failures"] = [{"gate": g, "problem": p, "try": ADVICE[g]} for g, p in failures]
    result["verdict"] = "pass" if not failures else "fail"
    return result


def _at(parameter: str) -> str:
    return f" ({parameter})" if parameter else ""
