"""What ``posterior.nc`` keeps: every draw of the population parameters, and the per-patient
and per-value arrays thinned and in single precision, so that a run folder stays small for
hundreds of patients.

Every summary, diagnostic, check and LOO value is computed from all draws in memory before
anything is written (a longitudinal model's posterior predictive, and its checks, from every
k-th draw of each chain, at most ``PREDICTIVE_CHECK_DRAWS``); only the stored copy is
reduced. By default:

* ``posterior`` and ``prior`` keep their population-level variables (no ``patient`` or
  ``obs`` dimension) as sampled: every draw, float64;
* their per-patient variables (patient baselines, changes, frailties) move to
  ``posterior_patients`` and ``prior_patients``;
* those groups and ``log_likelihood`` keep every k-th draw of each chain, the smallest k that
  leaves at most ``PATIENT_LEVEL_DRAWS`` draws in all, and ``posterior_predictive`` (one value
  per visit: the largest group) at most ``PREDICTIVE_DRAWS``, as float32 (7 significant
  digits: far below any Monte Carlo error);
* the other groups are kept as they are.

``all_draws`` (``--all-draws``) keeps everything as sampled, in the groups ArviZ names. The
manifest's ``posterior_storage`` says which was done.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from jdmbayes.inference.draws import PREDICTIVE_CHECK_DRAWS, draw_step

PATIENT_DIMS = ("patient", "obs")
PATIENT_LEVEL_DRAWS = 1000
PREDICTIVE_DRAWS = 400     # posterior_predictive: one value per visit, the largest group
THINNED_GROUPS = ("log_likelihood", "posterior_predictive")
SPLIT_GROUPS = {"posterior": "posterior_patients", "prior": "prior_patients"}


def storage_description(all_draws: bool) -> dict:
    """The manifest's ``posterior_storage`` entry."""
    if all_draws:
        return {"all_draws": True, "note": "posterior.nc keeps every draw of every variable "
                "as sampled (float64), in the groups ArviZ names (a longitudinal model's "
                "posterior predictive replicates every k-th draw of each chain, at most "
                f"{PREDICTIVE_CHECK_DRAWS})"}
    return {"all_draws": False, "patient_level_draws": PATIENT_LEVEL_DRAWS,
            "predictive_draws": PREDICTIVE_DRAWS,
            "patient_level_dtype": "float32",
            "patient_level_groups": [*SPLIT_GROUPS.values(), *THINNED_GROUPS],
            "note": ("posterior.nc keeps every draw of the population parameters (float64); "
                     "per-patient variables are in posterior_patients and prior_patients, and "
                     "they and log_likelihood keep every k-th draw of each chain (at most "
                     f"{PATIENT_LEVEL_DRAWS} draws), posterior_predictive at most "
                     f"{PREDICTIVE_DRAWS}, as float32; every "
                     "summary, check and LOO value was computed from all draws before "
                     "writing, except that a longitudinal model's posterior predictive (and "
                     "its checks) replicates every k-th draw of each chain, at most "
                     f"{PREDICTIVE_CHECK_DRAWS} (--all-draws keeps everything)")}


def _patient_level(array: xr.DataArray) -> bool:
    return any(d in PATIENT_DIMS for d in array.dims)


def thinned(dataset: xr.Dataset, most: int = PATIENT_LEVEL_DRAWS) -> xr.Dataset:
    """Every k-th draw of each chain (at most ``most`` in all), floats as float32."""
    if "draw" in dataset.dims:
        total = dataset.sizes.get("chain", 1) * dataset.sizes["draw"]
        dataset = dataset.isel(draw=slice(None, None, draw_step(total, most)))
    return dataset.map(lambda a: a.astype(np.float32)
                       if np.issubdtype(a.dtype, np.floating) else a, keep_attrs=True)


def stored_groups(groups: dict[str, xr.Dataset], all_draws: bool) -> dict[str, xr.Dataset]:
    """The groups ``posterior.nc`` is written from (see the module docstring)."""
    if all_draws:
        return groups
    out = {}
    for name, dataset in groups.items():
        if name in SPLIT_GROUPS:
            patient = [v for v in dataset.data_vars if _patient_level(dataset[v])]
            out[name] = dataset.drop_vars(patient)
            if patient:
                part = thinned(dataset[patient])
                part.attrs = dict(dataset.attrs)
                out[SPLIT_GROUPS[name]] = part
        elif name in THINNED_GROUPS:
            out[name] = thinned(dataset, PREDICTIVE_DRAWS if name == "posterior_predictive"
                                else PATIENT_LEVEL_DRAWS)
        else:
            out[name] = dataset
    return out
