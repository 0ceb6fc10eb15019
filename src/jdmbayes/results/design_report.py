"""The varied-design validation report: ``README.md``, the tables and the manifest.

``<out>/designs.csv`` (each design's factors), ``fits.csv`` (one row per fit: verdict,
attempts, worst R-hat and ESS, divergences, seconds), ``coverage.csv`` (one row per true
value: the 95% interval and whether it holds the truth), ``verdict.csv`` and
``manifest.json`` keep every number unrounded; ``README.md`` is the report for people
(numbers through :mod:`jdmbayes.results.formatting`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from jdmbayes.inference.sampling import DEFAULT_TARGET_ACCEPT
from jdmbayes.models.longitudinal import LEVEL_TARGET_ACCEPT, LEVEL_TUNE
from jdmbayes.results.formatting import diagnostic, markdown_table, significant
from jdmbayes.results.runfolder import write_json


def target_words(target_accept) -> str:
    """The settings' target acceptance in words (None: each model's own)."""
    if target_accept is not None:
        return f"{target_accept}"
    return (f"{DEFAULT_TARGET_ACCEPT} (first {LEVEL_TARGET_ACCEPT}, after at most {LEVEL_TUNE} "
            "tuning steps, where a score's patient effects are sampled through each patient's "
            f"level, then {DEFAULT_TARGET_ACCEPT} after the settings' tuning if a gate fails)")


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def verdict_markdown(verdict: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": verdict["model"],
        "fits passing every gate": [f"{r.passed} of {r.designs} ({_percent(r.pass_rate)}; "
                                    f"required {_percent(r.required_rate)})"
                                    for r in verdict.itertuples()],
        "passing at the first attempt": verdict["passed_first_attempt"],
        "truths inside their 95% ETI": [
            f"{r.inside} of {r.truths} ({_percent(r.coverage)}; expected range "
            f"{r.inside_low}-{r.inside_high})" for r in verdict.itertuples()],
        "time per fit, median / max": [f"{significant(r.median_seconds, 2)} s / "
                                       f"{significant(r.max_seconds, 2)} s"
                                       for r in verdict.itertuples()],
        "verdict": verdict["verdict"]})


def fits_markdown(fits: pd.DataFrame, designs: pd.DataFrame) -> pd.DataFrame:
    frame = fits.merge(designs, left_on="design", right_on="number", suffixes=("", "_d"))
    return pd.DataFrame({
        "design": frame["design"], "model": frame["model"], "patients": frame["patients"],
        "verdict": frame["verdict"], "attempts": frame["attempts"],
        "failed gates": frame["failed_gates"].fillna("").replace("", "-"),
        "max R-hat": [diagnostic("r_hat", v) for v in frame["r_hat_max"]],
        "min ESS bulk / tail": [f"{diagnostic('ess', b)} / {diagnostic('ess', t)}"
                                for b, t in zip(frame["ess_bulk_min"], frame["ess_tail_min"])],
        "divergences": frame["divergences"],
        # which parameter had the worst R-hat and bulk ESS (runs since these were recorded)
        "worst R-hat / ESS at": [_worst(r, e) for r, e in zip(
            frame.get("r_hat_max_at", pd.Series([""] * len(frame))).fillna(""),
            frame.get("ess_bulk_min_at", pd.Series([""] * len(frame))).fillna(""))],
        "patient effects": frame["patient_effects"],
        "seconds": [significant(v, 2) for v in frame["seconds"]]})


def _worst(r_hat_at: str, ess_at: str) -> str:
    if not r_hat_at and not ess_at:
        return "not recorded"
    return r_hat_at if r_hat_at == ess_at else f"{r_hat_at} / {ess_at}"


def coverage_by_quantity(coverage: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (model, quantity), frame in coverage.groupby(["model", "quantity"], sort=False):
        rows.append({"model": model, "parameter": quantity, "truths": len(frame),
                     "inside": int(frame["inside"].sum()),
                     "rate": _percent(frame["inside"].mean())})
    return pd.DataFrame(rows)


def report_markdown(verdict: pd.DataFrame, fits: pd.DataFrame, coverage: pd.DataFrame,
                    designs: pd.DataFrame, manifest: dict) -> str:
    s = manifest["settings"]
    done = len(fits)
    wanted = len(designs) * len(manifest["models"])
    lines = [
        "# Defaults on varied simulated designs (issues 12.4 and 18.4)", "",
        f"{len(designs)} series simulated with known truth "
        f"(`jdmbayes.batch.designs`, seed {manifest['design_seed']}; not patient records), "
        "each fitted with two models as `jdmbayes fit` fits a user's spec: the defaults of "
        f"the spec and of the command ({s['chains']} chains x {s['draws']} draws after "
        f"{s['tune']} tuning, nutpie, target acceptance {target_words(s['target_accept'])}, seed "
        f"{s['seed']}), and the retry ladder within {s['retry_budget_s']:g} s"
        + (f" or {s['retry_budget_first_multiple']:g} times the first attempt's sampling time, "
           "whichever is more," if s.get("retry_budget_first_multiple") else "")
        + " when a gate fails.",
        "",
        *([f"**Incomplete: {done} of {wanted} fits were run** (written with `--report-only`; "
           "rerunning the command without it resumes)."] if done < wanted else []),
        "",
        "## Designs", "",
        "Patients 15 to 500 (log-uniform strata); one to four drugs; the dose coded as mg "
        "twice daily, as text levels, as three weight-based levels or as a placebo arm "
        "(randomised, dose 0); covariates none, text (`sex`), numeric (`age_y`) or both; "
        "regular or irregular visits, follow-up 24 to 52, 78 or 104 weeks; one to three "
        "ordered milestones (Weibull, log-normal or log-logistic, shared frailty) seen at "
        "visits (interval-censored, left-censored before the first visit, latent when a "
        "later milestone follows), right-censored at the end of follow-up, or reported "
        "exactly for 0, 10% or 30% of patients; a positive marker (log-normal) or a bounded "
        "score (beta-binomial on 0..17, 0..52 or 0..100) at every visit, plateau, linear or "
        "curved (spline), correlated baseline and change, 0, 5% or 15% of values missing. "
        "Each design's factors are in `designs.csv`.", "",
        "## Verdict", "",
        markdown_table(verdict_markdown(verdict)), "",
        "A model passes when at least 95% of its fits pass every gate (R-hat, bulk and tail "
        "ESS, divergences, E-BFMI, as `fit` gates them) and the count of true values inside "
        "their 95% equal-tailed intervals lies in the central 99% binomial range of a "
        "nominal 95% rate. The truths of one design share a fit, so the count varies a "
        "little more than a binomial one would.", "",
        "## Coverage by parameter", "", markdown_table(coverage_by_quantity(coverage)), "",
        "## Every fit", "", markdown_table(fits_markdown(fits, designs)), "",
        f"In all {significant(float(fits['seconds'].sum()), 3)} s of fitting "
        f"({done} fits) on {manifest['machine']}."
        + (f" {manifest['note']}" if manifest.get("note") else ""), "",
        "## Reproduce", "", f"    {manifest['command']}", "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()) + ".",
        ""]
    return "\n".join(lines)


def write_design_report(folder: Path, verdict: pd.DataFrame, fits: pd.DataFrame,
                        coverage: pd.DataFrame, designs: pd.DataFrame, manifest: dict) -> None:
    designs.to_csv(folder / "designs.csv", index=False)
    fits.to_csv(folder / "fits.csv", index=False, float_format="%.17g")
    coverage.to_csv(folder / "coverage.csv", index=False, float_format="%.17g")
    verdict.to_csv(folder / "verdict.csv", index=False, float_format="%.17g")
    write_json(folder / "manifest.json", manifest)
    (folder / "README.md").write_text(report_markdown(verdict, fits, coverage, designs,
                                                      manifest))
