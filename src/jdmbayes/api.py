"""The Python front door: ``jdmbayes.fit``, ``jdmbayes.load_series``, ``jdmbayes.batch.grid``.

    >>> import jdmbayes
    >>> result = jdmbayes.fit("rash_milestones", seed=1, ci_prob=0.95, ci_kind="eti")
    >>> result.summary()            # the rows and columns of summary.csv
    >>> result.idata                # the posterior (an xarray DataTree, ArviZ 1)
    >>> result.diagnostics          # gates, R-hat, ESS, divergences, LOO
    >>> result.plot("rank")         # a matplotlib Figure
    >>> result.write("results/run1")   # the run folder the command line writes

Nothing is fitted when a :class:`Fit` is made: :func:`fit` fits, then returns one. The
command line (``jdmbayes fit``) calls :func:`fit` and :meth:`Fit.write`, so both give the
same files for the same arguments.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from jdmbayes.batch.fits import FitJob, close_client, open_client, run_in_memory
from jdmbayes.data.validate import Series
from jdmbayes.data.validate import load_series as _load_series
from jdmbayes.errors import InputError
from jdmbayes.inference.compare import compare_models
from jdmbayes.inference.fitted import ModelResult
from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.inference.summarise import CI_KINDS, summary_table
from jdmbayes.kinds.fit import check_models, index_model
from jdmbayes.models.spec import (
    MODELS_DIR,
    ROOT,
    is_model_spec,
    load_model_spec,
    load_prior_set,
)
from jdmbayes.results.runfolder import RunFolder
from jdmbayes.results.writer import now, run_manifest, write_results

BUNDLED = ROOT / "data" / "ding2021"


def default_models(models_dir: str | Path | None = None) -> list[str]:
    """Every spec's name in ``models_dir`` (the user's folder), else every bundled model's
    (``models/*.toml``)."""
    folder = Path(models_dir) if models_dir is not None else MODELS_DIR
    return sorted(p.stem for p in folder.glob("*.toml") if is_model_spec(p))


def load_series(path: str | Path = BUNDLED) -> Series:
    """Read and validate a series folder (``data/README.md``); ``InputError`` lists every
    problem with file, row, column and rule."""
    return _load_series(str(path))


@dataclass
class Fit:
    """Fitted models of one series: the public result of :func:`fit`.

    ``results`` holds one :class:`~jdmbayes.pipeline.ModelResult` per model, in the order
    asked for; ``fit["cmas"]`` is one of them.
    """

    results: list[ModelResult]
    data: str
    series: Series
    settings: SamplerSettings
    ci_prob: float
    ci_kind: str
    started: str
    command: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    # where exact leave-one-out refits run (:meth:`compare`): Dask when jobs > 1 or a
    # scheduler is named, as the fits themselves
    jobs: int = 1
    scheduler: str | None = None
    # third-party warnings on the console as well as in log.txt (``--verbose``)
    verbose: bool = False
    _comparison: pd.DataFrame | None = field(default=None, repr=False)

    @property
    def models(self) -> list[str]:
        return [r.name for r in self.results]

    def __getitem__(self, model: str) -> ModelResult:
        for result in self.results:
            if result.name == model:
                return result
        raise KeyError(f"no model {model!r} in this fit; models: {', '.join(self.models)}")

    def _one(self, model: str | None) -> ModelResult:
        if model is not None:
            return self[model]
        if len(self.results) != 1:
            raise ValueError(f"this fit has {len(self.results)} models "
                             f"({', '.join(self.models)}); name one")
        return self.results[0]

    @property
    def idata(self):
        """The posterior draws and every other group of the fit (``xarray.DataTree``) when
        one model was fitted; ``fit[name].idata`` for one of several."""
        return self._one(None).idata

    @property
    def diagnostics(self) -> dict:
        """model -> gates, max R-hat, min ESS, divergences, E-BFMI, patient-level LOO."""
        return {r.name: r.diagnostics for r in self.results}

    @property
    def passed(self) -> bool:
        return all(r.diagnostics["verdict"] == "pass" for r in self.results)

    def loo_not_computed(self) -> dict[str, str]:
        """Model -> why its patient-level LOO was not computed (draws too few or stuck), for
        the models without one: they cannot be compared."""
        return {r.name: r.diagnostics["loo_warning"] for r in self.results
                if "elpd_loo" not in r.diagnostics and "loo_warning" in r.diagnostics}

    def summary(self) -> pd.DataFrame:
        """Every parameter and estimand as one row, unrounded: ``summary.csv``."""
        return summary_table([row for r in self.results for row in r.summary_rows])

    def figures(self, model: str | None = None) -> dict:
        """name -> matplotlib Figure of every report figure of ``model``."""
        from jdmbayes.results.report_plots import figures_for

        result = self._one(model)
        return figures_for(result, pd.DataFrame(result.summary_rows))

    def plot(self, name: str, model: str | None = None):
        """One report figure: ``rank``, ``forest``, ``prior_posterior``, and
        ``ppc_survival`` and ``survival_by_group`` (milestones) or ``trajectories``
        (longitudinal)."""
        figures = self.figures(model)
        if name not in figures:
            raise ValueError(f"no figure {name!r}; this model has: {', '.join(figures)}")
        return figures[name]

    def manifest(self, shareable: bool = False, all_draws: bool = False) -> dict:
        return run_manifest(self.data, self.series, self.results, self.settings, self.ci_prob,
                            self.ci_kind, self.command, self.started, shareable=shareable,
                            all_draws=all_draws)

    def compare(self) -> pd.DataFrame:
        """The models ranked by patient-level LOO (:mod:`jdmbayes.inference.compare`): ELPD,
        SE, difference to the best and its SE, stacking weight, Pareto k count. Where a
        patient's Pareto k exceeds 0.7 the model is refitted without that patient (exact
        LOO, :mod:`jdmbayes.kinds.exact_loo`; compiled once, on Dask when the fit used
        several jobs), once per :class:`Fit`; the refits' records are the table's
        ``attrs["exact_refits"]``."""
        missing = self.loo_not_computed()
        if missing:
            raise ValueError("cannot compare the models: " + "; ".join(
                f"{name}: {why}" for name, why in missing.items()))
        if self._comparison is None:
            from jdmbayes.batch.loo_refits import exact_loo_refits
            from jdmbayes.console import CapturedLog

            with CapturedLog(echo=False) as log:
                exact, records = exact_loo_refits(self.results, self.series, self.jobs,
                                                  self.scheduler)
            self.log = [*self.log, *log.lines]
            table = compare_models(self.results, exact)
            table.attrs["exact_refits"] = records
            self._comparison = table
        return self._comparison

    def write(self, folder: str | Path, overwrite: bool = False, shareable: bool = False,
              allow_failed_diagnostics: bool = False, compare: bool = False,
              all_draws: bool = False) -> Path:
        """Write the run folder (atomically: complete or absent). An existing folder is
        replaced only with ``overwrite``. ``compare`` adds the model comparison
        (``compare.csv``, ``compare.md``, ``compare.png`` and a section of the report).
        ``posterior.nc`` keeps per-patient draws thinned, as float32, unless ``all_draws``
        (:mod:`jdmbayes.results.storage`)."""
        run = RunFolder(folder, overwrite=overwrite)
        run.check()
        manifest = self.manifest(shareable, all_draws)
        comparison = self.compare() if compare else None
        if comparison is not None:
            # every exact leave-one-out refit (patients by number, no identifiers)
            manifest["exact_loo_refits"] = comparison.attrs["exact_refits"]
        with run as tmp:
            write_results(tmp, self.results, manifest, shareable=shareable,
                          allow_failed=allow_failed_diagnostics, log=self.log,
                          comparison=comparison, echo=self.verbose)
        return run.out


MAX_SEED = 2**32 - 1   # as Stan's: seeds are whole numbers from 0 to 2^32 - 1


def check_seed(seed, label: str = "seed (--seed)") -> None:
    """A seed is a whole number from 0 to :data:`MAX_SEED` (InputError otherwise, naming
    it as ``label``)."""
    # any integer type (a NumPy integer from a notebook too), not True or False
    if not (_is_number(seed, whole=True) and 0 <= seed <= MAX_SEED):
        raise InputError(f"{label} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")


def _is_number(value, whole: bool = False) -> bool:
    """A real number (a whole one if ``whole``) of any numeric type, not True or False."""
    kind = numbers.Integral if whole else numbers.Real
    return isinstance(value, kind) and not isinstance(value, bool)


def check_options(ci_prob: float, ci_kind: str, chains: int, draws: int, tune: int,
                   jobs: int, target_accept: float | None = None, seed: int = 0) -> None:
    """The sampling and interval options of fit and sensitivity (InputError if invalid)."""
    check_seed(seed)
    if target_accept is not None and not (_is_number(target_accept)
                                          and 0 < target_accept < 1):
        raise InputError("target_accept (--target-accept) must be between 0 and 1, got "
                         f"{target_accept!r}")
    if not (_is_number(ci_prob) and 0 < ci_prob < 1):
        raise InputError(f"ci_prob (--ci-prob) must be between 0 and 1, got {ci_prob!r}")
    if ci_kind not in CI_KINDS:
        raise InputError(f"ci_kind (--ci-kind) must be one of {', '.join(CI_KINDS)}, "
                         f"got {ci_kind!r}")
    for name, value in (("jobs", jobs), ("chains", chains), ("draws", draws), ("tune", tune)):
        if not (_is_number(value, whole=True) and value >= 1):
            raise InputError(f"{name} (--{name}) must be a whole number, at least 1, got "
                             f"{value!r}")


DEFAULT_RETRY_BUDGET_S = 300.0
# the default budget is also at least this many times the first attempt's sampling time: the
# doubled run (2x) and the other parameterisation at its length (2x) after the first (1x),
# with a sixth for the spread of sampling times
DEFAULT_RETRY_FIRST_MULTIPLE = 6.0


def retry_budget_settings(value: float | None = None) -> dict:
    """The :class:`SamplerSettings` fields of a fit's retry budget. ``retry_budget_s``:
    ``value`` if given, else the environment variable ``JDMBAYES_RETRY_BUDGET`` (seconds; a
    test suite sets 0), else ``DEFAULT_RETRY_BUDGET_S``. ``retry_budget_first_multiple``:
    ``DEFAULT_RETRY_FIRST_MULTIPLE`` for that default budget only, so the retries of a large
    series whose first attempt alone takes most of the fixed seconds are not all skipped;
    0 for a given budget, which is a hard limit."""
    multiple = 0.0
    if value is not None:
        budget = float(value)
    else:
        text = os.environ.get("JDMBAYES_RETRY_BUDGET", "")
        try:
            budget = float(text) if text else DEFAULT_RETRY_BUDGET_S
        except ValueError:
            raise InputError(f"JDMBAYES_RETRY_BUDGET must be a number of seconds, got "
                             f"{text!r}") from None
        if not text:
            multiple = DEFAULT_RETRY_FIRST_MULTIPLE
    if budget < 0:
        raise InputError(f"the retry budget must be 0 or more seconds, got {budget:g}")
    return {"retry_budget_s": budget, "retry_budget_first_multiple": multiple}


def fit(model: str | list[str] | None = None, *, data: str | Path = BUNDLED,
        priors: str | None = None, seed: int = 20211028, draws: int = 1000, tune: int = 1000,
        chains: int = 4, sampler: str = "nutpie", ci_prob: float = 0.95, ci_kind: str = "eti",
        jobs: int = 1, scheduler: str | None = None, progress: bool = False,
        verbose: bool = False, command: list[str] | None = None,
        models_dir: str | Path | None = None, retry_budget: float | None = None,
        target_accept: float | None = None) -> Fit:
    """Fit one model (a spec path, or a name looked up in ``models_dir``, else the current
    folder, then the bundled ``models/``), several, or (``None``) every model of
    ``models_dir`` (else every bundled model) to the series in ``data``; return the
    :class:`Fit`.

    ``priors`` names a prior set (default: each spec's own). Intervals are ``ci_kind``
    ('eti' equal-tailed or 'hdi' highest-density) at ``ci_prob``; both are written beside
    every interval. ``jobs`` > 1 fits models in that many Dask worker processes
    (``scheduler``: an existing cluster). Every spec is checked against the series before
    anything is sampled: a problem raises ``InputError`` naming file, rule and what to do.
    A model that fails a diagnostic gate is refitted as the failure advice says, within
    ``retry_budget`` seconds of sampling (:data:`jdmbayes.kinds.fit.RETRY_LADDER`; default
    :func:`retry_budget_settings`: 300 s or six times the first attempt, whichever is
    more; 0: never), and every attempt is recorded. ``target_accept`` is NUTS' target
    acceptance rate (None: 0.99, for small series, except that with a retry budget a score
    whose patient effects are sampled through each patient's level is fitted first at 0.9
    and at 0.99 if that fails a gate; a large series with well-informed patient effects may
    sample at 0.8 in a fraction of the time: ``benchmarks/RESULTS.md``, "2,500 patients").
    """
    check_options(ci_prob, ci_kind, chains, draws, tune, jobs, target_accept,
                  seed=seed)
    names = [model] if isinstance(model, str) else list(model or default_models(models_dir))
    started, series, specs, prior_sets = checked_inputs(names, data, priors, models_dir,
                                                        chains, draws, scheduler)
    settings = SamplerSettings(sampler=sampler, chains=chains, draws=draws, tune=tune,
                               target_accept=target_accept, seed=seed,
                               **retry_budget_settings(retry_budget))
    return fit_checked(series, str(data), specs, prior_sets, settings, ci_prob, ci_kind,
                       jobs=jobs, scheduler=scheduler, progress=progress, verbose=verbose,
                       started=started, command=command)


def checked_inputs(names: list[str], data, priors: str | None, models_dir, chains: int,
                   draws: int, scheduler: str | None):
    """Start time, series, specs and prior sets, every spec checked against the series and
    the draws asked for (``InputError`` with every problem before anything is sampled)."""
    started = now()
    series = load_series(data)
    specs = [load_model_spec(name, models_dir) for name in names]
    prior_sets = [load_prior_set(priors or spec.prior_set, spec) for spec in specs]
    check_models(series, specs, chains, draws, scheduler)
    return started, series, specs, prior_sets


def fit_checked(series: Series, data: str, specs, prior_sets, settings: SamplerSettings,
                ci_prob: float, ci_kind: str, *, jobs: int = 1, scheduler: str | None = None,
                progress: bool = False, verbose: bool = False, started: str | None = None,
                command: list[str] | None = None) -> Fit:
    """:func:`fit` for specs and prior sets already loaded and checked against ``series``."""
    from jdmbayes.console import CapturedLog, ProgressDisplay, subscribe

    started = started or now()
    parallel = bool(scheduler) or (jobs > 1 and len(specs) > 1)
    topic = f"jdmbayes-progress-{id(specs)}" if parallel else ""
    jobs_ = [FitJob(data, str(spec.path), str(prior_set.path), settings, ci_prob, ci_kind,
                    progress_topic=topic, verbose=verbose, spec=spec, prior_set=prior_set)
             for spec, prior_set in zip(specs, prior_sets)]
    display = ProgressDisplay([s.name for s in specs], settings.chains, enabled=progress)
    with CapturedLog(echo=verbose) as log, display:
        if parallel:
            # models in parallel Dask worker processes: their compilations overlap
            client = open_client(scheduler, min(jobs, len(jobs_)))
            try:
                subscribe(client, topic, display)
                results = run_in_memory(jobs_, client)
            finally:
                close_client(client)
        else:
            results = run_in_memory(jobs_, report=display)
    return Fit(results, data, series, settings, ci_prob, ci_kind, started,
               command=list(command) if command is not None else
               ["python", "-c", f"jdmbayes.fit({[s.name for s in specs]!r}, ...)"],
               log=log.lines, jobs=jobs, scheduler=scheduler, verbose=verbose)


def compare(models: list[str], *, data: str | Path = BUNDLED, priors: str | None = None,
            seed: int = 20211028, draws: int = 1000, tune: int = 1000, chains: int = 4,
            sampler: str = "nutpie", ci_prob: float = 0.95, ci_kind: str = "eti",
            jobs: int = 1, scheduler: str | None = None, progress: bool = False,
            verbose: bool = False, command: list[str] | None = None,
            models_dir: str | Path | None = None, retry_budget: float | None = None,
            target_accept: float | None = None) -> Fit:
    """Fit two or more specs of the same outcome to the same patients and return the
    :class:`Fit` (``.compare()`` ranks them; ``.write(folder, compare=True)`` writes the
    comparison too). Specs that do not predict the same data are refused before sampling."""
    check_options(ci_prob, ci_kind, chains, draws, tune, jobs, target_accept,
                  seed=seed)
    if len(models) < 2 or len(set(models)) != len(models):
        raise InputError(f"compare needs two or more different models, got {models!r}")
    started, series, specs, prior_sets = checked_inputs(models, data, priors, models_dir,
                                                        chains, draws, scheduler)
    check_comparable(series, specs)
    settings = SamplerSettings(sampler=sampler, chains=chains, draws=draws, tune=tune,
                               target_accept=target_accept, seed=seed,
                               **retry_budget_settings(retry_budget))
    return fit_checked(series, str(data), specs, prior_sets, settings, ci_prob, ci_kind,
                       jobs=jobs, scheduler=scheduler, progress=progress, verbose=verbose,
                       started=started, command=command)


def check_comparable(series: Series, specs) -> None:
    """Before sampling: the specs predict the same outcomes of the same patients."""
    seen = None
    for spec in specs:
        data = index_model(series, spec)
        target = (spec.kind, spec.outcomes or (spec.measure,), tuple(data.subject_ids))
        if seen is not None and target != seen[1]:
            what = "outcomes" if target[:2] != seen[1][:2] else "patients"
            raise InputError(f"models '{seen[0]}' and '{spec.name}' predict different "
                             f"{what}: ELPDs compare only models of the same outcomes of "
                             "the same patients (check outcomes, measure and population)")
        seen = seen or (spec.name, target)


def sensitivity(model: str | list[str] | None = None, *, priors: list[str],
                out: str | Path, data: str | Path = BUNDLED, seed: int = 20211028,
                draws: int = 1000, tune: int = 1000, chains: int = 4, sampler: str = "nutpie",
                ci_prob: float = 0.95, ci_kind: str = "eti", jobs: int = 2,
                scheduler: str | None = None, overwrite: bool = False,
                command: list[str] | None = None, echo=print,
                models_dir: str | Path | None = None,
                target_accept: float | None = None) -> dict[str, pd.DataFrame]:
    """Fit every model (``None``: every one of ``models_dir``, else every bundled one) under
    every prior set in ``priors`` on Dask, saving each fit as it finishes (rerun to resume),
    and write the grid's tables,
    figures and summaries to ``out`` (as ``jdmbayes sensitivity``).

    Returns the grid's tables: ``estimands`` (every key estimand by prior set),
    ``diagnostics`` (one row per fit) and ``verdicts`` (which conclusions hold under every
    prior set). ``echo`` receives the progress lines.
    """
    from jdmbayes.batch.fits import close_client, open_client
    from jdmbayes.batch.grid import (
        collect,
        grid_config,
        grid_jobs,
        prepare_folder,
        robustness,
        run_grid,
    )
    from jdmbayes.batch.grid import speed as speed_of
    from jdmbayes.data.io import series_provenance
    from jdmbayes.results.sensitivity_report import write_sensitivity

    check_options(ci_prob, ci_kind, chains, draws, tune, jobs, target_accept,
                  seed=seed)
    if len(priors) < 2 or len(set(priors)) != len(priors):
        raise InputError(f"priors needs two or more different prior sets, got {priors!r}")
    names = [model] if isinstance(model, str) else list(model or default_models(models_dir))
    series = load_series(data)
    specs = [load_model_spec(name, models_dir) for name in names]
    problems, prior_sets = [], {}
    for spec in specs:
        prior_sets[spec.name] = []
        for name in priors:
            try:
                prior_sets[spec.name].append(load_prior_set(name, spec))
            except InputError as error:
                problems.extend(p for p in error.problems if p not in problems)
    if problems:
        raise InputError(problems)
    check_models(series, specs, chains, draws, scheduler)
    settings = SamplerSettings(sampler=sampler, chains=chains, draws=draws, tune=tune,
                               target_accept=target_accept, seed=seed)
    out = Path(out)
    config = grid_config(series, specs, prior_sets, settings, ci_prob, ci_kind)
    resuming = prepare_folder(out, config, overwrite)
    echo(("resuming" if resuming else "starting") + f" grid in {out}: {len(specs)} model(s) "
         f"x {len(priors)} prior sets")
    groups = grid_jobs(str(data), specs, prior_sets, settings, ci_prob, ci_kind, out,
                       workers=jobs)
    extra = {"command": list(command) if command is not None else
             ["python", "-c", "jdmbayes.sensitivity(...)"],
             "grid": str(out.resolve()), "grid_started": now()}
    client = open_client(scheduler, jobs)
    try:
        statuses, wall = run_grid(groups, extra, client)
    finally:
        close_client(client)
    tables = collect(out, specs, priors)
    verdicts = robustness(tables["estimands"], tables["diagnostics"], priors)
    write_sensitivity(out, tables, verdicts, priors, speed_of(statuses, wall), config,
                      series_provenance(str(data)))
    return {"estimands": tables["estimands"], "diagnostics": tables["diagnostics"],
            "verdicts": verdicts}


__all__ = ["Fit", "fit", "load_series", "sensitivity", "default_models", "BUNDLED"]


def plan(design: str | Path, *, from_run: str | Path | None = None, out: str | Path | None = None,
         trials: int = 1000, seed: int = 20211028, jobs: int = 2, scheduler: str | None = None,
         method: str | None = None, overwrite: bool = False, command: list[str] | None = None,
         echo=None, allow_failed_diagnostics: bool = False):
    """Assurance, type I error and operating characteristics of a planned trial
    (``designs/<design>.toml`` or a path), as ``jdmbayes plan``.

    ``from_run``: a run folder holding the fitted model the design names; its posterior is
    the design prior (a ``normal`` design states its own). ``method`` forces ``fast`` or
    ``mcmc`` (default: fast where its agreement check with MCMC passes). A fit in
    ``from_run`` that failed its diagnostic gates is refused unless
    ``allow_failed_diagnostics`` (the plan's sentences then say so). With ``out`` the plan
    folder is written (atomically; an interrupted plan resumes). Returns the
    :class:`~jdmbayes.planning.run.PlanResult` (``.table`` is ``plan.csv``).
    """
    import tempfile

    import numpy as np

    from jdmbayes.batch.fits import close_client, open_client
    from jdmbayes.errors import Problem
    from jdmbayes.planning.assurance import analysis_prior_set
    from jdmbayes.planning.design import load_design
    from jdmbayes.planning.design_prior import design_prior_from_run, normal_design_prior
    from jdmbayes.planning.run import discard_work, run_plan
    from jdmbayes.results.plan_report import write_plan
    from jdmbayes.versions import __version__, package_versions

    if method not in (None, "fast", "mcmc"):
        raise InputError(f"method must be 'fast' or 'mcmc', got {method!r}")
    if not (_is_number(jobs, whole=True) and jobs >= 1):
        raise InputError(f"jobs must be a whole number >= 1, got {jobs!r}")
    # before anything is loaded (run_plan checks it for direct callers)
    if not (_is_number(trials, whole=True) and trials >= 10):
        raise InputError(f"--trials must be a whole number, at least 10, got {trials!r}")
    check_seed(seed)
    started = now()
    trial_design = load_design(str(design))
    if trial_design.endpoint == "normal":
        prior = normal_design_prior(trial_design, 100_000,
                                    np.random.default_rng(np.random.SeedSequence([seed, 7])))
        analysis_prior = StatedPrior("stated in the design: " + (
            "flat" if np.isinf(trial_design.analysis_prior["sd"]) else
            f"N({trial_design.analysis_prior['mean']:g}, "
            f"{trial_design.analysis_prior['sd']:g}^2)"), trial_design.path)
    else:
        if from_run is None:
            raise InputError([Problem(str(trial_design.path), "design_prior_run",
                                      f"design '{trial_design.name}' takes its design prior "
                                      f"from a fitted run of model '{trial_design.model}': "
                                      "pass --from RUN (a run folder of jdmbayes fit)")])
        prior = design_prior_from_run(trial_design, from_run,
                                      allow_failed=allow_failed_diagnostics)
        analysis_prior = analysis_prior_set(trial_design)
    folder = RunFolder(out, overwrite=overwrite) if out is not None else None
    if folder is not None:
        folder.check()
    client = open_client(scheduler, jobs) if (jobs > 1 or scheduler) and \
        trial_design.endpoint != "normal" else None
    # the resumable work folder sits beside ``out`` (in memory only: a temporary folder)
    target = Path(out) if out is not None else Path(tempfile.mkdtemp()) / "plan"
    try:
        result = run_plan(trial_design, prior, analysis_prior, target, trials, seed,
                          client=client, method=method, echo=echo)
    finally:
        if client is not None:
            close_client(client)
    if folder is not None:
        data = prior.source.get("data") or {}
        manifest = {"jdmbayes": __version__, "kind": "plan (simulated trials)",
                    "started": started, "finished": now(),
                    "command": command or ["jdmbayes.plan", str(design)], **result.config,
                    "design_file": str(trial_design.path), "design_prior_source": prior.source,
                    "analysis": result.agreement, "effective_sample_size": result.ess,
                    "interval": {"kind": trial_design.interval_kind,
                                 "prob": trial_design.interval_prob},
                    "versions": package_versions()}
        with folder as tmp:
            write_plan(tmp, result, manifest, bool(data.get("reconstructed")))
    discard_work(target)
    return result


def check_plan_analysis(design: str | Path, *, from_run: str | Path, out: str | Path,
                        trials: int = 200, seed: int = 20211028, jobs: int = 2,
                        scheduler: str | None = None, overwrite: bool = False) -> dict:
    """Analyse ``trials`` simulated trials of a time-to-event design both fast and by MCMC
    and write ``agreement.csv`` and ``check.json`` to ``out`` (commit it as
    ``validation/plan-agreement/<design>/`` to let plans of this design use the fast path
    without rerunning the check). Returns the check's summary."""
    from jdmbayes.batch.fits import close_client, open_client
    from jdmbayes.data.io import sha256_of
    from jdmbayes.planning.assurance import analysis_prior_set
    from jdmbayes.planning.design import load_design
    from jdmbayes.planning.design_prior import design_prior_from_run
    from jdmbayes.planning.run import AGREEMENT_TRIALS, run_agreement_check
    from jdmbayes.results.runfolder import write_json
    from jdmbayes.versions import package_versions

    trial_design = load_design(str(design))
    if from_run is None:
        raise InputError("the check needs --from RUN (the run whose posterior is the design "
                         "prior)")
    if trial_design.endpoint == "normal":
        raise InputError(f"design '{trial_design.name}' is analysed exactly; there is no fast "
                         "analysis to check")
    if trials < AGREEMENT_TRIALS:
        raise InputError(f"the check needs at least {AGREEMENT_TRIALS} trials, got {trials}")
    check_seed(seed)
    # the check compares two analyses of the same simulated trials and states no effect:
    # a design prior from a fit that failed its gates serves it as well
    prior = design_prior_from_run(trial_design, from_run, allow_failed=True)
    analysis_prior = analysis_prior_set(trial_design)
    folder = RunFolder(out, overwrite=overwrite)
    folder.check()
    client = open_client(scheduler, jobs) if jobs > 1 or scheduler else None
    try:
        checked, summary = run_agreement_check(trial_design, prior, analysis_prior, seed,
                                               trials, client)
    finally:
        if client is not None:
            close_client(client)
    summary = {**summary, "design": trial_design.name,
               "design_sha256": sha256_of(trial_design.path),
               "analysis_prior": analysis_prior.name, "seed": seed,
               "mcmc": "nutpie, 4 chains x 1000 draws after 1000 tuning",
               "design_prior_source": {k: v for k, v in prior.source.items() if k != "data"},
               "versions": package_versions()}
    with folder as tmp:
        checked.to_csv(tmp / "agreement.csv", index=False, float_format="%.17g")
        write_json(tmp / "check.json", summary)
    return summary


@dataclass(frozen=True)
class StatedPrior:
    """An analysis prior stated in a design file (normal endpoint)."""

    name: str
    path: Path
