"""Fit every varied design with the defaults: gates passed and truth covered (issues 12.4, 18.4).

Each design of :mod:`jdmbayes.batch.designs` is written as a series folder with its two
specs (milestones and trajectory), read and checked as ``jdmbayes fit`` reads and checks a
user's, and fitted as ``fit`` fits it: default sampler settings, the default seed, the
retry ladder within its budget. Recorded per fit: the verdict, every attempt, the worst
R-hat and ESS, divergences and time; per true value, whether the 95% equal-tailed interval
holds it. Each fit is saved as it finishes (``fits.csv``, ``coverage.csv`` in the work
folder), so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd

from jdmbayes.batch.designs import Design, simulate_series
from jdmbayes.inference.sampling import SamplerSettings
from jdmbayes.results.runfolder import write_text_atomic

MODELS = ("milestones", "trajectory")
CI_PROB, CI_KIND = 0.95, "eti"


def fit_design(design: Design, model: str, settings: SamplerSettings
               ) -> tuple[dict, list[dict]]:
    """Fit one model of one design as ``jdmbayes fit`` would; (fit row, coverage rows)."""
    from jdmbayes.console import CapturedLog
    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.fit import check_models, fit_model
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    simulated = simulate_series(design)
    with tempfile.TemporaryDirectory(prefix="jdmbayes-design-") as folder:
        paths = simulated.write(Path(folder))
        series = load_series(folder)
        spec = load_model_spec(str(paths[model]))
        prior_set = load_prior_set(spec.prior_set, spec)
        check_models(series, [spec])
        started = time.perf_counter()
        with CapturedLog(echo=False):
            result = fit_model(series, spec, prior_set, settings, CI_PROB, CI_KIND)
        seconds = time.perf_counter() - started
        # the reported attempt: the first that passed, else the last (kinds.fit)
        fitted = [a for a in result.attempts if a.get("verdict")]
        form = _form_used(series, spec, fitted[-1])
    d = result.diagnostics
    row = {"design": design.number, "model": model, "patients": design.patients,
           "verdict": d["verdict"], "first_attempt": fitted[0]["verdict"],
           "attempts": len(fitted), "failed_gates": ";".join(f["gate"] for f in d["failures"]),
           "r_hat_max": d["r_hat_max"], "ess_bulk_min": d["ess_bulk_min"],
           "ess_tail_min": d["ess_tail_min"], "divergences": d["divergences"],
           "r_hat_max_at": d.get("r_hat_max_at", ""),
           "ess_bulk_min_at": d.get("ess_bulk_min_at", ""),
           "patient_effects": form, "seconds": seconds,
           # every step of the retry ladder: what was tried, its verdict, its sampling time
           "ladder": "; ".join(f"{a['change']}: " + _ladder_step(a) for a in result.attempts)}
    rows = {(r["quantity"], r["outcome"], r["group"]): r for r in result.summary_rows}
    coverage = []
    for key, truth in simulated.truth[model].items():
        if key not in rows:
            raise KeyError(f"design {design.number}, {model}: no summary row {key}; rows: "
                           f"{sorted(k for k in rows if k[0] == key[0])}")
        r = rows[key]
        coverage.append({"design": design.number, "model": model, "quantity": key[0],
                         "outcome": key[1], "group": key[2], "truth": truth,
                         "median": r["median"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                         "ci_prob": r["ci_prob"], "ci_kind": r["ci_kind"],
                         "inside": bool(r["ci_low"] <= truth <= r["ci_high"])})
    return row, coverage


def _ladder_step(attempt: dict) -> str:
    """One step of the retry ladder in words: its verdict and sampling time, or why not."""
    if attempt.get("verdict"):
        return f"{attempt['verdict']} ({attempt['sample_seconds']:.0f} s)"
    if "stopped" in attempt:
        return f"stopped at the budget ({attempt['sample_seconds']:.0f} s)"
    return "skipped"


def _form_used(series, spec, attempt: dict) -> str:
    """How the reported attempt sampled the patient effects (milestones: the frailty; 'none'
    with one milestone), with 'auto' resolved as the model resolved it."""
    from jdmbayes.kinds.registry import kind_of
    from jdmbayes.models.longitudinal import patient_effects_form
    from jdmbayes.models.milestones import frailty_form

    used = dataclasses.replace(spec, frailty=attempt["frailty"],
                               patient_effects=attempt["patient_effects"])
    data = kind_of(spec).index(series, spec)
    if spec.kind == "longitudinal":
        return patient_effects_form(data, used)
    return frailty_form(data, used) if len(spec.outcomes) > 1 else "none"


def _append(path: Path, rows: list[dict]) -> None:
    old = pd.read_csv(path) if path.exists() else None
    frame = pd.concat([old, pd.DataFrame(rows)], ignore_index=True) if old is not None \
        else pd.DataFrame(rows)
    write_text_atomic(path, frame.to_csv(index=False))


def run_designs(designs: list[Design], work: Path, settings: SamplerSettings,
                models: tuple[str, ...] = MODELS, echo=print, fit_missing: bool = True
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every model of every design (those already in ``work`` are skipped; none with
    ``fit_missing=False``); return the fit rows and the coverage rows saved."""
    work.mkdir(parents=True, exist_ok=True)
    fits_path, coverage_path = work / "fits.csv", work / "coverage.csv"
    done = set()
    if fits_path.exists():
        done = set(_keys(pd.read_csv(fits_path)))
    if coverage_path.exists():
        # a run stopped between a fit's two files: its coverage rows go (the fit reruns)
        saved = pd.read_csv(coverage_path)
        write_text_atomic(coverage_path, saved[[k in done for k in _keys(saved)]]
                          .to_csv(index=False))
    for model in models:           # every design's milestones first, then trajectories
        for design in designs:
            if (design.number, model) in done or not fit_missing:
                continue
            row, coverage = fit_design(design, model, settings)
            _append(coverage_path, coverage)
            _append(fits_path, [row])
            inside = sum(c["inside"] for c in coverage)
            echo(f"design {design.number:2d} ({design.patients} patients) {model}: "
                 f"{row['verdict']} after {row['attempts']} attempt(s), "
                 f"{row['seconds']:.0f} s; truth inside {inside}/{len(coverage)}")
    wanted = {(d.number, m) for d in designs for m in models}
    if not fits_path.exists():
        return pd.DataFrame(), pd.DataFrame()
    fits = pd.read_csv(fits_path, keep_default_na=False, na_values=[""])
    coverage = pd.read_csv(coverage_path)
    return tuple(frame[[k in wanted for k in _keys(frame)]]
                 .sort_values(["model", "design"], kind="stable").reset_index(drop=True)
                 for frame in (fits, coverage))


