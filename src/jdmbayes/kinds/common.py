"""What every model kind shares: the kind's registration type, sampling a built model with
its prior set (compiled once per structure), and the groups every fit's draws carry."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pymc as pm
import xarray as xr

from jdmbayes.estimands.blocks import Stopped, start_in_background
from jdmbayes.inference.diagnostics import diagnose
from jdmbayes.inference.draws import group_dataset, set_group
from jdmbayes.inference.sampling import (
    DEFAULT_TARGET_ACCEPT,
    SamplerSettings,
    built_model,
    sample_posterior,
    sample_prior,
)
from jdmbayes.models.priors import hyperparameter_values, log_prior_dataset
from jdmbayes.models.spec import ModelSpec, PriorSet

PRIOR_DRAWS = 500


@dataclass(frozen=True)
class ModelKind:
    """Everything one model kind provides, registered in one place (:mod:`jdmbayes.kinds.registry`).

    The fitting workflow, the CLI, prior predictive checks and simulation-based calibration
    call these instead of branching on the kind. ``data`` below is what ``index`` returns.
    """

    name: str
    spec_keys: frozenset[str]          # keys of the spec's [model] table this kind reads
    prior_sections: tuple[str, ...]    # prior-set sections (``models/priors/*.toml``) it reads
    index: Callable                    # (series, spec) -> data; every spec-against-series rule
    build: Callable                    # (data, spec, prior_set) -> pm.Model
    observed_arrays: Callable          # data -> {name: array}: what a built model holds
    loglik_name: Callable              # spec -> name of the per-patient log-likelihood
    outputs: Callable                  # (data, spec, prior_set, sampled, prior, settings,
    #                                     ci_prob, ci_kind) -> ModelResult
    prior_predictive: Callable         # (series, data, spec, prior_set, draws, seed)
    #                                     -> PriorPredictive
    simulator: Callable                # (series, data, spec) -> simulate(truth, rng) -> data
    observation_data: Callable         # (spec, real data, simulated) -> pm.Data values
    parameters: tuple[str, ...]        # posterior parameters in summary.csv
    key_parameters: tuple[str, ...]    # those shown in the rank and prior-posterior figures
    figures: tuple[str, ...]           # figure names (:mod:`jdmbayes.results.report_plots`)
    # (data, spec, prior_set) -> the prior set with any generic tables put on the data's
    # scale (:mod:`jdmbayes.models.measure_scale`); called once, before the model is built
    resolve_priors: Callable = lambda data, spec, prior_set: prior_set
    # (data, spec, gates of the attempt that failed) -> the spec with the patient effects in
    # their other parameterisation (centred <-> non-centred, or as the kind decides from
    # the gates), or None: one step of the retry ladder (:mod:`.fit`)
    reparameterised: Callable = lambda data, spec, gates=None: None
    # (data, spec) -> posterior variables that are functions of the parameters (or exact
    # draws given them), left out of the diagnostic gates (:func:`gated_variables`)
    derived: Callable = lambda data, spec: ()
    # (data, spec) -> whether patient-level LOO judges each patient's log-likelihood with
    # their random effects integrated out from the draws (``marginal_loglik``) instead of
    # the sampled one; the sampled one (conditional on the patient's effects) is then never
    # computed: ``sample_model`` leaves it out of the draws (``sampled_loglik``)
    marginal_loo: Callable = lambda data, spec: False
    # (data, spec, posterior Dataset) -> (chains, draws, patients) each patient's
    # log-likelihood, their random effects integrated out draw by draw: what LOO judges
    # where ``marginal_loo``
    marginal_loglik: Callable | None = None
    # (data, spec) -> NUTS' target acceptance of a fit's first attempt when the settings
    # leave it to the model and a retry budget lets the default target follow a failed gate
    # (:func:`jdmbayes.kinds.fit.first_settings`)
    first_target_accept: Callable = lambda data, spec: DEFAULT_TARGET_ACCEPT
    # (data, spec) -> tuning steps of that first attempt where fewer than the settings'
    # (None: the settings' own)
    first_tune: Callable = lambda data, spec: None

    def loo_task(self, data, spec: ModelSpec, prior_set: PriorSet,
                 idata) -> Callable[[], np.ndarray]:
        """A function of no arguments returning the (chains, draws, patients) log-likelihood
        of each patient that patient-level LOO judges: ``marginal_loglik`` where
        ``marginal_loo``, else the log-likelihood group that ``sample_model`` filled. It
        takes what it needs from ``idata`` at once (a copy of the posterior group), so it
        may run on another thread while ``idata`` changes (:func:`start_loo_loglik`);
        ``outputs`` and the exact refits of :mod:`.exact_loo` both use it
        (:meth:`loo_loglik`), so a refit's held-out patient is judged on the same scale."""
        if not self.marginal_loo(data, spec):
            values = patient_loglik(idata)
            return lambda: values
        posterior = group_dataset(idata, "posterior")
        return lambda: self.marginal_loglik(data, spec, posterior)

    def loo_loglik(self, data, spec: ModelSpec, prior_set: PriorSet, idata) -> np.ndarray:
        """(chains, draws, patients) each patient's log-likelihood for LOO, computed now."""
        return self.loo_task(data, spec, prior_set, idata)()


