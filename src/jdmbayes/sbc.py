r"""Simulation-based calibration of a model on the real design.

For replicate :math:`r = 1..R`: draw :math:`\theta_r` from the model's own prior, simulate a
dataset :math:`y_r` from the model at :math:`\theta_r` on the real series' design
(:mod:`jdmbayes.design_simulation`), fit the model to :math:`y_r` and record, for each
checked parameter, the rank of :math:`\theta_r` among :math:`L` near-independent posterior
draws (the draws thinned evenly). If the model is fitted correctly, every rank is uniform on
:math:`0..L` (Talts et al. 2018).

Each model is built and compiled once per worker: censoring kinds, times and values are
data (``compiled.with_data``). Replicates run in chunks on Dask; each chunk is saved as it
finishes, so an interrupted run resumes where it stopped.

Uniformity, per parameter:

* a chi-square test of the ranks in ``bins`` equal-width bins (about 20 at 200 replicates,
  fewer for fewer, so that each bin expects at least 5), with Holm's adjustment over
  every parameter of the run (family-wise error rate ``alpha``);
* the ECDF of the ranks against simultaneous bands (Säilynoja, Bürkner & Vehtari 2022,
  ArviZ's optimized bands) at level :math:`1-\alpha/m` for :math:`m` parameters
  (Bonferroni).

A parameter passes when both hold; a model passes when all its parameters pass.

References
----------
Talts, Betancourt, Simpson, Vehtari & Gelman (2018), arXiv:1804.06788;
Säilynoja, Bürkner & Vehtari (2022), *Stat Comput* 32:32; Modrák et al. (2023),
*Bayesian Analysis* (SBC in practice); Holm (1979), *Scand J Stat* 6:65.
"""

from __future__ import annotations

import functools
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .runfolder import write_text_atomic


