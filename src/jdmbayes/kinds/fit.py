"""Fit one model end to end: index -> build -> sample -> predict -> diagnose -> summarise.

Every step that depends on the model's kind is the kind's own (:mod:`jdmbayes.kinds.registry`).

When a fit fails a diagnostic gate and its settings allow a retry budget
(``SamplerSettings.retry_budget_s``, ``--retry-budget``), the fit tries what the failure
advice says, in the order of ``RETRY_LADDER``, each step only if its expected sampling time
still fits in the budget (seconds of sampling over all attempts; with nutpie compilation is
left out, so a cold or a warm compile cache gives the same attempts; the default budget is
also at least ``retry_budget_first_multiple`` times the first attempt, so a large series
whose one fit takes most of the fixed seconds still gets the doubled run and the other
parameterisation, where an explicit budget is a hard limit): tuning and draws doubled; the
patient effects in their other parameterisation (centred <-> non-centred; a centred
milestone frailty on 100 patients or more whose failing parameters are population effects,
not its spread, with no divergence or E-BFMI failure, becomes hierarchically centred:
:func:`jdmbayes.models.milestones.retry_frailty_spec`), with the last attempt's tuning and
draws; nutpie's low-rank mass matrix, tuning and draws doubled. Each attempt is judged on
its draws alone; the outputs (predictions, summaries, LOO) are computed once, for the
attempt reported. The budget is also a limit on a retry that runs: one whose sampling
reaches the budget (its forecast scales the last attempt's time by the draws and
cannot know that, say, the low-rank mass matrix costs more per draw) is stopped there, its
draws discarded and recorded as stopped (nutpie; PyMC's sampler runs to the end). The first
attempt that passes every gate is reported; if none does, the last one that finished is
(marked failing). Where the settings leave NUTS' target acceptance to the model
(``SamplerSettings.target_accept`` None) and a retry budget is set, the first attempt
samples at the model's own target (``ModelKind.first_target_accept``: 0.99, or 0.9 for a
longitudinal model whose patient effects are sampled through each patient's level) after
the model's own tuning where that is shorter (``ModelKind.first_tune``: 300 steps, nutpie's
own default, for the same models); if that attempt fails a gate, the fit at the default
target after the settings' tuning follows, as if it had been the first attempt, before the
ladder (:func:`first_settings`). Every attempt is recorded
(``ModelResult.attempts``, the manifest) with its settings, gates and time; the seed is the
same throughout, so a rerun gives the same attempts and the same numbers, except where
a step's forecast or an attempt's sampling time lies so close to the budget that the
machine's speed decides it (the manifest then shows which attempt was skipped or stopped).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path

from jdmbayes.data.validate import Series
from jdmbayes.errors import InputError, Problem
from jdmbayes.inference.fitted import ModelResult
from jdmbayes.inference.sampling import SamplerSettings, SamplingStopped
from jdmbayes.kinds.common import (
    judge_sampled,
    sample_model,
    start_loo_loglik,
    stop_loo_loglik,
)
from jdmbayes.kinds.registry import kind_of
from jdmbayes.models.spec import ModelSpec, PriorSet, repeated


def _doubled(settings: SamplerSettings, **changes) -> SamplerSettings:
    return dataclasses.replace(settings, draws=2 * settings.draws, tune=2 * settings.tune,
                               **changes)


def _same(settings: SamplerSettings) -> SamplerSettings:
    return settings


# (what is tried, new settings from the last attempt's, whether the patient effects change
# parameterisation). Another parameterisation is another geometry, not a longer chain: it
# keeps the last attempt's length, so a large series whose doubled fit cannot fit in the
# budget still gets it.
RETRY_LADDER = (
    ("tuning and draws doubled", _doubled, False),
    ("patient effects in their other parameterisation, same tuning and draws", _same, True),
    ("low-rank mass matrix, tuning and draws doubled",
     lambda s: _doubled(s, mass_matrix="low_rank"), False),
)


def index_model(series: Series, spec: ModelSpec):
    """The arrays ``spec`` is fitted to (every spec-against-series rule is checked here)."""
    return kind_of(spec).index(series, spec)


def check_distinct_names(specs: list[ModelSpec]) -> None:
    """One model per name: a run folder keeps one folder per model name, and a model named
    twice would be fitted twice (``InputError`` naming the files)."""
    problems = []
    for name in repeated([s.name for s in specs]):
        files = sorted({str(s.path) for s in specs if s.name == name})
        problems.append(Problem(files[0], "model_named_twice", f"model '{name}' is asked for "
                                f"more than once ({', '.join(files)}): name each model once "
                                "(a run keeps one folder per model name)", column="name"))
    if problems:
        raise InputError(problems)


def physical_memory() -> int | None:
    """Bytes of the machine's memory (None where the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):    # not POSIX, or not this name
        return None


