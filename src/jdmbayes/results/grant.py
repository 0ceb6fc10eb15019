"""grant.md: a sentence per key estimand that a grant writer can paste, and a closing
paragraph on what the numbers rest on. Numbers come from the summary rows (``summary.csv``)
rounded by :mod:`jdmbayes.results.formatting`; the interval kind and level are in every sentence."""

from __future__ import annotations

import pandas as pd

from jdmbayes.estimands.names import (
    UNITS,
    display,
    is_key,
    weekly,
    without_repeated_time_ratios,
)
from jdmbayes.inference.fitted import rows_sentence
from jdmbayes.results.formatting import RECONSTRUCTED_NOTE, decimals_for, fmt, interval_label


def is_probability(quantity: str) -> bool:
    return str(quantity).startswith(("p_event_by_wk", "p_change_ge_threshold_wk"))


def number(row, value: str) -> tuple[str, str, str]:
    """(estimate, low, high) of a row as text: probabilities as percentages."""
    d = decimals_for(row["mcse_mean"], row["median"])
    if is_probability(row["quantity"]):
        d = max(0, d - 2)
        return tuple(fmt(100 * row[c], d) + "%" for c in ("median", "ci_low", "ci_high"))
    return tuple(fmt(row[c], d) for c in ("median", "ci_low", "ci_high"))


def sentence(row, ci: str, threshold: float | None = None, direction: str = "increase") -> str:
    outcome = display(row["outcome"])
    unit = UNITS.get(row["outcome"], "")
    estimate, low, high = number(row, "median")
    q, group = row["quantity"], row["group"]
    base, week, per = weekly(q) or ("", "", "")
    if unit and base in ("mean_change", "diff_mean_change", "mean_value"):
        estimate, low, high = (f"{x} {unit}" for x in (estimate, low, high))
    interval = f"({ci} {low} to {high})"
    if q == "median_time_wk":
        return (f"The estimated median time to {outcome} was {estimate} weeks "
                f"(posterior median; {ci} {low} to {high} weeks).")
    if q.startswith("p_event_by_wk"):
        return (f"The estimated probability of {outcome} by week {q.removeprefix('p_event_by_wk')}"
                f" was {estimate} {interval}.")
    if base == "mean_change":
        return f"The estimated mean change in {outcome} by week {week} was {estimate} {interval}."
    if base == "p_change_ge_threshold":
        verb = "rose" if direction == "increase" else "fell"
        return (f"The estimated proportion of patients whose expected {outcome} {verb} by at "
                f"least {threshold:g} {unit} by week {week} (an improvement) was {estimate} "
                f"{interval}.")
    if q == "time_ratio":
        num, den = group.split("/")
        return (f"The time to {outcome} with {num} relative to {den} had a time ratio of "
                f"{estimate} {interval}; a ratio below 1 means a shorter time with {num}.")
    if q in ("time_ratio_per_unit", "time_ratio_per_sd"):
        per_word = "unit" if q.endswith("unit") else "SD"
        return (f"Per {per_word} of {group}, the time to {outcome} had a time ratio of "
                f"{estimate} {interval}; a ratio below 1 means a shorter time.")
    if base == "diff_mean_change" and per:
        per_word = "unit" if per == "_per_unit" else "SD"
        return (f"Per {per_word} of {group}, the mean change in {outcome} by week {week} "
                f"differed by {estimate} {interval}.")
    if base == "diff_mean_change":
        num, den = group.split("-")
        return (f"The mean change in {outcome} by week {week} with {num} minus that with "
                f"{den} was {estimate} {interval}.")
    if base == "ratio_mean":
        num, den = group.split("/")
        return (f"The ratio of the mean {outcome} at week {week} with {num} to that with "
                f"{den} was {estimate} {interval}; a ratio below 1 means a lower mean with "
                f"{num}.")
    return f"{q} ({group}) of {outcome}: {estimate} {interval}."


def grant_markdown(summary: pd.DataFrame, diagnostics: dict, manifest: dict,
                   allow_failed: bool) -> str:
    ci = interval_label(manifest["ci_prob"], manifest["ci_kind"])
    failed = [m for m, d in diagnostics.items() if d["verdict"] != "pass"]
    lines = ["# Grant-ready statements", ""]
    if failed:
        lines += [f"**A diagnostic gate failed for: {', '.join(failed)}.** Their posterior "
                  "draws may not represent the posterior; see `diagnostics.json` and "
                  "`report.html`.", ""]
        if not allow_failed:
            lines += ["No statements are given. Fix the fit (the report says what to try) or "
                      "rerun with `--allow-failed-diagnostics` to write them anyway, marked.",
                      ""]
            return "\n".join(lines + closing(manifest, summary))
        lines += ["Statements below were written with `--allow-failed-diagnostics`; those of "
                  "the failing models are marked **[diagnostics failed]**.", ""]
    for model, part in summary.groupby("model", sort=False):
        info = manifest["models"][model]
        part = without_repeated_time_ratios(
            part, info["spec"].get("model", {}).get("outcomes", []))
        table = info["spec"].get("model", {})
        threshold = float(table.get("threshold", 0.0))   # the spec default when silent
        direction = table.get("improvement", "increase")
        lines += [f"## {model}", ""]
        mark = " **[diagnostics failed]**" if model in failed else ""
        for _, row in part.iterrows():
            if is_key(row["outcome"], row["quantity"], row["group"]):
                lines.append(f"- {sentence(row, ci, threshold, direction)}{mark}")
        if "rows" in info:
            lines.append(f"- {rows_sentence(info['rows'], info.get('excluded', {}))}")
        lines.append("")
    return "\n".join(lines + closing(manifest, summary))


