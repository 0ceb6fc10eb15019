"""Stan (PyStan 3, whose httpstan wheel carries Stan and its compiler glue) as a peer: the
same models on the same arrays and priors, for the benchmark and the agreement check.

Only the benchmark uses this; PyStan is not a dependency of the package (``pip install
-e ".[bench]"``).
"""

from __future__ import annotations

import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FAMILY_CODES = {"weibull": 1, "lognormal": 2, "loglogistic": 3}
EXPECTED = {"intercept": "Normal", "dispersion": "LogNormal", "beta_group": "Normal",
            "sigma_cell": "HalfNormal", "sigma_patient": "HalfNormal",
            "sigma_intercept": "HalfNormal", "change": "Normal", "sigma_change": "HalfNormal",
            "tau_weeks": "LogNormal", "noise": "LogNormal"}


def _hyper(prior_set, name: str, expected: dict = EXPECTED) -> dict:
    prior = prior_set.priors[name]
    if prior.distribution != expected[name]:
        raise ValueError(f"the Stan program has {expected[name]} for {name}, the prior set "
                         f"{prior.distribution}")
    return {k: float(v) for k, v in prior.parameters.items()}


def _longitudinal_hyper(h: dict) -> dict:
    """The hyperparameters both longitudinal Stan programs read, from ``_hyper`` values."""
    return {"intercept_mu": h["intercept"]["mu"], "intercept_sigma": h["intercept"]["sigma"],
            "sigma_intercept_sigma": h["sigma_intercept"]["sigma"],
            "change_mu": h["change"]["mu"], "change_sigma": h["change"]["sigma"],
            "beta_mu": h["beta_group"]["mu"], "beta_sigma": h["beta_group"]["sigma"],
            "sigma_cell_sigma": h["sigma_cell"]["sigma"],
            "sigma_change_sigma": h["sigma_change"]["sigma"],
            "tau_mu": h["tau_weeks"]["mu"], "tau_sigma": h["tau_weeks"]["sigma"]}


def _design(design, n: int) -> dict:
    x_group = (design.cell_effects[design.patient_cell] if design.effect_labels
               else np.zeros((n, 0)))
    if design.covariate_names:
        raise ValueError("the Stan programs have no covariates")
    return {"N": n, "E": x_group.shape[1], "C": max(len(design.cells), 1),
            "x_group": x_group, "cell": (design.patient_cell + 1).tolist()}


def _cell_basis(design, cells: str, interaction_basis) -> dict:
    if cells == "interaction" and design.has_cell_deviations:
        basis = interaction_basis(design)
        return {"interaction": 1, "Q": basis.shape[1], "basis": basis}
    # centred cell deviations are the non-centred ones' model in other coordinates
    return {"interaction": 0, "Q": 0, "basis": np.zeros((max(len(design.cells), 1), 0))}


def milestone_data(data, spec, prior_set) -> dict:
    """The Stan program's data: a centred frailty for either centred form (the hierarchically
    centred one is the same model, written as a Stan user writes it); cell deviations
    non-centred (the same model as centred ones), or in the interaction basis when the spec
    says so (another model: the deviations confined to the interaction directions)."""
    from jdmbayes.models.milestones import gap_observations, interaction_basis

    if data.latent:
        raise ValueError("the Stan program has no latent interval-censored milestones")
    obs = gap_observations(data)
    keep = obs["kind"] != 4
    h = {k: _hyper(prior_set, k) for k in ("intercept", "dispersion", "beta_group",
                                           "sigma_cell", "sigma_patient")}
    return {"family": FAMILY_CODES[spec.family], "K": len(data.outcomes),
            **_design(data.design, data.n_patients), "M": int(keep.sum()),
            "patient": (obs["patient"][keep] + 1).tolist(),
            "outcome": (obs["outcome"][keep] + 1).tolist(), "kind": obs["kind"][keep].tolist(),
            "lo": obs["lo"][keep], "hi": obs["hi"][keep], "origin": obs["origin"][keep],
            "centred": int(spec.frailty in ("centred", "hierarchically_centred")),
            **_cell_basis(data.design, spec.cell_deviations, interaction_basis),
            "intercept_mu": h["intercept"]["mu"], "intercept_sigma": h["intercept"]["sigma"],
            "dispersion_mu": h["dispersion"]["mu"],
            "dispersion_sigma": h["dispersion"]["sigma"],
            "beta_mu": h["beta_group"]["mu"], "beta_sigma": h["beta_group"]["sigma"],
            "sigma_cell_sigma": h["sigma_cell"]["sigma"],
            "sigma_patient_sigma": h["sigma_patient"]["sigma"]}


def longitudinal_data(data, spec, prior_set) -> dict:
    if spec.likelihood != "beta_binomial" or not spec.random_change:
        raise ValueError("the Stan program is the beta-binomial model with random change")
    h = {k: _hyper(prior_set, k) for k in ("intercept", "sigma_intercept", "change",
                                           "beta_group", "sigma_cell", "sigma_change",
                                           "tau_weeks", "noise")}
    return {**_design(data.design, data.n_patients), "M": len(data.value),
            "patient": (data.patient + 1).tolist(), "week": data.week,
            "top": int(spec.upper), "value": data.value.astype(int).tolist(),
            **_longitudinal_hyper(h),
            "noise_mu": h["noise"]["mu"], "noise_sigma": h["noise"]["sigma"]}


# the families of the generic log-scale tables (``[longitudinal_log.*]``) the marker gets
MARKER_EXPECTED = {"intercept": "Normal", "sigma_intercept": "HalfNormal", "change": "Normal",
                   "beta_group": "Normal", "sigma_cell": "HalfNormal",
                   "sigma_change": "HalfNormal", "tau_weeks": "LogNormal",
                   "noise": "HalfNormal", "lkj_corr": "Beta"}