def start_loo_loglik(kind: ModelKind, data, spec: ModelSpec, prior_set: PriorSet,
                     sampled) -> None:
    """Start computing the patients' log-likelihood for LOO on ``sampled``'s draws, on a
    thread of its own (:func:`jdmbayes.estimands.blocks.start_in_background`): it needs
    only the draws, and runs while the gates are judged and the outputs computed on this
    thread, whose steps are single-threaded. :func:`sampled_loo_loglik` collects it."""
    sampled.loo_loglik = start_in_background(kind.loo_task(data, spec, prior_set,
                                                           sampled.idata))


def stop_loo_loglik(sampled) -> None:
    """Stop ``sampled``'s background log-likelihood, if any, between blocks (an attempt
    that a retry follows: its CPU goes to the retry's sampling)."""
    if sampled.loo_loglik is not None:
        sampled.loo_loglik.stop()


def sampled_loo_loglik(kind: ModelKind, data, spec: ModelSpec, prior_set: PriorSet,
                       sampled) -> np.ndarray:
    """(chains, draws, patients) the patients' log-likelihood for LOO: the background
    computation's result where :func:`start_loo_loglik` started one, computed now where
    it did not or where it was stopped (the same numbers either way)."""
    if sampled.loo_loglik is not None:
        try:
            return sampled.loo_loglik.result()
        except Stopped:
            pass
    return kind.loo_loglik(data, spec, prior_set, sampled.idata)


def set_loo_loglik(kind: ModelKind, data, spec: ModelSpec, prior_set: PriorSet,
                   sampled) -> None:
    """The log-likelihood group of ``sampled``'s draws holds the patients' log-likelihood
    for LOO (:func:`sampled_loo_loglik`): power-scaling, the diagnostics, model comparison
    and the run folder use it."""
    set_patient_loglik(sampled.idata, sampled_loo_loglik(kind, data, spec, prior_set, sampled),
                       kind.loglik_name(spec))


@dataclass
class PriorPredictive:
    model: str
    kind: str
    rows: list[dict]
    # milestones: outcome -> (S * n,) simulated times of the modelled patients (weeks)
    times: dict[str, np.ndarray] = field(default_factory=dict)
    # longitudinal: weeks (W,), simulated values (S, W) of one random modelled patient per draw
    weeks: np.ndarray | None = None
    trajectories: np.ndarray | None = None
    expected: np.ndarray | None = None      # (S, W) expected value of the same patients
    measure: str = ""
    upper: float | None = None
    # what the simulated times are and the axis they are shown on
    times_label: str = "milestone times"
    time_axis: str = "weeks from time 0"


QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def quantile_row(values: np.ndarray, **labels) -> dict:
    values = np.asarray(values, float).ravel()
    row = {**labels, "prior_mean": float(values.mean())}
    for q, v in zip(QUANTILES, np.quantile(values, QUANTILES)):
        row[f"q{round(100 * q):02d}"] = float(v)
    return row


