"""A plan end to end: check the fast analysis, simulate and analyse every trial on Dask,
resumably, then tabulate.

Trials are computed in chunks (:mod:`jdmbayes.planning.assurance`); each finished chunk is
saved in a work folder beside the output (``.<out>.plan-work/``, with the plan's
configuration), so an interrupted plan rerun with the same arguments computes only the
missing chunks. The output folder itself is written at the end, atomically.

The fast analysis is used only where it agrees with full MCMC: for a design simulated from a
fitted model,
a committed check for this design file and analysis prior
(``validation/plan-agreement/<design>/check.json``: at least 100 trials, success decisions
agreeing in at least 97%) is used if present; otherwise the plan runs the check itself first.
If it fails, every trial is analysed by MCMC.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter

import pandas as pd

from jdmbayes.console import chunks_progress
from jdmbayes.data.io import sha256_of
from jdmbayes.errors import InputError, Problem
from jdmbayes.planning.assurance import (
    DESIGN_PRIOR,
    Chunk,
    chunks,
    effective_sample_size,
    operating_characteristics,
    plan_table,
    simulate_and_analyse,
)
from jdmbayes.planning.design import ROOT, TrialDesign
from jdmbayes.planning.design_prior import DesignPrior

AGREEMENT_TRIALS = 100
AGREEMENT_REQUIRED = 0.97
VALIDATION_DIR = ROOT / "validation" / "plan-agreement"


@dataclass
class PlanResult:
    """Everything a plan folder holds, before formatting."""

    design: TrialDesign
    prior: DesignPrior
    table: pd.DataFrame
    characteristics: pd.DataFrame
    trials: pd.DataFrame
    ess: dict
    agreement: dict
    config: dict
    analysis_prior: str
    notes: list[str] = field(default_factory=list)


def agreement_chunks(design: TrialDesign, trials: int) -> list[Chunk]:
    """The check's trials: from the design prior, spread evenly over the sizes, numbered
    apart from the plan's own trials."""
    per_size = -(-trials // len(design.n_per_arm))
    return [Chunk(0, n, 10**6, per_size) for n in design.n_per_arm]


def agreement_summary(checked: pd.DataFrame) -> dict:
    agree = checked["success"] == checked["success_mcmc"]
    return {"trials": len(checked), "agreeing": int(agree.sum()),
            "agreement": float(agree.mean()), "required": AGREEMENT_REQUIRED,
            "passed": bool(agree.mean() >= AGREEMENT_REQUIRED and len(checked)
                           >= AGREEMENT_TRIALS),
            "fast_usable": int(checked["fast_usable"].sum()),
            "max_abs_probability_difference": float(
                (checked["probability"] - checked["probability_mcmc"]).abs().max())}


def committed_check(design: TrialDesign, analysis_prior: str) -> dict | None:
    path = VALIDATION_DIR / design.name / "check.json"
    if not path.is_file():
        return None
    check = json.loads(path.read_text())
    if check.get("design_sha256") != sha256_of(design.path) or \
            check.get("analysis_prior") != analysis_prior:
        return None
    return {**check, "source": str(path.relative_to(ROOT))}


def run_agreement_check(design, prior, prior_set, seed: int, trials: int = AGREEMENT_TRIALS,
                        client=None) -> tuple[pd.DataFrame, dict]:
    """Each check trial analysed fast and by MCMC (4 chains x 1000 draws)."""
    work = agreement_chunks(design, trials)
    frames = _compute(work, design, prior, prior_set, seed, "both", client)
    checked = pd.concat(frames, ignore_index=True)
    return checked, agreement_summary(checked)


def _compute(work: list[Chunk], design, prior, prior_set, seed, method, client, saved=None,
             echo=None) -> list[pd.DataFrame]:
    """Run ``work`` in this process or on ``client``; ``saved(chunk, frame)`` as each ends;
    ``echo`` hears after each how many are done, the time so far and about how much is
    left."""
    frames = []
    started = perf_counter()
    if client is None:
        for i, chunk in enumerate(work):
            frame = simulate_and_analyse(design, prior, prior_set, chunk, seed, method)
            frames.append(frame)
            if saved:
                saved(chunk, frame)
            if echo:
                echo(chunks_progress(i + 1, len(work), perf_counter() - started))
        return frames
    from dask.distributed import as_completed

    # the design prior is small (thousands of draws of a few parameters): sent with each task
    futures = {client.submit(simulate_and_analyse, design, prior, prior_set, chunk, seed,
                             method, pure=False): chunk for chunk in work}
    for i, future in enumerate(as_completed(futures)):
        frame = future.result()
        frames.append(frame)
        if saved:
            saved(futures[future], frame)
        if echo:
            echo(chunks_progress(i + 1, len(work), perf_counter() - started))
    return frames


def plan_config(design: TrialDesign, prior: DesignPrior, analysis_prior, trials: int,
                seed: int) -> dict:
    from jdmbayes.versions import __version__

    # the package version too: a plan resumed after an upgrade starts again
    return {"jdmbayes": __version__, "design": design.name,
            "design_sha256": sha256_of(design.path),
            "design_prior": {k: v for k, v in prior.source.items() if k != "data"},
            "analysis_prior": analysis_prior.name,
            "analysis_prior_sha256": sha256_of(analysis_prior.path)
            if design.endpoint != "normal" else None,
            "trials": trials, "seed": seed}


def work_folder(out: Path, config: dict) -> Path:
    """The resumable chunk folder of ``out``: kept if it holds this plan, else new."""
    work = out.parent / f".{out.name}.plan-work"
    marker = work / "plan.json"
    if work.exists() and (not marker.is_file()
                          or json.loads(marker.read_text()) != config):
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(config, indent=2))
    return work