def _correlated_data(data, spec, prior_set, likelihood: str, expected: dict) -> tuple:
    """The data both correlated-effects programs read (design, visits, shape, priors), after
    checking ``spec`` is the model they write; returns it and the resolved hyperparameters."""
    if (spec.likelihood != likelihood or not spec.random_change or not spec.correlation
            or spec.shape not in ("linear", "plateau")):
        raise ValueError(f"the Stan program is the {PROGRAM_LIKELIHOODS[likelihood]} model "
                         "with correlated random baseline and change, linear or plateau")
    h = {name: _hyper(prior_set, name, expected) for name in expected}
    return {**_design(data.design, data.n_patients),
            "cells": int(data.design.has_cell_deviations), "M": len(data.value),
            "patient": (data.patient + 1).tolist(), "week": data.week,
            "plateau": int(spec.shape == "plateau"), "reference": float(spec.final_week),
            **_longitudinal_hyper(h), "noise_sigma": h["noise"]["sigma"],
            "lkj_alpha": h["lkj_corr"]["alpha"], "lkj_beta": h["lkj_corr"]["beta"]}, h


PROGRAM_LIKELIHOODS = {"lognormal": "log-normal", "beta_binomial": "beta-binomial"}


def marker_data(data, spec, prior_set) -> dict:
    """``stan_programs/marker.stan``'s data: a log-normal measure with correlated random
    baseline and change, linear or plateau shape, under the (resolved) prior set."""
    common, _ = _correlated_data(data, spec, prior_set, "lognormal", MARKER_EXPECTED)
    return {**common, "value": data.value}


# the families of the generic logit-scale tables a bounded score gets (the score of
# ``longitudinal_series.py``; ``noise`` is the beta-binomial's precision)
SCORE_EXPECTED = {**MARKER_EXPECTED, "noise": "LogNormal"}


def score_data(data, spec, prior_set) -> dict:
    """``stan_programs/score.stan``'s data: a bounded score (beta-binomial) with correlated
    random baseline and change, linear or plateau shape, under the (resolved) prior set."""
    common, h = _correlated_data(data, spec, prior_set, "beta_binomial", SCORE_EXPECTED)
    return {**common, "top": int(spec.upper), "value": data.value.astype(int).tolist(),
            "noise_mu": h["noise"]["mu"]}


# httpstan releases whose compiled models cannot be loaded on Python 3.13 and later
# (undefined symbol _PyThreadState_UncheckedGet, a CPython API 3.13 removed); 4.17.0 is the
# newest release on the registries these machines reach
BROKEN_FROM_PYTHON = (3, 13)
LAST_BROKEN_HTTPSTAN = (4, 17, 0)


def stan_unusable(python: tuple[int, ...], httpstan: str) -> str:
    """Why PyStan cannot run here ('' when it can): on Python 3.13 and later httpstan up to
    4.17.0 builds models that fail to load, after a minute of compiling."""
    release = tuple(int(part) for part in httpstan.split(".")[:3] if part.isdigit())
    if tuple(python[:2]) >= BROKEN_FROM_PYTHON and release <= LAST_BROKEN_HTTPSTAN:
        return (f"PyStan cannot run on Python {python[0]}.{python[1]}: httpstan {httpstan} "
                "builds models that fail to load (undefined symbol "
                "_PyThreadState_UncheckedGet); run the Stan peer on Python 3.12")
    return ""


def import_stan():
    """The ``stan`` module, or ImportError (the benchmarks report it as skipped, with its
    reason) where PyStan is not installed or cannot run."""
    import stan

    if reason := stan_unusable(sys.version_info, metadata.version("httpstan")):
        raise ImportError(reason)
    return stan


def sample_stan(kind: str, stan_data: dict, chains: int, draws: int, seed: int,
                delta: float = 0.99):
    """(InferenceData, build seconds, sampling seconds). The build compiles the program the
    first time (httpstan caches it on disk by program text) and links the data."""
    stan = import_stan()

    program = (HERE / "stan_programs" / f"{kind}.stan").read_text()
    start = time.perf_counter()
    posterior = stan.build(program, data=stan_data, random_seed=seed)
    built = time.perf_counter()
    fit = posterior.sample(num_chains=chains, num_samples=draws, num_warmup=draws,
                           delta=delta)
    done = time.perf_counter()
    return draws_tree(fit), built - start, done - built


def _chain_draw(values: np.ndarray, chains: int) -> np.ndarray:
    """PyStan's (..., draws * chains) array, draw-major, as (chain, draw, ...)."""
    values = np.asarray(values)
    values = values.reshape(*values.shape[:-1], values.shape[-1] // chains, chains)
    return np.moveaxis(np.moveaxis(values, -1, 0), -1, 1)


def draws_tree(fit):
    """A PyStan 3 fit as an ArviZ 1 DataTree (posterior and sample_stats)."""
    import xarray as xr

    chains = fit.num_chains
    posterior = {}
    for name, dims in zip(fit.param_names, fit.dims):
        values = _chain_draw(fit[name], chains)
        if not dims:
            values = values[..., 0]
        label = "frailty" if name == "frailty_raw" else name
        posterior[label] = (("chain", "draw", *(f"{label}_dim_{i}" for i in range(len(dims)))),
                            values)
    stats = {"diverging": (("chain", "draw"),
                           _chain_draw(fit["divergent__"], chains)[..., 0].astype(bool)),
             "energy": (("chain", "draw"), _chain_draw(fit["energy__"], chains)[..., 0])}
    return xr.DataTree.from_dict({"posterior": xr.Dataset(posterior),
                                  "sample_stats": xr.Dataset(stats)})