def _keys(frame: pd.DataFrame) -> list[tuple[int, str]]:
    """(design, model) of each row."""
    return [(int(d), str(m)) for d, m in frame[["design", "model"]].itertuples(index=False)]


PASS_RATE = 0.95          # issue 12.4: every gate passed on at least 95% of the designs
COVERAGE_LEVEL = 0.99     # the binomial range the count of covered truths must fall in


def design_verdict(fits: pd.DataFrame, coverage: pd.DataFrame, planned: int | None = None
                   ) -> pd.DataFrame:
    """One row per model: fits passing every gate (at the first attempt and in the end),
    against ``PASS_RATE``; truths inside their 95% intervals against the central
    ``COVERAGE_LEVEL`` binomial range of a nominal 95% rate; and whether both hold
    ('incomplete' when fewer than ``planned`` designs were fitted)."""
    from scipy import stats

    rows = []
    for model, frame in fits.groupby("model", sort=False):
        cover = coverage[coverage["model"] == model]
        n, m = len(frame), len(cover)
        passed = int((frame["verdict"] == "pass").sum())
        inside = int(cover["inside"].sum())
        nominal = float(cover["ci_prob"].iloc[0]) if m else CI_PROB
        low, high = (stats.binom.ppf([(1 - COVERAGE_LEVEL) / 2, (1 + COVERAGE_LEVEL) / 2],
                                     m, nominal) if m else (0, 0))
        gates_ok = passed >= PASS_RATE * n
        coverage_ok = bool(low <= inside <= high)
        rows.append({"model": model, "designs": n, "passed": passed,
                     "passed_first_attempt": int((frame["first_attempt"] == "pass").sum()),
                     "pass_rate": passed / n if n else float("nan"),
                     "required_rate": PASS_RATE, "truths": m, "inside": inside,
                     "coverage": inside / m if m else float("nan"), "nominal": nominal,
                     "inside_low": int(low), "inside_high": int(high),
                     "median_seconds": float(frame["seconds"].median()),
                     "max_seconds": float(frame["seconds"].max()),
                     "verdict": "incomplete" if planned and n < planned
                     else "passes" if gates_ok and coverage_ok else "FAILS"})
    return pd.DataFrame(rows)