def run_plan(design: TrialDesign, prior: DesignPrior, analysis_prior, out: Path,
             trials: int, seed: int, client=None, method: str | None = None,
             echo=None) -> PlanResult:
    """Simulate and analyse every trial (chunks already in the work folder are reused)."""
    if trials < 10:
        raise InputError([Problem("-", "usage", "--trials must be at least 10")])
    config = plan_config(design, prior, analysis_prior, trials, seed)
    work = work_folder(Path(out), config)
    notes = []
    agreement = {"needed": False}
    if design.endpoint != "normal" and method is None:
        agreement = committed_check(design, analysis_prior.name)
        if agreement is None:
            if echo:
                echo(f"checking the fast analysis against MCMC on {AGREEMENT_TRIALS} trials")
            checked, agreement = run_agreement_check(design, prior, analysis_prior, seed,
                                                     client=client)
            checked.to_csv(work / "agreement.csv", index=False)
            agreement["source"] = "run by this plan (agreement.csv)"
        method = "fast" if agreement["passed"] else "mcmc"
        notes.append(f"fast analysis {'used' if method == 'fast' else 'NOT used'}: success "
                     f"decisions agreed with MCMC in {agreement['agreeing']} of "
                     f"{agreement['trials']} trials (required "
                     f"{AGREEMENT_REQUIRED:.0%}; {agreement['source']})")
    method = method or "exact"
    todo, frames = [], []
    for chunk in chunks(design, trials):
        path = work / f"{chunk.name}.csv"
        if path.is_file():
            frames.append(pd.read_csv(path))
        else:
            todo.append(chunk)
    if echo and todo:
        echo(f"{len(todo)} chunks of trials to run ({len(frames)} already done)")

    def saved(chunk, frame):
        tmp = work / f".{chunk.name}.tmp"
        frame.to_csv(tmp, index=False, float_format="%.17g")
        tmp.replace(work / f"{chunk.name}.csv")

    frames += _compute(todo, design, prior, analysis_prior, seed,
                       "fast" if method == "fast" else "mcmc", client, saved, echo)
    all_trials = pd.concat(frames, ignore_index=True).sort_values(
        ["scenario", "n_per_arm", "trial"], kind="stable").reset_index(drop=True)
    all_trials["success"] = all_trials["success"].astype(bool)
    ess = effective_sample_size(design, prior, all_trials)
    fallback = int(((all_trials["method"] == "mcmc")).sum()) if method == "fast" else 0
    if fallback:
        notes.append(f"{fallback} of {len(all_trials)} trials were analysed by MCMC because "
                     "their importance sampling had Pareto k > 0.7")
    laplace = int((all_trials["method"] == "laplace").sum())
    if laplace:
        notes.append(f"{laplace} of {len(all_trials)} trials were decided by Laplace's "
                     "approximation alone (posterior probability far from the rule's "
                     "threshold); the others by importance sampling")
    assurance_trials = all_trials[all_trials["scenario"] == DESIGN_PRIOR]
    notes.append(f"{int(assurance_trials['vague_component'].sum())} of {len(assurance_trials)} "
                 "design-prior trials drew their effect from the vague component")
    return PlanResult(design, prior, plan_table(design, all_trials),
                      operating_characteristics(all_trials), all_trials, ess,
                      {**agreement, "method": method}, config, analysis_prior.name, notes)


def discard_work(out: Path) -> None:
    shutil.rmtree(Path(out).parent / f".{Path(out).name}.plan-work", ignore_errors=True)
