"""A plan's files: ``plan.csv`` and ``operating_characteristics.csv`` (unrounded), every
simulated trial in ``trials.csv``, ``plan.md`` (and ``grant.md``: its sentences alone),
``plan.png``
(assurance and success probabilities against the sample size) and ``report.html``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jdmbayes.results.formatting import RECONSTRUCTED_NOTE, markdown_table, significant
from jdmbayes.results.html import data_uri, render
from jdmbayes.results.plots import save_png
from jdmbayes.results.runfolder import write_json


def percent(p: float, mcse: float) -> str:
    """A probability as a percentage to the precision its Monte Carlo SE allows."""
    decimals = 1 if mcse * 100 < 1 else 0
    return f"{100 * p:.{decimals}f}%"


def percent_se(mcse: float) -> str:
    return f"{significant(100 * mcse, 2)}%"


def design_prior_words(result) -> str:
    source, design = result.prior.source, result.design
    if source["kind"] == "stated normal":
        text = f"a normal design prior on the difference (mean {source['mean']:g}, SD " \
               f"{source['sd']:g})"
    else:
        data = source.get("data") or {}
        series = "the bundled reconstructed series" if data.get("reconstructed") else \
            f"the series in {data.get('folder', 'the run')}"
        text = (f"a design prior from the posterior of model {source['model']} fitted to "
                f"{series} (prior set '{source['prior_set']}', seed {source['run_seed']})")
    if design.robust_weight:
        scale = {"log": "log time ratio", "logit": "log-odds of the probability"}.get(
            design.analysis_scale, design.effect_name)
        text += (f", robustified with {design.robust_weight:.0%} weight on a vague "
                 f"N({design.robust_mean:g}, {design.robust_sd:g}^2) {scale}")
    return text


def endpoint_words(design) -> str:
    treatment = design.arms[0].label
    rule = design.success
    if design.endpoint == "time_to_event":
        outcome = design.outcome.replace("_", " ")
        if rule.value == 1:
            direction = "shorter" if rule.comparison == "<" else "longer"
            return f"a {direction} time to {outcome} with {treatment}"
        side = "below" if rule.comparison == "<" else "above"
        return f"a time ratio of {outcome} with {treatment} {side} {rule.value:g}"
    side = "below" if rule.comparison == "<" else "above"
    if design.endpoint == "event_by_week":
        return (f"a probability of {design.outcome.replace('_', ' ')} by week "
                f"{design.endpoint_week:g} with {treatment} {side} {rule.value:g}")
    if design.endpoint == "change":
        return (f"a mean change in {design.measure.upper()} by week {design.endpoint_week:g} "
                f"with {treatment} {side} {rule.value:g} points")
    return f"a difference in means with {treatment} {side} {rule.value:g}"


def plan_sentences(result) -> list[str]:
    """The grant sentences: one per sample size, then the design prior's ESS."""
    design = result.design
    rule = design.success.words(design.effect_name)
    lines = []
    for row in result.table.itertuples(index=False):
        lines.append(
            f"With {row.n_per_arm} patients per arm, the probability that the trial shows "
            f"{endpoint_words(design)}, as {rule}, is "
            f"{percent(row.assurance, row.assurance_mcse)} (Monte Carlo SE "
            f"{percent_se(row.assurance_mcse)}), under {design_prior_words(result)}; the "
            f"type I error is {percent(row.type1_error, row.type1_error_mcse)} (Monte Carlo "
            f"SE {percent_se(row.type1_error_mcse)}).")
    ess = result.ess
    lines.append(
        f"The design prior's informative component carries the information of about "
        f"{significant(ess['ess_patients_per_arm'], 2)} patients per arm ({ess['method']}).")
    if result.prior.source.get("run_verdict") not in (None, "pass"):
        lines.append(
            f"The fit of model {result.prior.source['model']} that gives the design prior "
            "failed its diagnostic gates (used with --allow-failed-diagnostics): these figures "
            "are provisional until it is refitted and passes.")
    return lines


def plan_figure(result) -> Figure:
    design, table = result.design, result.table
    figure = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = figure.subplots()
    n = table["n_per_arm"].to_numpy()
    ax.errorbar(n, table["assurance"], yerr=2 * table["assurance_mcse"], marker="o",
                color="#1b5e9e", capsize=3, label="assurance (design prior)")
    ax.errorbar(n, table["type1_error"], yerr=2 * table["type1_error_mcse"], marker="s",
                color="#b22222", capsize=3, label=f"type I error ({design.effect_name} "
                f"{design.null_effect:g})")
    greys = iter(np.linspace(0.25, 0.65, max(1, len(design.fixed_effects))))
    for column in table.columns:
        if column.startswith("success_at_effect_") and not column.endswith("_mcse"):
            label = column.replace("success_at_effect_", "")
            ax.errorbar(n, table[column], yerr=2 * table[column + "_mcse"], marker=".",
                        linestyle="--", color=str(next(greys)), capsize=2,
                        label=f"{design.effect_name} = {label}")
    ax.axhline(1 - design.success.probability, color="0.8", linewidth=0.8)
    ax.set_xlabel("patients per arm")
    ax.set_ylabel("probability of success")
    ax.set_ylim(0, 1)
    ax.set_title(f"{design.name}: success if {design.success.words(design.effect_name)}",
                 fontsize=9)
    ax.legend(fontsize=7, title="bars: ±2 Monte Carlo SE", title_fontsize=7)
    return figure