def cgroup_memory_limit(root: Path = Path("/sys/fs/cgroup"),
                        membership: Path = Path("/proc/self/cgroup")) -> int | None:
    """Bytes this process's control group may use (a container's memory limit), or None
    where there is none or the system does not say. cgroup v2 (``memory.max``) and v1
    (``memory.limit_in_bytes``), at the process's own group, else at the mount's root (as a
    container sees its own group); "max" means no limit."""
    try:
        lines = membership.read_text().splitlines()
    except OSError:
        return None
    files = []
    for line in lines:
        hierarchy, controllers, group = (line.split(":", 2) + ["", ""])[:3]
        group = group.strip().lstrip("/")
        if hierarchy == "0" and controllers == "":
            files += [root / group / "memory.max", root / "memory.max"]
        elif "memory" in controllers.split(","):
            files += [root / "memory" / group / "memory.limit_in_bytes",
                      root / "memory" / "memory.limit_in_bytes"]
    for file in files:
        try:
            text = file.read_text().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() else None
    return None


def memory_available() -> int | None:
    """Bytes a fit may use at most: the machine's memory, or its control group's limit
    where that is lower (None where neither is known)."""
    known = [m for m in (physical_memory(), cgroup_memory_limit()) if m is not None]
    return min(known) if known else None


def draws_memory_problem(spec: ModelSpec, n_patients: int, chains: int, draws: int,
                         memory: int | None) -> Problem | None:
    """A problem if the draws asked for cannot fit in ``memory`` bytes. Every fit keeps each
    modelled patient's log-likelihood at every draw (patient-level LOO), one float64 each:
    ``chains x draws x patients x 8`` bytes is a lower bound on what the draws need (the
    parameters, predictions and copies come on top), so only a fit that certainly cannot
    hold its draws is refused, before it samples for hours to no end."""
    need = chains * draws * n_patients * 8
    if memory is None or need <= memory:
        return None
    most = memory // (chains * n_patients * 8)
    return Problem("-", "draws_memory", f"model '{spec.name}': {chains} chains x {draws:,} "
                   f"draws (--draws) of its {n_patients} patients' log-likelihoods alone need "
                   f"{need / 1e9:,.1f} GB, more than the {memory / 1e9:.1f} GB of memory "
                   "here (the machine's, or its container's limit where lower); ask for far "
                   f"fewer draws (these alone allow at most {most:,})")


def check_models(series: Series, specs: list[ModelSpec], chains: int | None = None,
                 draws: int | None = None, scheduler: str | None = None) -> None:
    """Every problem of every spec against the series, before anything is sampled or
    written: one ``InputError`` listing them all (a model named twice first). With
    ``chains`` and ``draws``, also draws that cannot fit in the memory here
    (:func:`draws_memory_problem`), unless the fits run on a ``scheduler``'s workers, whose
    memory is not known here."""
    check_distinct_names(specs)
    problems = []
    memory = memory_available() if chains and draws and not scheduler else None
    for spec in specs:
        try:
            data = index_model(series, spec)
        except InputError as error:
            problems.extend(p for p in error.problems if p not in problems)
            continue
        if memory is not None:
            problem = draws_memory_problem(spec, data.n_patients, chains, draws, memory)
            problems.extend([problem] if problem else [])
    if problems:
        raise InputError(problems)


def _sample_once(kind, data, spec: ModelSpec, prior_set: PriorSet, settings: SamplerSettings,
                 report, time_limit: float | None = None):
    """Sample one attempt and judge its gates; the outputs wait until an attempt is chosen.
    The patients' log-likelihood for LOO starts on a thread of its own as soon as the draws
    are there (:func:`start_loo_loglik`), so that it runs beside the single-threaded
    judging and outputs; an attempt that a retry follows has it stopped."""
    sampled, prior = sample_model(lambda: kind.build(data, spec, prior_set), spec, prior_set,
                                  settings, kind.observed_arrays(data), data.design,
                                  kind.loglik_name(spec), report, time_limit=time_limit,
                                  sampled_loglik=not kind.marginal_loo(data, spec))
    start_loo_loglik(kind, data, spec, prior_set, sampled)
    try:
        return sampled, prior, judge_sampled(kind, data, spec, sampled)
    except BaseException:
        stop_loo_loglik(sampled)
        raise


