"""Simulation-based calibration on Dask: the replicates of :mod:`jdmbayes.inference.calibration`.

Each model is built and compiled once per worker: censoring kinds, times and values are
data (``compiled.with_data``). Replicates run in chunks on Dask; each chunk is saved as it
finishes, so an interrupted run resumes where it stopped. The simulated datasets are the
model kind's own (:mod:`jdmbayes.kinds.registry`, :mod:`jdmbayes.estimands.simulate`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jdmbayes.inference.calibration import SBCSettings, checked_parameters
from jdmbayes.results.runfolder import log_text, write_text_atomic


@dataclass
class SBCProblem:
    """One model on one series' design, built once: what a worker needs to run replicates."""

    name: str
    spec: object
    prior_set: object
    data: object
    model: object

    simulator: object   # simulate(truth, rng) -> data (the kind's :class:`ModelKind`)
    kind: object

    def simulate(self, truth: dict, rng: np.random.Generator):
        return self.simulator(truth, rng)

    def observation_data(self, simulated) -> dict[str, np.ndarray]:
        return self.kind.observation_data(self.spec, self.data, simulated)


def build_problem(data_folder: str, model_name: str, prior_name: str | None = None
                  ) -> SBCProblem:
    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.registry import kind_of
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    series = load_series(data_folder)
    spec = load_model_spec(model_name)
    prior_set = load_prior_set(prior_name or spec.prior_set, spec)
    kind = kind_of(spec)
    data = kind.index(series, spec)
    prior_set = kind.resolve_priors(data, spec, prior_set)
    return SBCProblem(spec.name, spec, prior_set, data, kind.build(data, spec, prior_set),
                      kind.simulator(series, data, spec), kind)


def prior_truths(problem: SBCProblem, settings: SBCSettings):
    """The prior draws that are the true values of the replicates (the same in every
    worker: one seed for the whole run)."""
    from jdmbayes.inference.sampling import sample_prior

    return sample_prior(problem.model, settings.replicates, settings.seed).prior


def rank_rows(problem: SBCProblem, replicates: list[int], settings: SBCSettings,
              distort=None) -> pd.DataFrame:
    """Fit ``replicates`` and return one row per (replicate, parameter) with its rank.

    ``distort(simulated, truth)`` may change the simulated data before fitting: a
    deliberately wrong simulator, to show the checks can fail.
    """
    import arviz as az

    from jdmbayes.inference.sampling import SamplerSettings, sample_posterior
    from jdmbayes.models.priors import hyperparameter_values

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
    and save their ranks to ``chunk_file``; a chunk already saved is not refitted. The
    warnings and third-party log lines of the task (PyMC's "Sampling: [...]" among them) are
    kept beside it (:func:`chunk_log`), not printed."""
    from jdmbayes.console import CapturedLog

    path = Path(chunk_file)
    if not path.exists():
        with CapturedLog(echo=False) as log:
            problem = _problem(data_folder, model_name, prior_name)
            ranks = rank_rows(problem, replicates, settings)
        write_text_atomic(chunk_log(path), log_text(log.lines))
        write_text_atomic(path, ranks.to_csv(index=False, float_format="%.17g"))
    return chunk_file


def chunk_log(chunk_file: Path) -> Path:
    """Where a chunk's captured log lines are kept."""
    return chunk_file.with_suffix(".log")


def chunk_logs(work_dir: Path) -> list[str]:
    """Every saved chunk's captured log lines, chunk by chunk."""
    return [line for log in sorted(work_dir.glob("*-*.log"))
            for line in log.read_text().splitlines()]


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
        # a model is a bundled name or a path to the user's spec: chunks are named by stem
        stem = Path(model).stem
        for start in range(0, settings.replicates, settings.chunk):
            reps = list(range(start, min(start + settings.chunk, settings.replicates)))
            chunk = work_dir / f"{stem}-{reps[0]:04d}-{reps[-1]:04d}.csv"
            tasks.append((data_folder, model, prior_name, reps, settings, str(chunk)))
    if client is None:
        files = [run_chunk(*task) for task in tasks]
    else:
        futures = [client.submit(run_chunk, *task, pure=False) for task in tasks]
        files = client.gather(futures)
    return pd.concat([pd.read_csv(f, float_precision="round_trip") for f in files],
                     ignore_index=True)