@dataclass(frozen=True)
class SBCSettings:
    replicates: int = 200
    chains: int = 2
    tune: int = 500
    draws: int = 500
    thin_to: int = 99            # L: posterior draws kept per replicate (ranks 0..L)
    target_accept: float = 0.99
    seed: int = 20240601
    chunk: int = 25              # replicates per Dask task
    alpha: float = 0.05

    @property
    def bins(self) -> int:
        return max(2, min(20, self.replicates // 5))

    def as_dict(self) -> dict:
        return {**asdict(self), "bins": self.bins}


# parameters checked in every replicate: all elements of the population-level ones and the
# first element of the patient- and cell-level ones
POPULATION = ("intercept", "dispersion", "beta_group", "sigma_cell", "sigma_patient",
              "beta_covariate", "sigma_intercept", "change", "sigma_change", "tau_weeks",
              "noise")
FIRST_ONLY = ("frailty", "cell_deviation", "baseline", "patient_change")


def checked_parameters(prior) -> list[tuple[str, str, tuple]]:
    """(label, variable, index) of every checked parameter present in the prior group."""
    out = []
    for name in (*POPULATION, *FIRST_ONLY):
        if name not in prior:
            continue
        array = prior[name]
        dims = [d for d in array.dims if d not in ("chain", "draw")]
        if not dims:
            out.append((name, name, ()))
            continue
        labels = array[dims[0]].values
        for j in range(1 if name in FIRST_ONLY else len(labels)):
            out.append((f"{name}[{labels[j]}]", name, (j,)))
    return out


@dataclass
class SBCProblem:
    """One model on one series' design, built once: what a worker needs to run replicates."""

    name: str
    spec: object
    prior_set: object
    data: object
    model: object
    visits: list | None

    @functools.cached_property
    def real_latent_pattern(self) -> np.ndarray:
        from .milestone_model import latent_pattern

        return latent_pattern(self.data)

    def simulate(self, truth: dict, rng: np.random.Generator):
        from . import design_simulation as ds

        if self.spec.kind == "milestones":
            return ds.simulate_milestones(self.data, self.visits, self.spec.family, truth, rng)
        return ds.simulate_longitudinal(self.data, self.spec, truth, rng)

    def observation_data(self, simulated) -> dict[str, np.ndarray]:
        if self.spec.kind == "milestones":
            from .milestone_model import latent_pattern, observation_data

            if not np.array_equal(latent_pattern(simulated), self.real_latent_pattern):
                raise ValueError(f"{self.name}: a simulated dataset has latent times where the "
                                 "real series has none; calibration needs one compiled model")
            return observation_data(simulated)
        return {"obs_value": simulated.value}


def build_problem(data_folder: str, model_name: str, prior_name: str | None = None
                  ) -> SBCProblem:
    from .design_simulation import visit_schedule
    from .indexing import index_longitudinal, index_milestones
    from .longitudinal_model import build_longitudinal_model
    from .milestone_model import build_milestone_model
    from .spec import load_model_spec, load_prior_set
    from .validate import load_series

    series = load_series(data_folder)
    spec = load_model_spec(model_name)
    prior_set = load_prior_set(prior_name or spec.prior_set, spec)
    if spec.kind == "milestones":
        data = index_milestones(series, spec)
        return SBCProblem(spec.name, spec, prior_set, data,
                          build_milestone_model(data, spec, prior_set),
                          visit_schedule(series, data.subject_ids, data.followup))
    data = index_longitudinal(series, spec)
    return SBCProblem(spec.name, spec, prior_set, data,
                      build_longitudinal_model(data, spec, prior_set), None)


def prior_truths(problem: SBCProblem, settings: SBCSettings):
    """The prior draws that are the true values of the replicates (the same in every
    worker: one seed for the whole run)."""
    from .sampling import sample_prior

    return sample_prior(problem.model, settings.replicates, settings.seed).prior


def rank_rows(problem: SBCProblem, replicates: list[int], settings: SBCSettings,
              distort=None) -> pd.DataFrame:
    """Fit ``replicates`` and return one row per (replicate, parameter) with its rank.

    ``distort(simulated, truth)`` may change the simulated data before fitting: a
    deliberately wrong simulator, to show the checks can fail.
    """
    import arviz as az

    from .priors import hyperparameter_values
    from .sampling import SamplerSettings, sample_posterior

    prior = prior_truths(problem, settings)
    checked = checked_parameters(prior)
    hyper = hyperparameter_values(problem.prior_set)
    key = f"sbc:{problem.name}:{problem.prior_set.family_signature()}"
    rows = []
    for r in replicates:
        truth = {name: np.asarray(prior[name].values[0, r]) for name in prior.data_vars}
        simulated = problem.simulate(truth, np.random.default_rng([settings.seed, r]))
        if distort is not None:
            simulated = distort(simulated, truth)
        sampler = SamplerSettings("nutpie", settings.chains, settings.draws, settings.tune,
                                  settings.target_accept, settings.seed + 1 + r)
        started = time.perf_counter()
        result = sample_posterior(problem.model, sampler, key,
                                  {**hyper, **problem.observation_data(simulated)})
        seconds = time.perf_counter() - started
        posterior = result.idata["posterior"].to_dataset()
        total = settings.chains * settings.draws
        keep = np.round(np.linspace(0, total - 1, settings.thin_to)).astype(int)
        names = sorted({variable for _, variable, _ in checked})
        ess = az.ess(posterior[names], method="bulk")
        rhat = az.rhat(posterior[names])
        divergences = int(result.idata.sample_stats["diverging"].sum())
        for label, variable, index in checked:
            draws = posterior[variable].values.reshape(total, *posterior[variable].shape[2:])
            draws = draws[(slice(None), *index)][keep]
            true_value = float(truth[variable][index])
            rows.append({"model": problem.name, "replicate": r, "parameter": label,
                         "rank": int((draws < true_value).sum()), "truth": true_value,
                         "ess_bulk": float(ess[variable].values[index]),
                         "rhat": float(rhat[variable].values[index]),
                         "divergences": divergences, "sample_s": seconds})
    return pd.DataFrame(rows)


def run_chunk(data_folder: str, model_name: str, prior_name: str | None,
              replicates: list[int], settings: SBCSettings, chunk_file: str) -> str:
    """One Dask task: fit ``replicates`` of one model (compiling at most once per worker)
    and save their ranks to ``chunk_file``; a chunk already saved is not refitted."""
    path = Path(chunk_file)
    if not path.exists():
        problem = _problem(data_folder, model_name, prior_name)
        write_text_atomic(path, rank_rows(problem, replicates, settings).to_csv(
            index=False, float_format="%.17g"))
    return chunk_file


_PROBLEMS: dict[tuple, SBCProblem] = {}


def _problem(data_folder: str, model_name: str, prior_name: str | None) -> SBCProblem:
    """The built problem, once per worker process (its compiled model is cached by key)."""
    key = (str(data_folder), model_name, prior_name)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = build_problem(data_folder, model_name, prior_name)
    return _PROBLEMS[key]


def run_sbc(data_folder: str, models: list[str], prior_name: str | None,
            settings: SBCSettings, work_dir: Path, client=None) -> pd.DataFrame:
    """Every replicate of every model, in chunks (on ``client`` when given); the saved chunks
    of an earlier, interrupted run with the same settings are reused."""
    work_dir.mkdir(parents=True, exist_ok=True)
    tasks = []
    for model in models:
        for start in range(0, settings.replicates, settings.chunk):
            reps = list(range(start, min(start + settings.chunk, settings.replicates)))
            chunk = work_dir / f"{model}-{reps[0]:04d}-{reps[-1]:04d}.csv"
            tasks.append((data_folder, model, prior_name, reps, settings, str(chunk)))
    if client is None:
        files = [run_chunk(*task) for task in tasks]
    else:
        futures = [client.submit(run_chunk, *task, pure=False) for task in tasks]
        files = client.gather(futures)
    return pd.concat([pd.read_csv(f, float_precision="round_trip") for f in files],
                     ignore_index=True)


def uniformity(ranks: pd.DataFrame, thin_to: int, bins: int, alpha: float) -> pd.DataFrame:
    """Per (model, parameter): chi-square p-value, Holm-adjusted over all rows, whether the
    rank ECDF stays inside the Bonferroni-level simultaneous band, and the verdict."""
    groups = list(ranks.groupby(["model", "parameter"], sort=False))
    m = len(groups)
    levels = thin_to + 1
    bins = min(bins, levels)
    edges = np.linspace(0, levels, bins + 1)
    levels_per_bin = np.histogram(np.arange(levels), bins=edges)[0]
    rows = []
    for (model, parameter), frame in groups:
        values = frame["rank"].to_numpy()
        n = len(values)
        counts = np.histogram(values, bins=edges)[0]
        expected = n * levels_per_bin / levels
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        p = float(stats.chi2.sf(chi2, bins - 1))
        points, lower, upper = ecdf_band(n, thin_to, 1 - alpha / m)
        ecdf = np.searchsorted(np.sort(values), points, side="right") / n
        inside = bool(((ecdf >= lower - 1e-12) & (ecdf <= upper + 1e-12)).all())
        rows.append({"model": model, "parameter": parameter, "replicates": n,
                     "chi2": chi2, "df": bins - 1, "p": p, "inside_band": inside,
                     "median_ess_bulk": float(frame["ess_bulk"].median()),
                     "max_rhat": float(frame["rhat"].max()),
                     "replicates_with_divergences": int(
                         frame.groupby("replicate")["divergences"].first().gt(0).sum())})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].to_numpy())
    table["passes"] = (table["p_holm"] >= alpha) & table["inside_band"]
    return table


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate)."""
    order = np.argsort(p)
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted
    return out


BAND_SIMULATIONS = 20_000
BAND_SEED = 2022


@functools.cache
def ecdf_band(n: int, thin_to: int, prob: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluation points (ranks) and the simultaneous band of the rank ECDF at ``prob``
    (computed once per arguments: the verdicts and every figure panel share it)."""
    from arviz_stats.ecdf_utils import get_pointwise_confidence_band, simulate_confidence_bands

    levels = thin_to + 1
    points = np.arange(levels - 1)
    uniform_cdf = (points + 1) / levels
    # the pointwise level at which the band holds simultaneously with probability ``prob``
    # (ArviZ's simulation method; a fixed generator makes the band the same in every run)
    pointwise = simulate_confidence_bands(n, 1, uniform_cdf, prob, BAND_SIMULATIONS,
                                          np.random.default_rng(BAND_SEED))
    return (points, *get_pointwise_confidence_band(pointwise, n, uniform_cdf))