def _attempt(number: int, change: str, spec: ModelSpec, settings: SamplerSettings,
             gates: dict, seconds: float, sample_seconds: float) -> dict:
    return {"attempt": number, "change": change, "settings": settings.as_dict(),
            "patient_effects": spec.patient_effects, "frailty": spec.frailty,
            "verdict": gates["verdict"], "failed_gates": [f["gate"] for f in gates["failures"]],
            "r_hat_max": gates["r_hat_max"], "ess_bulk_min": gates["ess_bulk_min"],
            "ess_tail_min": gates["ess_tail_min"], "divergences": gates["divergences"],
            **{key: gates[key] for key in ("r_hat_max_at", "ess_bulk_min_at",
                                           "ess_tail_min_at") if key in gates},
            "seconds": seconds, "sample_seconds": sample_seconds}


def retry_note(attempts: list[dict]) -> str:
    """One sentence on the retry ladder ('' when the first fit was the only one)."""
    if len(attempts) < 2:
        return ""
    first = attempts[0]
    tried = "".join(f"; attempt {a['attempt']}: {a['change']} -> " + (
        a["verdict"] if a.get("verdict") else f"stopped at the {a['budget_s']:.0f} s budget "
        f"after {a['sample_seconds']:.0f} s of sampling")
        for a in attempts[1:] if "skipped" not in a)
    skipped = [a for a in attempts if "skipped" in a]
    final = [a for a in attempts if a.get("verdict")][-1]
    s = final["settings"]
    return (f"Retried: the first fit failed {', '.join(first['failed_gates'])}{tried}"
            + (f"; not tried (over the {skipped[0]['budget_s']:.0f} s budget): "
               + ", ".join(a["change"] for a in skipped) if skipped else "")
            + f". The numbers reported are attempt {final['attempt']}'s ({s['chains']} chains "
            f"x {s['draws']} draws after {s['tune']} tuning, {s['mass_matrix']} mass matrix"
            + (f", target acceptance {s['target_accept']}"
               if s["target_accept"] != first["settings"]["target_accept"] else "")
            + "".join(f", {label} {final[key]}" for key, label in
                      (("patient_effects", "patient effects"), ("frailty", "frailty"))
                      if final[key] != first[key])
            + "; the manifest lists every attempt).")


def first_settings(kind, data, spec: ModelSpec, settings: SamplerSettings) -> SamplerSettings:
    """The first attempt's settings: the target acceptance asked for; else (None) the
    model's own (``ModelKind.first_target_accept``), and the model's own number of tuning
    steps where it asks for fewer than the settings (``ModelKind.first_tune``), where a
    retry budget lets the fit at the default target and the settings' tuning follow a
    failed gate (:func:`fit_model`); else the default target."""
    if settings.target_accept is not None:
        return settings
    if settings.retry_budget_s <= 0:
        return dataclasses.replace(settings, target_accept=settings.target_or_default)
    own_tune = kind.first_tune(data, spec)
    return dataclasses.replace(settings, target_accept=kind.first_target_accept(data, spec),
                               tune=settings.tune if own_tune is None
                               else min(settings.tune, own_tune))


def retry_budget_of(settings: SamplerSettings, first_sample_seconds: float) -> float:
    """Seconds of sampling, over all attempts, within which the retry ladder climbs: the
    settings' fixed seconds, or ``retry_budget_first_multiple`` times the first attempt's
    sampling time where that is more (0 when the fixed seconds are 0: no retry)."""
    if settings.retry_budget_s <= 0:
        return 0.0
    return max(settings.retry_budget_s,
               settings.retry_budget_first_multiple * first_sample_seconds)


