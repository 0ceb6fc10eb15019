"""Command line: ``jdmbayes fit|compare|sensitivity|sbc|designs|plan|validate|describe``
(``scripts/*.py`` call these).

Exit codes: 0 ok; 2 bad input or usage (a clear message, nothing written); 3 a diagnostic
gate failed (results written, marked as failing); 1 a calibration check failed (``sbc``,
``designs``; the report is written and says which) or the fast trial analysis disagreed with MCMC
(``plan --check-agreement``; the check is written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from jdmbayes.api import BUNDLED, check_options, check_seed
from jdmbayes.api import default_models as _default_models
from jdmbayes.errors import EXIT_BAD_INPUT, EXIT_DIAGNOSTICS_FAILED, EXIT_OK, InputError
from jdmbayes.inference.sampling import DEFAULT_TARGET_ACCEPT
from jdmbayes.models.longitudinal import LEVEL_TARGET_ACCEPT, LEVEL_TUNE
from jdmbayes.processes import configure_own_process
from jdmbayes.versions import __version__

ALL_DRAWS_HELP = ("keep every draw of every variable in posterior.nc, as sampled (default: "
                  "per-patient draws thinned to at most 1000 and predictive draws to 400, float32)")
RETRY_HELP = ("seconds of sampling (all attempts; compilation not counted) within which a "
              "model that failed a diagnostic gate is refitted as the advice says (doubled "
              "tuning and draws; the other parameterisation of the patient effects; the "
              "low-rank mass matrix); a retry still sampling at the budget is stopped there; 0: "
              "never (default: $JDMBAYES_RETRY_BUDGET, else 300 or six times the first "
              "attempt's sampling time, whichever is more)")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _check_common(args) -> None:
    check_options(args.ci_prob, args.ci_kind, args.chains, args.draws, args.tune, args.jobs,
                  args.target_accept, seed=args.seed)


def _run_out(args, prefix: str = "") -> Path:
    return Path(args.out) if args.out else Path("results") / (
        prefix + dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-seed{args.seed}")


def fit_command(args) -> int:
    """``jdmbayes fit``: :func:`jdmbayes.api.fit_checked`, then :meth:`Fit.write`."""
    from jdmbayes.api import fit_checked
    from jdmbayes.console import final_table
    from jdmbayes.data.validate import load_series
    from jdmbayes.inference.sampling import SamplerSettings
    from jdmbayes.kinds.fit import check_models
    from jdmbayes.models.spec import load_model_spec, load_prior_set
    from jdmbayes.results.runfolder import RunFolder
    from jdmbayes.results.writer import now

    _check_common(args)
    started = now()
    series = load_series(args.data)
    specs = [load_model_spec(name, args.models_dir)
             for name in (args.model or _default_models(args.models_dir))]
    prior_sets = [load_prior_set(args.priors or spec.prior_set, spec) for spec in specs]
    check_models(series, specs, args.chains, args.draws, args.scheduler)
    comparing = getattr(args, "compare", False)
    if comparing:
        from jdmbayes.api import check_comparable

        if len(specs) < 2:
            raise InputError("compare needs two or more --model")
        check_comparable(series, specs)
    if getattr(args, "prior_predictive", False):
        return prior_predictive_command(args, series, specs, prior_sets, started)
    from jdmbayes.api import retry_budget_settings

    settings = SamplerSettings(sampler=args.sampler, chains=args.chains, draws=args.draws,
                               tune=args.tune, target_accept=args.target_accept, seed=args.seed,
                               **retry_budget_settings(args.retry_budget))
    out = _run_out(args)
    RunFolder(out, overwrite=args.overwrite).check()
    print(f"fitting {len(specs)} model(s) ({', '.join(s.name for s in specs)}): "
          f"{settings.chains} chains x {settings.draws} draws after {settings.tune} tuning, "
          f"seed {settings.seed}", flush=True)
    fitted = fit_checked(series, args.data, specs, prior_sets, settings, args.ci_prob,
                         args.ci_kind, jobs=args.jobs, scheduler=args.scheduler,
                         progress=True, verbose=args.verbose, started=started,
                         command=["jdmbayes", *sys.argv[1:]])
    uncompared = fitted.loo_not_computed() if comparing else {}
    for name, why in uncompared.items():
        print(f"  {name}: {why}: the models are not compared (compare.csv is not written)",
              flush=True)
    comparing = comparing and not uncompared
    if comparing:
        from jdmbayes.kinds.exact_loo import patients_to_refit

        print("comparing by patient-level LOO (a model is refitted without each patient "
              "whose Pareto k exceeds 0.7)", flush=True)
        planned = {r.name: patients_to_refit(r) for r in fitted.results}
        if any(planned.values()):
            print("exact LOO: refitting " + "; ".join(
                f"{name} without patient{'s' if len(patients) > 1 else ''} "
                f"{', '.join(map(str, patients))}"
                for name, patients in planned.items() if patients)
                + " (each a full fit with the model's own settings)", flush=True)
        began = time.perf_counter()
        refits = fitted.compare().attrs["exact_refits"]
        if refits:
            print(f"exact LOO: {len(refits)} refit(s) in {time.perf_counter() - began:.0f} s "
                  "(loo_refits.csv)", flush=True)
    fitted.write(out, overwrite=args.overwrite, shareable=args.shareable,
                 allow_failed_diagnostics=args.allow_failed_diagnostics, compare=comparing,
                 all_draws=args.all_draws)
    print(final_table(fitted.results))
    if comparing:
        from jdmbayes.results.comparison import comparison_sentences

        for line in comparison_sentences(fitted.compare()):
            print(line)
        print(f"comparison: {out / 'compare.csv'}, {out / 'compare.md'}")
    for r in fitted.results:
        print(f"  {r.name}: {r.rows_note()}")
    for r in fitted.results:
        for failure in r.diagnostics["failures"]:
            print(f"  {r.name}: FAILED {failure['problem']}; try: {failure['try']}")
    if series_is_reconstructed(args.data):
        print("note: the bundled series is reconstructed (synthetic rows), not patient records")
    print(f"warnings and log lines: {out / 'log.txt'}")
    print(out)
    return EXIT_OK if fitted.passed and not uncompared else EXIT_DIAGNOSTICS_FAILED


def series_is_reconstructed(data: str) -> bool:
    from jdmbayes.data.io import series_provenance

    return bool(series_provenance(data)["reconstructed"])


def prior_predictive_command(args, series, specs, prior_sets, started) -> int:
    """``fit --prior-predictive``: what each prior set implies, without fitting."""
    from jdmbayes.kinds.prior_predictive import prior_predictive_table, simulate_prior_predictive
    from jdmbayes.results.formatting import prior_predictive_markdown
    from jdmbayes.results.plots import prior_predictive_figure, save_png
    from jdmbayes.results.runfolder import RunFolder, log_text, write_json
    from jdmbayes.results.writer import data_provenance, now
    from jdmbayes.versions import package_versions

    out = _run_out(args, "prior-predictive-")
    folder = RunFolder(out, overwrite=args.overwrite)
    folder.check()
    from jdmbayes.console import CapturedLog

    # PyMC's "Sampling: [...]" lines and warnings go to log.txt, as in a fit, and so do
    # those raised while the files are written (log.txt is written last)
    with CapturedLog(echo=args.verbose) as log:
        simulated = [simulate_prior_predictive(series, spec, prior_set, args.draws, args.seed)
                     for spec, prior_set in zip(specs, prior_sets)]
        table = prior_predictive_table(simulated)
        manifest = {"jdmbayes": __version__,
                    "kind": "prior predictive (no data used in fitting)",
                    "started": started, "finished": now(),
                    "command": ["jdmbayes", *sys.argv[1:]],
                    "data": data_provenance(args.data, series),
                    "models": {spec.name: {"spec_file": str(spec.path),
                                           "prior_set": ps.name, "prior_file": str(ps.path),
                                           "priors": ps.as_dicts()}
                               for spec, ps in zip(specs, prior_sets)},
                    "seed": args.seed, "prior_draws": args.draws,
                    "versions": package_versions()}
        with folder as tmp:
            table.to_csv(tmp / "prior_predictive.csv", index=False, float_format="%.17g")
            write_json(tmp / "manifest.json", manifest)
            (tmp / "prior_predictive.md").write_text(prior_predictive_markdown(table, manifest))
            for pp in simulated:
                save_png(prior_predictive_figure(pp), tmp / "plots" / f"{pp.model}_prior.png")
            (tmp / "log.txt").write_text(log_text(log.lines))
    print(out)
    return EXIT_OK


def sensitivity_command(args) -> int:
    """``jdmbayes sensitivity``: :func:`jdmbayes.api.sensitivity` (Dask, resumable)."""
    from jdmbayes.api import sensitivity

    prior_names = [p.strip() for p in args.priors.split(",") if p.strip()]
    names = None if args.model in (None, ["all"]) else args.model
    out = _run_out(args, "sensitivity-")
    try:
        tables = sensitivity(names, priors=prior_names, out=out, data=args.data,
                             models_dir=args.models_dir,
                             seed=args.seed, draws=args.draws, tune=args.tune,
                             target_accept=args.target_accept, chains=args.chains,
                             sampler=args.sampler, ci_prob=args.ci_prob,
                             ci_kind=args.ci_kind, jobs=args.jobs, scheduler=args.scheduler,
                             overwrite=args.overwrite, command=["jdmbayes", *sys.argv[1:]],
                             echo=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        print(f"interrupted; the fits already finished are kept in {out}: rerun the same "
              "command to resume.", file=sys.stderr)
        return 130
    verdicts = tables["verdicts"]
    for model in dict.fromkeys(verdicts["model"]):
        v = verdicts[verdicts["model"] == model]
        undetermined = int((v["verdict"] == "undetermined").sum())
        print(f"{model}: {int((v['verdict'] == 'robust').sum())} of {len(v)} key "
              f"estimands hold under every prior set"
              + (f"; {undetermined} undetermined (the reference fit failed a gate or fewer "
                 "than two fits passed)" if undetermined else ""))
    failed = tables["diagnostics"][tables["diagnostics"]["verdict"] != "pass"]
    for fit in failed.itertuples():
        print(f"  {fit.model} under {fit.prior_set}: FAILED {fit.failures} (shown in the "
              "grid, not used for its verdicts)")
    if series_is_reconstructed(args.data):
        print("note: the bundled series is reconstructed (synthetic rows), not patient records")
    print(out)
    return EXIT_DIAGNOSTICS_FAILED if len(failed) else EXIT_OK


def plan_command(args) -> int:
    """``jdmbayes plan``: :func:`jdmbayes.api.plan` (Dask, resumable)."""
    from jdmbayes.api import plan
    from jdmbayes.results.plan_report import plan_sentences

    out = Path(args.out) if args.out else Path("results") / (
        f"plan-{Path(args.design).stem}-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S"))
    if args.check_agreement:
        from jdmbayes.api import check_plan_analysis

        check = check_plan_analysis(args.design, from_run=args.from_run, out=out,
                                    trials=args.trials, seed=args.seed, jobs=args.jobs,
                                    scheduler=args.scheduler, overwrite=args.overwrite)
        print(f"fast analysis against MCMC: success decisions agree in {check['agreeing']} of "
              f"{check['trials']} trials ({check['agreement']:.1%}; required "
              f"{check['required']:.0%}): {'passed' if check['passed'] else 'FAILED'}")
        print(out)
        return EXIT_OK if check["passed"] else 1
    try:
        result = plan(args.design, from_run=args.from_run, out=out, trials=args.trials,
                      seed=args.seed, jobs=args.jobs, scheduler=args.scheduler,
                      method=args.method, overwrite=args.overwrite,
                      command=["jdmbayes", *sys.argv[1:]],
                      echo=lambda line: print(line, flush=True),
                      allow_failed_diagnostics=args.allow_failed_diagnostics)
    except KeyboardInterrupt:
        print(f"interrupted; the trials already analysed are kept beside {out}: rerun the "
              "same command to resume.", file=sys.stderr)
        return 130
    for line in plan_sentences(result):
        print(line)
    for note in result.notes:
        print(f"  note: {note}")
    if (result.prior.source.get("data") or {}).get("reconstructed"):
        print("note: the design prior comes from the bundled series, which is reconstructed "
              "(synthetic rows), not patient records")
    print(out)
    return EXIT_OK


def validate_command(args) -> int:
    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.fit import check_models
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    series = load_series(args.data)
    specs = [load_model_spec(name, getattr(args, "models_dir", None))
             for name in (getattr(args, "model", None) or [])]
    for spec in specs:   # every check fit makes before sampling, in fit's order
        load_prior_set(getattr(args, "priors", None) or spec.prior_set, spec)
    check_models(series, specs)
    if specs:
        print(f"{args.data}: every rule of {', '.join(s.name for s in specs)} holds")
    print(f"{args.data}: valid ({len(series.subjects)} subjects, {len(series.events)} event "
          f"rows, {len(series.measurements)} measurement rows)")
    return EXIT_OK


def describe_command(args) -> int:
    from jdmbayes.data.describe import describe_series
    from jdmbayes.data.validate import load_series

    print(describe_series(load_series(args.data)))
    return EXIT_OK


def _resumable_work(folder, suffix: str, marker: dict, overwrite: bool, what: str,
                    saved) -> Path:
    """The hidden work folder beside ``folder.out`` where a long run saves its pieces as they
    finish: resumed when it holds the same configuration (``marker``), else refused unless
    ``overwrite`` (then emptied); ``saved(work)`` says what is resumed."""
    import json
    import shutil

    from jdmbayes.results.runfolder import write_json

    work = folder.out.parent / f".{folder.out.name}.{suffix}"
    if (work / "settings.json").exists():
        if json.loads((work / "settings.json").read_text()) != json.loads(json.dumps(marker)):
            if not overwrite:
                raise InputError(f"{work} holds {what} of another configuration; pass "
                                 "--overwrite to discard them")
            shutil.rmtree(work)
        else:
            print(f"resuming: {saved(work)} in {work}")
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / "settings.json", marker)
    return work


def sbc_command(args) -> int:
    import shutil
    import time

    from jdmbayes.batch.fits import close_client, open_client
    from jdmbayes.batch.sbc import chunk_logs, run_sbc
    from jdmbayes.data.validate import load_series
    from jdmbayes.inference.calibration import SBCSettings, uniformity
    from jdmbayes.kinds.fit import check_distinct_names
    from jdmbayes.models.spec import load_model_spec, load_prior_set
    from jdmbayes.results.runfolder import RunFolder, log_text
    from jdmbayes.results.sbc_report import write_sbc_report
    from jdmbayes.results.writer import data_provenance, now
    from jdmbayes.versions import package_versions

    if args.replicates < 10 or args.thin_to < 9 or args.jobs < 1:
        raise InputError("--replicates must be at least 10, --thin-to at least 9 and --jobs "
                         f"at least 1 (got {args.replicates}, {args.thin_to}, {args.jobs})")
    check_seed(args.seed)
    for name in ("chains", "draws", "tune", "chunk"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.thin_to > args.chains * args.draws:
        raise InputError(f"--thin-to ({args.thin_to}) must be at most the posterior draws of "
                         f"a replicate, --chains x --draws ({args.chains * args.draws})")
    series = load_series(args.data)
    specs = [load_model_spec(m) for m in (args.model or _default_models())]
    check_distinct_names(specs)
    for spec in specs:
        load_prior_set(args.priors or spec.prior_set, spec)
    settings = SBCSettings(args.replicates, args.chains, args.tune, args.draws, args.thin_to,
                           seed=args.seed, chunk=args.chunk)
    folder = RunFolder(args.out, args.overwrite)
    folder.check()
    marker = {"data": data_provenance(args.data, series), "priors": args.priors,
              "settings": settings.as_dict()}
    work = _resumable_work(folder, "chunks", marker, args.overwrite, "replicates",
                           lambda w: f"{len(list(w.glob('*-*.csv')))} saved chunks")
    reused = len(list(work.glob("*-*.csv")))
    started = time.perf_counter()
    client = open_client(args.scheduler, args.jobs) if args.scheduler or args.jobs > 1 else None
    try:
        # workers load each spec from its file: a user's spec outside models/ works too
        ranks = run_sbc(args.data, [str(s.path) for s in specs], args.priors, settings, work,
                        client)
    finally:
        if client is not None:
            close_client(client)
    table = uniformity(ranks, settings.thin_to, settings.bins, settings.alpha)
    manifest = {"created": now(), "command": "python scripts/sbc.py " + " ".join(args.argv),
                "data": {**marker["data"], "folder_name": Path(args.data).name,
                         "kind": "reconstructed" if marker["data"]["reconstructed"]
                         else "user-supplied"},
                "prior_set": args.priors or "each spec's own", "settings": settings.as_dict(),
                "models": [s.name for s in specs], "seconds": time.perf_counter() - started,
                "chunks_reused": reused, "chunks": len(list(work.glob("*-*.csv"))),
                "workers": args.jobs if client is not None or args.scheduler else 0,
                "versions": package_versions()}
    with folder as tmp:
        write_sbc_report(tmp, ranks, table, manifest, settings)
        (tmp / "log.txt").write_text(log_text(chunk_logs(work)))
    shutil.rmtree(work, ignore_errors=True)
    for model, frame in table.groupby("model", sort=False):
        failing = frame.loc[~frame["passes"], "parameter"].tolist()
        print(f"{model}: {int(frame['passes'].sum())}/{len(frame)} parameters calibrated"
              + (f"; FAILING: {', '.join(failing)}" if failing else ""))
    print(f"wrote {folder.out}")
    return EXIT_OK if table["passes"].all() else 1


def designs_command(args) -> int:
    import platform
    import shutil
    import time

    import pandas as pd

    from jdmbayes.api import retry_budget_settings
    from jdmbayes.batch.design_check import MODELS, design_verdict, run_designs
    from jdmbayes.batch.designs import draw_designs
    from jdmbayes.inference.sampling import SamplerSettings
    from jdmbayes.results.design_report import write_design_report
    from jdmbayes.results.runfolder import RunFolder
    from jdmbayes.results.writer import now
    from jdmbayes.versions import package_versions

    models = tuple(args.model or MODELS)
    if args.designs < 1 or any(m not in MODELS for m in models):
        raise InputError(f"--designs must be at least 1 and --model one of {', '.join(MODELS)} "
                         f"(got {args.designs}, {', '.join(models)})")
    check_seed(args.seed)
    check_seed(args.design_seed, "--design-seed")
    settings = SamplerSettings(seed=args.seed,
                               **retry_budget_settings(args.retry_budget))
    folder = RunFolder(args.out, args.overwrite)
    folder.check()
    marker = {"designs": args.designs, "design_seed": args.design_seed,
              "settings": settings.as_dict()}
    work = _resumable_work(folder, "work", marker, args.overwrite, "fits",
                           lambda w: "the fits saved")
    designs = draw_designs(args.designs, args.design_seed)
    started = time.perf_counter()
    fits, coverage = run_designs(designs, work, settings, models,
                                 echo=lambda line: print(line, flush=True),
                                 fit_missing=not args.report_only)
    if fits.empty:
        raise InputError(f"no saved fits in {work} to report")
    verdict = design_verdict(fits, coverage, planned=len(designs))
    manifest = {"created": now(), "command": "python scripts/designs.py "
                + shlex.join(args.argv), "design_seed": args.design_seed,
                "designs": args.designs, "models": list(models),
                "settings": settings.as_dict(), "seconds": time.perf_counter() - started,
                "note": args.note,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
                           f"{platform.python_version()}",
                "versions": package_versions()}
    with folder as tmp:
        write_design_report(tmp, verdict, fits, coverage,
                            pd.DataFrame([d.as_row() for d in designs]), manifest)
    if not (verdict["verdict"] == "incomplete").any():
        shutil.rmtree(work, ignore_errors=True)      # an incomplete run keeps its fits
    for row in verdict.itertuples():
        print(f"{row.model}: {row.passed}/{row.designs} fits pass every gate; "
              f"{row.inside}/{row.truths} truths inside their 95% intervals "
              f"(expected {row.inside_low}-{row.inside_high}): {row.verdict}")
    print(f"wrote {folder.out}")
    return EXIT_OK if (verdict["verdict"] == "passes").all() else 1


def _sampling_options(parser) -> None:
    parser.add_argument("--data", default=str(BUNDLED), help="series folder")
    parser.add_argument("--out", help="run folder to write (exactly this folder)")
    parser.add_argument("--seed", type=int, default=20211028)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--target-accept", type=float, default=None,
                        help=f"NUTS target acceptance rate (default: {DEFAULT_TARGET_ACCEPT}, "
                             f"for small series; {LEVEL_TARGET_ACCEPT} first, after at most "
                             f"{LEVEL_TUNE} tuning steps, for a score whose patient effects "
                             "are sampled through each patient's level, then "
                             f"{DEFAULT_TARGET_ACCEPT} after --tune steps if a gate fails)")
    parser.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    parser.add_argument("--jobs", type=int, default=2,
                        help="Dask worker processes for the fits (fit: 1 = in this process)")
    parser.add_argument("--scheduler", help="an existing Dask scheduler, tcp://HOST:PORT "
                        "(default: a local cluster of --jobs workers)")
    parser.add_argument("--ci-prob", type=float, default=0.95, help="credible interval level")
    parser.add_argument("--ci-kind", choices=("eti", "hdi"), default="eti",
                        help="equal-tailed or highest-density interval")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--verbose", action="store_true", help="show third-party warnings and "
                        "log lines on the console too (they are always kept in log.txt)")


def _models_dir_option(parser) -> None:
    parser.add_argument("--models-dir", help="a folder of your own model specs (<name>.toml, "
                        "with prior sets in its priors/): --model NAME looks there first")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jdmbayes", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit models and write a run folder")
    fit.add_argument("--model", action="append", help="model name or spec path (repeatable; "
                     "a name is looked up in --models-dir, else the current folder, then in "
                     f"the bundled models/; default: every model of --models-dir, else the "
                     f"bundled {', '.join(_default_models())})")
    _models_dir_option(fit)
    fit.add_argument("--priors", help="prior set name or path (default: each spec's)")
    _sampling_options(fit)
    fit.add_argument("--prior-predictive", action="store_true",
                     help="write what the prior set implies on the outcome scale (tables "
                     "and plots, --draws prior draws) instead of fitting")
    fit.add_argument("--allow-failed-diagnostics", action="store_true",
                     help="write grant.md statements even when a diagnostic gate failed "
                     "(marked as such)")
    fit.add_argument("--shareable", action="store_true",
                     help="leave identifier-carrying groups out of posterior.nc")
    fit.add_argument("--all-draws", action="store_true", help=ALL_DRAWS_HELP)
    fit.add_argument("--retry-budget", type=float, help=RETRY_HELP)
    fit.set_defaults(handler=fit_command)
    ranked = sub.add_parser("compare", help="fit two or more specs of the same outcome and "
                            "rank them by patient-level PSIS-LOO (compare.csv, compare.md)")
    ranked.add_argument("--model", action="append", required=True,
                        help="model name or spec path (two or more)")
    _models_dir_option(ranked)
    ranked.add_argument("--priors", help="prior set name or path (default: each spec's)")
    _sampling_options(ranked)
    ranked.add_argument("--allow-failed-diagnostics", action="store_true",
                        help="write grant.md statements even when a diagnostic gate failed")
    ranked.add_argument("--shareable", action="store_true",
                        help="leave identifier-carrying groups out of posterior.nc")
    ranked.add_argument("--all-draws", action="store_true", help=ALL_DRAWS_HELP)
    ranked.add_argument("--retry-budget", type=float, help=RETRY_HELP)
    ranked.set_defaults(handler=fit_command, compare=True)
    grid = sub.add_parser("sensitivity", help="fit models under several prior sets and say "
                          "which conclusions hold under all of them")
    grid.add_argument("--model", action="append", help="model name or spec path (repeatable)"
                      ", or 'all' (default: all)")
    _models_dir_option(grid)
    grid.add_argument("--priors", default="default,vague,sceptical,enthusiastic",
                      help="comma-separated prior set names or paths")
    _sampling_options(grid)
    grid.set_defaults(handler=sensitivity_command)
    calibrate = sub.add_parser("sbc", help="simulation-based calibration of models on the "
                               "series' design (Dask)")
    calibrate.add_argument("--model", action="append", help="model name or spec path "
                           "(repeatable; default: every model)")
    calibrate.add_argument("--priors", help="prior set name or path (default: each spec's)")
    calibrate.add_argument("--data", default=str(BUNDLED), help="series folder (the design)")
    calibrate.add_argument("--out", default="validation/sbc", help="report folder")
    calibrate.add_argument("--replicates", type=int, default=200)
    calibrate.add_argument("--chains", type=int, default=2)
    calibrate.add_argument("--draws", type=int, default=500)
    calibrate.add_argument("--tune", type=int, default=500)
    calibrate.add_argument("--thin-to", type=int, default=99,
                           help="posterior draws kept per replicate (ranks 0..this)")
    calibrate.add_argument("--chunk", type=int, default=25, help="replicates per Dask task")
    calibrate.add_argument("--seed", type=int, default=20240601)
    calibrate.add_argument("--jobs", type=int, default=2, help="Dask worker processes "
                           "(1 = in this process)")
    calibrate.add_argument("--scheduler", help="an existing Dask scheduler, tcp://HOST:PORT")
    calibrate.add_argument("--overwrite", action="store_true",
                           help="replace --out and discard saved replicates of another run")
    calibrate.set_defaults(handler=sbc_command)
    varied = sub.add_parser("designs", help="fit the defaults to varied simulated designs "
                            "with known truth: gates passed and truth covered")
    varied.add_argument("--designs", type=int, default=40, help="how many designs")
    varied.add_argument("--design-seed", type=int, default=20261203,
                        help="seed of the designs and their series")
    varied.add_argument("--model", action="append", choices=("milestones", "trajectory"),
                        help="which of each design's models (repeatable; default: both)")
    varied.add_argument("--seed", type=int, default=20211028, help="the fits' seed")
    varied.add_argument("--retry-budget", type=float, help=RETRY_HELP)
    varied.add_argument("--out", default="validation/designs", help="report folder")
    varied.add_argument("--overwrite", action="store_true",
                        help="replace --out and discard saved fits of another run")
    varied.add_argument("--note", default="", help="a sentence for the report on how the "
                        "run was made (e.g. what else shared the machine)")
    varied.add_argument("--report-only", action="store_true",
                        help="fit nothing: write the report from the fits saved so far (it "
                        "says how many are missing; they stay saved, so a later run resumes)")
    varied.set_defaults(handler=designs_command)
    planning = sub.add_parser("plan", help="assurance, type I error and operating "
                              "characteristics of a planned trial (plan.csv, plan.md)")
    planning.add_argument("design", help="design name (designs/<name>.toml) or path")
    planning.add_argument("--from", dest="from_run", help="run folder of jdmbayes fit holding "
                          "the model the design names: its posterior is the design prior")
    planning.add_argument("--out", help="plan folder (default: results/plan-<design>-<time>)")
    planning.add_argument("--trials", type=int, default=1000,
                          help="simulated trials per sample size and scenario")
    planning.add_argument("--method", choices=("fast", "mcmc"), help="analysis of each trial "
                          "(default: fast where its check against MCMC passes)")
    planning.add_argument("--seed", type=int, default=20211028)
    planning.add_argument("--jobs", type=int, default=2, help="Dask worker processes "
                          "(1 = in this process)")
    planning.add_argument("--scheduler", help="an existing Dask scheduler, tcp://HOST:PORT")
    planning.add_argument("--overwrite", action="store_true", help="replace --out")
    planning.add_argument("--allow-failed-diagnostics", action="store_true",
                          help="take the design prior from a fit that failed its diagnostic "
                          "gates (the plan's sentences say so)")
    planning.add_argument("--check-agreement", action="store_true", help="only check the "
                          "fast analysis against MCMC on --trials trials (at least 100) and "
                          "write agreement.csv and check.json to --out")
    planning.set_defaults(handler=plan_command)
    for name, handler, text in (("validate", validate_command, "check a series folder"),
                                ("describe", describe_command, "describe a series folder")):
        command = sub.add_parser(name, help=text)
        command.add_argument("data", nargs="?", default=str(BUNDLED))
        if name == "validate":
            command.add_argument("--model", action="append", help="also check the series "
                                 "against this spec, as fit would (repeatable)")
            command.add_argument("--priors", help="prior set name or path (default: each "
                                 "spec's), checked as fit would")
            _models_dir_option(command)
        command.set_defaults(handler=handler)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]
    signal.signal(signal.SIGTERM, _interrupt)
    configure_own_process()
    try:
        return args.handler(args)
    except InputError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        print(f"{len(error.problems)} problem(s); nothing was written.", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted; nothing was written.", file=sys.stderr)
        return 130
