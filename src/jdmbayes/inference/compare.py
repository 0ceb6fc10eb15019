"""Compare models fitted to the same outcome of the same patients by patient-level PSIS-LOO.

ELPD with its SE, each model's difference to the best with the SE of that difference,
stacking weights (Yao et al. 2018), the Pareto k count and how many patients were refitted
exactly, via ArviZ's ``compare``. The unit is the patient: each model's pointwise
log-likelihood is one patient's, marginal over their random effects (the kinds' ``loo_loglik``).

References: Vehtari, Gelman & Gabry (2017), *Stat Comput* 27:1413; Yao, Vehtari, Simpson &
Gelman (2018), *Bayesian Analysis* 13:917; Sivula et al. (2022), arXiv:2008.10296 (SE of a
difference).
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from jdmbayes.errors import InputError
from jdmbayes.inference.draws import group_dataset
from jdmbayes.inference.fitted import ModelResult

COLUMNS = ["model", "rank", "elpd_loo", "se", "p_loo", "elpd_diff", "se_diff", "weight",
           "n_pareto_k_above_0_7", "n_exact_refits", "loo_trustworthy"]


def what_is_predicted(result: ModelResult) -> tuple:
    """The data a model's LOO predicts: kind, outcomes (or measure) and the patients."""
    spec = result.spec
    patients = tuple(group_dataset(result.idata, "constant_data")["subject_id"].values)
    return spec.kind, spec.outcomes or (spec.measure,), patients


def comparable(results: list[ModelResult]) -> None:
    """Refuse (``InputError``) models that do not predict the same data of the same
    patients: their ELPDs are not on one scale."""
    if len(results) < 2:
        raise InputError("compare needs two or more models")
    first = what_is_predicted(results[0])
    for result in results[1:]:
        other = what_is_predicted(result)
        if other[:2] != first[:2]:
            raise InputError(f"models '{results[0].name}' and '{result.name}' predict "
                             f"different outcomes ({first[0]} {list(first[1])} against "
                             f"{other[0]} {list(other[1])}): ELPDs compare only models of "
                             "the same outcomes")
        if other[2] != first[2]:
            raise InputError(f"models '{results[0].name}' and '{result.name}' are fitted to "
                             f"different patients ({len(first[2])} and {len(other[2])}; "
                             "check their population filters): ELPDs compare only models of "
                             "the same patients")


# the Pareto k above which PSIS-LOO of a patient cannot be trusted and ``jdmbayes compare``
# refits the model without the patient (Vehtari, Simpson, Gelman, Yao & Gabry 2024)
K_THRESHOLD = 0.7


def loo_tree(result: ModelResult) -> xr.DataTree:
    """The posterior and the patient log-likelihood (as ``patient_loglik``) of a fit."""
    loglik = group_dataset(result.idata, "log_likelihood")
    name = next(iter(loglik.data_vars))
    return xr.DataTree.from_dict({
        "posterior": group_dataset(result.idata, "posterior"),
        "log_likelihood": xr.Dataset({"patient_loglik": loglik[name]})})


def psis_loo(tree: xr.DataTree):
    """ArviZ's pointwise PSIS-LOO of ``patient_loglik`` (:func:`loo_tree`)."""
    with warnings.catch_warnings():
        # the Pareto k are counted (and acted on by the exact refits), not warned about
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        return az.loo(tree, var_name="patient_loglik", pointwise=True)


def compare_models(results: list[ModelResult], exact: dict | None = None) -> pd.DataFrame:
    """One row per model, best first (unrounded): :data:`COLUMNS`.

    ``exact`` maps a model's name to its LOO with the patients above ``K_THRESHOLD``
    replaced by exact refits (:func:`jdmbayes.kinds.exact_loo.exact_loo`); the other models
    are judged by PSIS-LOO as sampled. A model's LOO is trustworthy when no patient is
    above the threshold, or every one above was refitted."""
    comparable(results)
    exact = exact or {}
    elpds, psis_above = {}, {}
    for result in results:
        psis = psis_loo(loo_tree(result))
        psis_above[result.name] = int((psis.pareto_k.values > K_THRESHOLD).sum())
        elpds[result.name] = exact.get(result.name, psis)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        table = az.compare(elpds, round_to="none")
    rows = []
    for model, row in table.iterrows():
        left = int((elpds[model].pareto_k.values > K_THRESHOLD).sum())
        rows.append({"model": model, "rank": int(row["rank"]), "elpd_loo": float(row["elpd"]),
                     "se": float(row["se"]), "p_loo": float(row["p"]),
                     "elpd_diff": float(row["elpd_diff"]), "se_diff": float(row["dse"]),
                     "weight": float(row["weight"]),
                     "n_pareto_k_above_0_7": psis_above[model],
                     "n_exact_refits": psis_above[model] - left,
                     "loo_trustworthy": left == 0})
    return pd.DataFrame(rows, columns=COLUMNS)


def equally_good(row: pd.Series) -> bool:
    """A difference within two of its standard errors is not a difference in prediction."""
    return abs(row["elpd_diff"]) <= 2 * row["se_diff"] or np.isclose(row["elpd_diff"], 0.0)