def shown_table(result):
    table = result.table
    shown = {"patients per arm": table["n_per_arm"],
             "assurance": [f"{percent(p, s)} (SE {percent_se(s)})"
                           for p, s in zip(table["assurance"], table["assurance_mcse"])],
             "type I error": [f"{percent(p, s)} (SE {percent_se(s)})"
                              for p, s in zip(table["type1_error"], table["type1_error_mcse"])]}
    for column in table.columns:
        if column.startswith("success_at_effect_") and not column.endswith("_mcse"):
            label = f"success at {result.design.effect_name} {column.split('_')[-1]}"
            shown[label] = [f"{percent(p, s)}" for p, s in zip(table[column],
                                                               table[column + "_mcse"])]
    shown[f"expected width of the {interval_words(result.design)}"] = [
        significant(w, 2) for w in table["expected_interval_width"]]
    shown["trials per scenario"] = table["trials"]
    return pd.DataFrame(shown)


def interval_words(design) -> str:
    kind = {"eti": "equal-tailed"}[design.interval_kind]
    return f"{100 * design.interval_prob:g}% {kind} credible interval"


def plan_markdown(result, manifest: dict, reconstructed: bool) -> str:
    design = result.design
    lines = [f"# Plan: {design.name}", "", design.description, ""]
    if reconstructed:
        lines += [f"> {RECONSTRUCTED_NOTE}", ""]
    lines += ["## For the grant", ""] + [f"- {s}" for s in plan_sentences(result)] + [""]
    lines += ["## Operating characteristics", "", markdown_table(shown_table(result)), ""]
    lines += ["## How this was computed", "",
              f"- Design: `{design.path.name}` (sha256 {manifest['design_sha256'][:12]}); "
              f"endpoint {design.endpoint}; {arms_words(design)}; success if "
              f"{design.success.words(design.effect_name)}.",
              f"- Design prior: {design_prior_words(result)}.",
              f"- Analysis prior: {result.analysis_prior}.",
              f"- Analysis of each trial: {analysis_words(result)}.",
              f"- {manifest['trials']} simulated trials per sample size and scenario, seed "
              f"{manifest['seed']}; Monte Carlo SE sqrt(p(1-p)/trials).",
              *[f"- {note}" for note in result.notes], ""]
    return "\n".join(lines)


def arms_words(design) -> str:
    if len(design.arms) == 1:
        return f"one arm, {design.arms[0].label}, against a fixed threshold"
    return f"arms {design.arms[0].label} (treatment) and {design.arms[1].label} (control)"


def analysis_words(result) -> str:
    method = result.agreement.get("method")
    if method == "exact":
        return "the exact conjugate normal update"
    design = result.design
    model = ("the package's milestone model (one outcome, grouped by arm)"
             if design.endpoint == "time_to_event" else
             "the package's milestone model (one outcome, one arm)"
             if design.endpoint == "event_by_week" else
             "the package's longitudinal model (beta-binomial, plateau, one arm)")
    if method != "fast":
        return f"{model} by MCMC (nutpie, 4 chains x 1000 draws)"
    if design.endpoint != "change":
        return (f"{model} by Laplace's approximation corrected by Pareto-smoothed importance "
                "sampling, MCMC where Pareto k > 0.7")
    return (f"{model} with each patient's baseline and change integrated out (Laplace's "
            "method), Laplace's approximation of the population parameters, refined by "
            "Pareto-smoothed importance sampling where the decision is close, MCMC where "
            "Pareto k > 0.7")


def write_plan(folder: Path, result, manifest: dict, reconstructed: bool) -> None:
    """Every file of a plan folder into ``folder`` (the caller makes it atomic)."""
    result.table.to_csv(folder / "plan.csv", index=False, float_format="%.17g")
    result.characteristics.to_csv(folder / "operating_characteristics.csv", index=False,
                                  float_format="%.17g")
    result.trials.to_csv(folder / "trials.csv", index=False, float_format="%.17g")
    write_json(folder / "manifest.json", manifest)
    (folder / "plan.md").write_text(plan_markdown(result, manifest, reconstructed))
    grant = [f"# Sample size: {result.design.name}", ""]
    if reconstructed:
        grant += [f"> {RECONSTRUCTED_NOTE}", ""]
    (folder / "grant.md").write_text("\n".join(grant + plan_sentences(result)) + "\n")
    save_png(plan_figure(result), folder / "plan.png")
    (folder / "report.html").write_text(render(
        "plan.html.j2", design=result.design, reconstructed=reconstructed,
        reconstructed_note=RECONSTRUCTED_NOTE, sentences=plan_sentences(result),
        table=shown_table(result), uri=data_uri(folder / "plan.png"),
        design_prior=design_prior_words(result), analysis=analysis_words(result),
        notes=result.notes, manifest=manifest, ess=result.ess,
        interval=interval_words(result.design)))