LETTER_DESIGN = (
    "This is an uncontrolled case series: there is no comparison group without a JAK "
    "inhibitor, so changes over time cannot be attributed to the drug, and drug and dose were "
    "not randomised, so their contrasts may be confounded. Estimates are population-averaged "
    "posterior medians from hierarchical Bayesian models with partial pooling across drug and "
    "dose;")


def series_design(manifest: dict) -> str:
    """The design paragraph of a user's series, from its own description (series.toml) and
    each spec's: what was compared, whether at random, what was adjusted for."""
    data = manifest["data"]
    parts = [f"Series: {data['description'].rstrip('.')}." if data.get("description") else
             "Series: not described (add [series] description to series.toml)."]
    if data.get("time_unit", "weeks") != "weeks":
        parts.append(f"Times were recorded in {data['time_unit']} and are reported in weeks.")
    for model, info in manifest["models"].items():
        table = info["spec"].get("model", {})
        grouping = table.get("grouping", [])
        covariates = list(info.get("covariates", {}))
        text = f"{model}: {table.get('description', 'no description').rstrip('.')}"
        text += (f"; groups compared by {', '.join(grouping)}" if grouping else
                 "; no groups compared")
        text += (f", adjusted for {', '.join(covariates)}" if covariates else
                 ", with no covariates")
        parts.append(text + ".")
    control = data.get("control")
    if data.get("randomised") is True:
        parts.append("The series declares its groups randomised"
                     + (f", with '{control}' as the control group: contrasts against it "
                        "estimate the effect of treatment." if control else
                        "; it declares no untreated control group, so changes over time "
                        "within a group cannot be attributed to treatment."))
    else:
        parts.append("The groups were not assigned at random"
                     + ("" if data.get("randomised") is False else
                        " as far as the series says (series.toml does not declare it)")
                     + ", so contrasts between them may be confounded"
                     + (f" (also those against the control group '{control}')." if control
                        else ", and without an untreated comparison group changes over time "
                        "cannot be attributed to treatment."))
    parts.append("Estimates are population-averaged posterior medians from hierarchical "
                 "Bayesian models with partial pooling across the groups;")
    return " ".join(parts)


def retry_sentence(model: str, info: dict) -> str:
    """' <model> failed a gate at first and was refitted: ...' ('' when it was fitted once)."""
    fitted = [a for a in info.get("attempts", ()) if a.get("verdict")]
    if len(fitted) < 2:
        return ""
    settings = info["sampler"]
    return (f" {model} failed a diagnostic gate at first and was refitted: its numbers are "
            f"from attempt {fitted[-1]['attempt']} ({settings['chains']} chains x "
            f"{settings['draws']} draws after {settings['tune']} tuning; the manifest lists "
            "every attempt).")


def closing(manifest: dict, summary: pd.DataFrame) -> list[str]:
    data = manifest["data"]
    source = (RECONSTRUCTED_NOTE if data.get("reconstructed")
              else "Data: a user-supplied series (" + ", ".join(
                  f"{t['file']} sha256 {t['sha256'][:12]}" for t in data["tables"].values())
              + ").")
    sizes = "; ".join(f"{m}: {info['n_patients']} patients"
                      for m, info in manifest["models"].items() if "n_patients" in info)
    by_set: dict[tuple[str, str], list[str]] = {}
    for model, info in manifest["models"].items():
        by_set.setdefault((info["prior_set"], info.get("prior_description", "")),
                          []).append(model)
    priors = "; ".join(f"'{name}' for {', '.join(models)} ({text.rstrip('.')})"
                       for (name, text), models in by_set.items())
    scaled = [f"{model}'s generic priors are {info['prior_scaling']['description']}"
              for model, info in manifest["models"].items()
              if info.get("prior_scaling", {}).get("source") in ("data", "spec")]
    if scaled:
        priors += " (" + "; ".join(scaled) + ")"
    sampler = manifest["sampler"]
    retried = "".join(retry_sentence(model, info) for model, info in manifest["models"].items())
    design = (LETTER_DESIGN if data.get("reconstructed") else series_design(manifest))
    return ["## What these numbers rest on", "",
            f"{source} Sample size: {sizes}. {design} "
            f"intervals are {interval_label(manifest['ci_prob'], manifest['ci_kind'])}s. "
            f"Prior set: {priors}. Sampler {sampler['sampler']}, {sampler['chains']} chains x "
            f"{sampler['draws']} draws, seed {manifest['seed']}; jdmbayes "
            f"{manifest['jdmbayes']}, PyMC {manifest['versions'].get('pymc')}.{retried}", ""]