def fit_model(series: Series, spec: ModelSpec, prior_set: PriorSet, settings: SamplerSettings,
              ci_prob: float, ci_kind: str, report=None) -> ModelResult:
    """One model end to end, with the retry ladder when ``settings`` allow it; ``report``
    hears of its progress (:mod:`jdmbayes.console`)."""
    kind = kind_of(spec)
    data = kind.index(series, spec)
    prior_set = kind.resolve_priors(data, spec, prior_set)
    began = time.perf_counter()
    first = first_settings(kind, data, spec, settings)
    sampled, prior, gates = _sample_once(kind, data, spec, prior_set, first, report)
    # the budget counts sampling only: compilation takes longer with a cold cache than a
    # warm one, and the attempts made must not depend on the state of the caches
    spent = sampled.sample_seconds
    attempts = [_attempt(1, "as asked", spec, first, gates, time.perf_counter() - began,
                         sampled.sample_seconds)]
    used_spec, used_settings = spec, first
    budget = retry_budget_of(first, sampled.sample_seconds)
    if gates["verdict"] != "pass" and ((first.target_accept, first.tune)
                                       != (settings.target_or_default, settings.tune)):
        # the model's own lower target (and shorter tuning) failed a gate: the fit at the
        # default target and the settings' tuning follows, as if it had been the first
        # attempt (the ladder after it, and its budget, are that fit's; the first attempt's
        # sampling is added to the budget)
        began = time.perf_counter()
        used_settings = dataclasses.replace(first, target_accept=settings.target_or_default,
                                            tune=settings.tune)
        stop_loo_loglik(sampled)
        sampled, prior, gates = _sample_once(kind, data, spec, prior_set, used_settings,
                                             report)
        change = f"target acceptance {used_settings.target_accept}, " + (
            "same tuning and draws" if first.tune == settings.tune
            else f"{settings.tune} tuning steps, same draws")
        attempts.append(_attempt(2, change, spec, used_settings, gates,
                                 time.perf_counter() - began, sampled.sample_seconds))
        budget = retry_budget_of(used_settings, sampled.sample_seconds) + spent
        spent += sampled.sample_seconds
    for change, new_settings, reparameterise in RETRY_LADDER:
        if gates["verdict"] == "pass" or budget <= 0:
            break
        next_spec = (kind.reparameterised(data, used_spec, gates) if reparameterise
                     else used_spec)
        if next_spec is None:
            continue
        next_settings = new_settings(used_settings)
        # the last attempt's sampling time, scaled by the draws
        expected = (sampled.sample_seconds * (next_settings.draws + next_settings.tune)
                    / (used_settings.draws + used_settings.tune))
        if spent + expected > budget:
            attempts.append({"attempt": len(attempts) + 1, "change": change,
                             "skipped": f"expected {expected:.0f} s of sampling after "
                                        f"{spent:.0f} s", "budget_s": budget})
            continue
        began = time.perf_counter()
        # the last attempt's LOO log-likelihood gives its CPU to this one's sampling (it is
        # computed again should that attempt be the one reported after all)
        stop_loo_loglik(sampled)
        try:
            attempt = _sample_once(kind, data, next_spec, prior_set, next_settings, report,
                                   time_limit=budget - spent)
        except SamplingStopped as stop:
            # the budget is spent (the steps left are recorded as skipped); the last
            # attempt that finished is the one reported
            spent += stop.seconds
            attempts.append({"attempt": len(attempts) + 1, "change": change,
                             "stopped": str(stop), "budget_s": budget,
                             "settings": next_settings.as_dict(),
                             "patient_effects": next_spec.patient_effects,
                             "frailty": next_spec.frailty,
                             "seconds": time.perf_counter() - began,
                             "sample_seconds": stop.seconds})
            continue
        sampled, prior, gates = attempt
        used_spec, used_settings = next_spec, next_settings
        spent += sampled.sample_seconds
        attempts.append(_attempt(len(attempts) + 1, change, used_spec, used_settings, gates,
                                 time.perf_counter() - began, sampled.sample_seconds))
    try:
        result = kind.outputs(data, used_spec, prior_set, sampled, prior, used_settings,
                              ci_prob, ci_kind)
    finally:
        stop_loo_loglik(sampled)     # a no-op once the outputs have collected it
    result.key_parameters, result.figure_names = kind.key_parameters, kind.figures
    result.excluded, result.row_counts = data.excluded, data.rows
    result.covariates = data.design.covariate_info
    result.settings, result.attempts = used_settings.as_dict(), attempts
    if note := retry_note(attempts):
        result.notes.append(note)
    result.notes.append(result.rows_note())
    return result
