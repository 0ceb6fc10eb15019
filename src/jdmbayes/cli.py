"""Command line: ``jdmbayes fit|validate|describe`` (``scripts/*.py`` call these).

Exit codes: 0 ok; 2 bad input or usage (a clear message, nothing written); 3 a diagnostic
gate failed (results written, marked as failing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import signal
import sys
import tomllib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from . import __version__
from .errors import EXIT_BAD_INPUT, EXIT_DIAGNOSTICS_FAILED, EXIT_OK, InputError
from .spec import MODELS_DIR, ROOT

BUNDLED = ROOT / "data" / "ding2021"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _default_models() -> list[str]:
    return sorted(p.stem for p in MODELS_DIR.glob("*.toml"))


def _series_provenance(folder: Path) -> dict:
    marker = folder / "series.toml"
    if marker.is_file():
        with open(marker, "rb") as handle:
            info = tomllib.load(handle).get("series", {})
        return {"reconstructed": bool(info.get("reconstructed", False)),
                "provenance": info.get("provenance", "")}
    return {"reconstructed": False, "provenance": "user-supplied series"}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def fit_command(args) -> int:
    from .pipeline import fit_model
    from .results import write_results
    from .runfolder import RunFolder, package_versions
    from .sampling import SamplerSettings
    from .spec import load_model_spec, load_prior_set
    from .validate import load_series

    if not 0 < args.ci_prob < 1:
        raise InputError(f"--ci-prob must be between 0 and 1, got {args.ci_prob}")
    if args.jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {args.jobs}")
    started = _now()
    series = load_series(args.data)
    provenance = _series_provenance(Path(args.data))
    specs = [load_model_spec(name) for name in (args.model or _default_models())]
    prior_sets = [load_prior_set(args.priors or spec.prior_set, spec) for spec in specs]
    settings = SamplerSettings(sampler=args.sampler, chains=args.chains, draws=args.draws,
                               tune=args.tune, seed=args.seed)
    out = Path(args.out) if args.out else Path("results") / (
        dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-seed{args.seed}")
    folder = RunFolder(out, overwrite=args.overwrite)
    folder.check()
    for spec, prior_set in zip(specs, prior_sets):
        print(f"fitting {spec.name} ({spec.kind}, priors '{prior_set.name}') ...", flush=True)
    jobs = [(series, spec, prior_set, settings, args.ci_prob, args.ci_kind)
            for spec, prior_set in zip(specs, prior_sets)]
    if args.jobs > 1 and len(jobs) > 1:
        # models in parallel worker processes: their compilations overlap on the two cores
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(args.jobs, len(jobs)),
                                 mp_context=context) as pool:
            results = list(pool.map(fit_model, *zip(*jobs)))
    else:
        results = [fit_model(*job) for job in jobs]
    verdict = "pass" if all(r.diagnostics["verdict"] == "pass" for r in results) else "fail"
    manifest = {
        "jdmbayes": __version__, "started": started, "finished": _now(),
        "command": ["jdmbayes", *sys.argv[1:]],
        "data": {"folder": str(Path(args.data).resolve()),
                 "tables": {k: {"file": Path(p).name, "sha256": series.sha256[k]}
                            for k, p in series.paths.items()},
                 **provenance},
        "models": {r.name: {"spec_file": str(r.spec.path), "spec": r.spec.raw,
                            "prior_set": r.prior_set.name, "prior_file": str(r.prior_set.path),
                            "priors": r.prior_set.as_dicts(), "timings": r.timings,
                            "notes": r.notes, "verdict": r.diagnostics["verdict"]}
                   for r in results},
        "seed": args.seed, "sampler": settings.as_dict(), "ci_prob": args.ci_prob,
        "ci_kind": args.ci_kind, "shareable": args.shareable, "versions": package_versions(),
        "diagnostics_verdict": verdict,
    }
    with folder as tmp:
        write_results(tmp, results, manifest, shareable=args.shareable)
    for r in results:
        d = r.diagnostics
        print(f"{r.name}: {d['verdict']} (max R-hat {d['r_hat_max']:.4f}, min ESS bulk "
              f"{d['ess_bulk_min']:.0f} / tail {d['ess_tail_min']:.0f}, divergences "
              f"{d['divergences']})")
        for failure in d["failures"]:
            print(f"  FAILED {failure['problem']}; try: {failure['try']}")
    if provenance["reconstructed"]:
        print("note: the bundled series is reconstructed (synthetic rows), not patient records")
    print(out)
    return EXIT_OK if verdict == "pass" else EXIT_DIAGNOSTICS_FAILED


def validate_command(args) -> int:
    from .validate import load_series

    series = load_series(args.data)
    print(f"{args.data}: valid ({len(series.subjects)} subjects, {len(series.events)} event "
          f"rows, {len(series.measurements)} measurement rows)")
    return EXIT_OK


def describe_command(args) -> int:
    from .describe import describe_series
    from .validate import load_series

    print(describe_series(load_series(args.data)))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jdmbayes", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=__version__)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit models and write a run folder")
    fit.add_argument("--model", action="append", help="model name or spec path (repeatable; "
                     f"default: every model in models/: {', '.join(_default_models())})")
    fit.add_argument("--data", default=str(BUNDLED), help="series folder")
    fit.add_argument("--priors", help="prior set name or path (default: each spec's)")
    fit.add_argument("--out", help="run folder to write (exactly this folder)")
    fit.add_argument("--seed", type=int, default=20211028)
    fit.add_argument("--chains", type=int, default=4)
    fit.add_argument("--draws", type=int, default=1000)
    fit.add_argument("--tune", type=int, default=1000)
    fit.add_argument("--sampler", choices=("nutpie", "pymc"), default="nutpie")
    fit.add_argument("--jobs", type=int, default=2,
                     help="models fitted in parallel processes (1: in this process)")
    fit.add_argument("--ci-prob", type=float, default=0.95, help="credible interval level")
    fit.add_argument("--ci-kind", choices=("eti", "hdi"), default="eti",
                     help="equal-tailed or highest-density interval")
    fit.add_argument("--shareable", action="store_true",
                     help="leave identifier-carrying groups out of posterior.nc")
    fit.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    fit.set_defaults(handler=fit_command)
    for name, handler, text in (("validate", validate_command, "check a series folder"),
                                ("describe", describe_command, "describe a series folder")):
        command = sub.add_parser(name, help=text)
        command.add_argument("data", nargs="?", default=str(BUNDLED))
        command.set_defaults(handler=handler)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
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