def structure_key(spec: ModelSpec, prior_set: PriorSet, arrays: dict) -> str:
    """What a compiled model depends on: the spec, the prior families and the data.

    The observation arrays are hashed whole (not just their shapes): a cached model holds
    the data it was built with, so another dataset is built afresh. (The censoring kinds are
    data in the graph; only latent interval-censored cells are structure, and simulation-
    based calibration swaps datasets into one compiled model itself: :mod:`jdmbayes.batch.sbc`.)
    Hyperparameter values are not part of the key: they are swapped in as data.
    """
    digest = {k: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()
              for k, v in arrays.items()}
    # every field of the spec, not only its file's text: a spec changed in code
    # (``dataclasses.replace(spec, frailty=...)``) is another model
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    text = json.dumps([fields, prior_set.family_signature(), digest], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def sample_model(build, spec: ModelSpec, prior_set: PriorSet, settings: SamplerSettings,
                 data_arrays: dict, design, loglik_name: str, report=None,
                 patient_weight: np.ndarray | None = None, prior_draws: bool = True,
                 time_limit: float | None = None, sampled_loglik: bool = True):
    """Build (at most once per structure: ``build()``), compile (likewise), sample, move the
    per-patient log-likelihood to its group, add the ``log_prior`` group and draw the prior.
    With ``sampled_loglik`` False the per-patient log-likelihood as sampled (conditional on
    the patients' random effects) is not computed from nutpie's draws: the kind computes
    each patient's own for LOO from the draws (``ModelKind.marginal_loo``), and the
    log-likelihood group is made when it is set (:func:`set_patient_loglik`).

    A prior set that differs from an earlier one only in hyperparameter values reuses the
    built and compiled model: the values are data, and so is ``patient_weight`` (each
    patient's weight in the likelihood; ``None``: 1 for every patient; an exact
    leave-one-out refit gives the patient left out 0). ``time_limit``: seconds of sampling
    after which the chains stop (``SamplingStopped``). Returns the sampling result (with
    ``reused_model``) and the prior draws (``None`` unless ``prior_draws``).
    """
    key = structure_key(spec, prior_set, {**data_arrays, **design.key_arrays()})
    model, reused_model = built_model(key, build)
    values = hyperparameter_values(prior_set)
    n = len(model.coords["patient"])
    values["patient_weight"] = (np.ones(n) if patient_weight is None
                                else np.asarray(patient_weight, float))
    with model:
        pm.set_data({k: v for k, v in values.items() if k in model.named_vars})
    sampled = sample_posterior(model, settings, key, values, report, spec.name, time_limit,
                               leave_out=() if sampled_loglik else ("loglik_patient",))
    if report is not None:
        report(model=spec.name, stage="summarising")
    split_loglik(sampled.idata, loglik_name)
    set_group(sampled.idata, "log_prior",
              log_prior_dataset(prior_set, group_dataset(sampled.idata, "posterior")))
    sampled.reused_model = reused_model
    return sampled, sample_prior(model, PRIOR_DRAWS, settings.seed) if prior_draws else None


def data_groups(prior: xr.DataTree, subject_ids, design) -> xr.Dataset:
    """constant_data: the model's data containers plus the patient map (identifiers)."""
    return group_dataset(prior, "constant_data").assign(
        subject_id=("patient", np.array(subject_ids, dtype=str)),
        cell_label=("patient", design.patient_cell_labels))


# an integrated frailty's mode and spread (milestones, episodes): functions of the
# parameters, not parameters
FRAILTY_DERIVED = ("frailty_mode", "frailty_sd")


def _judged(kind: ModelKind, data, spec: ModelSpec, idata) -> tuple[list[str], dict]:
    """(the parameters the gates judge, the gates' diagnostics) of ``idata``."""
    judged = gated_variables(group_dataset(idata, "posterior"), kind.derived(data, spec))
    return judged, diagnose(idata, judged)


def gate_sampled(kind: ModelKind, data, spec: ModelSpec, idata) -> dict:
    """The diagnostic gates of freshly sampled draws, before any output is computed (the
    retry ladder decides on them); the same gates ``outputs`` reports."""
    return _judged(kind, data, spec, idata)[1]


def judge_sampled(kind: ModelKind, data, spec: ModelSpec, sampled) -> dict:
    """:func:`gate_sampled` on ``sampled.idata``, kept in ``sampled.gated`` with the
    parameters judged, so that the outputs' diagnostics need not judge them again."""
    sampled.gated = _judged(kind, data, spec, sampled.idata)
    return sampled.gated[1]


def gated_variables(posterior, derived: tuple[str, ...]) -> list[str]:
    """The posterior variables the diagnostic gates judge: all but ``derived`` ones and the
    cell deviations when they are derived from other parameters (not centred)."""
    derived_cells = "z_cell" in posterior or "w_interaction" in posterior
    skip = set(derived) | ({"cell_deviation"} if derived_cells else set())
    return [v for v in posterior.data_vars if v not in skip]


def patient_loglik(idata) -> np.ndarray:
    """(chains, draws, patients): the values of the log-likelihood group's one variable."""
    loglik = group_dataset(idata, "log_likelihood")
    return loglik[next(iter(loglik.data_vars))].transpose("chain", "draw", "patient").values


def set_patient_loglik(idata, values: np.ndarray, name: str) -> None:
    """The log-likelihood group: the one variable ``name``, (chain, draw, patient), patients
    numbered 1..n as in the models' coordinates, with ``values`` (chains x draws x patients
    elements, in that order); it replaces the sampled one, or is made where the draws have
    none (``sample_model``'s ``sampled_loglik``)."""
    posterior = group_dataset(idata, "posterior")
    values = np.asarray(values).reshape(posterior.sizes["chain"], posterior.sizes["draw"], -1)
    set_group(idata, "log_likelihood", xr.Dataset({name: xr.DataArray(
        values, dims=("chain", "draw", "patient"),
        coords={"chain": posterior["chain"].values, "draw": posterior["draw"].values,
                "patient": np.arange(1, values.shape[2] + 1)})}))


# the frailty forms whose draws carry one frailty per patient
SAMPLED_FRAILTY = ("centred", "non_centred", "hierarchically_centred")


def split_loglik(idata: xr.DataTree, name: str) -> None:
    """Move the sampled per-patient log-likelihood (the deterministic ``loglik_patient``),
    where the draws have it, from the posterior to the log-likelihood group as ``name``."""
    posterior = group_dataset(idata, "posterior")
    if "loglik_patient" not in posterior:
        return
    set_group(idata, "log_likelihood",
              xr.Dataset({name: posterior["loglik_patient"].rename(name)}))
    set_group(idata, "posterior", posterior.drop_vars("loglik_patient"))
