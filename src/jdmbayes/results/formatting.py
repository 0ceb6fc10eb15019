"""The one place numbers are formatted for people: rounded by their Monte Carlo error.

A number is shown to the decimal place of the first significant digit of its Monte Carlo
standard error (so the last digit shown is the first uncertain one), never more than 4
significant digits of precision past that; interval kind and level always travel with it.
"""

from __future__ import annotations

import math

import pandas as pd

RECONSTRUCTED_NOTE = ("Data: the bundled series is RECONSTRUCTED — synthetic rows chosen to "
                      "reproduce the published summaries of Ding et al. (Ann Rheum Dis "
                      "2021;80:543-545); they are not patient records.")


def decimals_for(mcse: float, value: float = 0.0) -> int:
    """Decimal places that keep the first significant digit of ``mcse``, but never more
    than 4 significant digits of ``value`` (a probability of 1 with a tiny MCSE is 1.000)."""
    magnitude = abs(value) if value and math.isfinite(value) else 1.0
    cap = max(0, 3 - int(math.floor(math.log10(magnitude))))
    if not math.isfinite(mcse) or mcse <= 0:
        return cap
    return min(cap, max(0, -int(math.floor(math.log10(mcse)))))


def fmt(value: float, decimals: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "NA"
    return f"{value:.{decimals}f}"


def interval_label(ci_prob: float, ci_kind: str) -> str:
    kind = {"eti": "equal-tailed", "hdi": "highest-density"}[ci_kind]
    return f"{100 * ci_prob:g}% {kind} credible interval"


def format_row(row) -> dict:
    d = decimals_for(row["mcse_mean"], row["median"])
    return {"estimate (median)": fmt(row["median"], d),
            "interval": f"{fmt(row['ci_low'], d)} to {fmt(row['ci_high'], d)}",
            "mean": fmt(row["mean"], d), "sd": fmt(row["sd"], d),
            "ess_bulk": fmt(row["ess_bulk"], 0), "r_hat": fmt(row["r_hat"], 3)}


def decimals_for_se(se: float) -> int:
    """Decimals that show a number to about a tenth of its standard error (0 to 3)."""
    return int(max(0, min(3, 1 - math.floor(math.log10(max(se, 1e-9))))))


def markdown_table(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def own_tuning(manifest: dict) -> str:
    """'; <model> after <n>' for each model whose reported draws followed another number of
    tuning steps than the settings' (a first attempt's own: ModelKind.first_tune), else ''."""
    asked = manifest["sampler"]["tune"]
    own = [f"{name} after {info['sampler']['tune']}"
           for name, info in manifest.get("models", {}).items()
           if info.get("sampler", {}).get("tune", asked) != asked]
    return "; " + ", ".join(own) if own else ""


def summary_markdown(summary: pd.DataFrame, diagnostics: dict, manifest: dict) -> str:
    """summary.md: the numbers of summary.csv for people, by model and outcome."""
    ci_prob, ci_kind = manifest["ci_prob"], manifest["ci_kind"]
    lines = ["# jdmbayes results", ""]
    if manifest["data"].get("reconstructed"):
        lines += [f"> **{RECONSTRUCTED_NOTE}**", ""]
    lines += [f"Data: `{manifest['data']['folder']}` · seed {manifest['seed']} · sampler "
              f"{manifest['sampler']['sampler']} ({manifest['sampler']['chains']} chains x "
              f"{manifest['sampler']['draws']} draws after {manifest['sampler']['tune']} "
              f"tuning{own_tuning(manifest)}) · intervals: "
              f"{interval_label(ci_prob, ci_kind)}.", "",
              "Numbers are rounded to their Monte Carlo standard error; `summary.csv` has them "
              "unrounded.", ""]
    for model, table in summary.groupby("model", sort=False):
        diag = diagnostics[model]
        lines += [f"## {model}", "",
                  f"Diagnostics: **{diag['verdict']}** (max R-hat {diag['r_hat_max']:.4f}, "
                  f"min bulk ESS {diag['ess_bulk_min']:.0f}, min tail ESS "
                  f"{diag['ess_tail_min']:.0f}, divergences {diag['divergences']}, "
                  f"E-BFMI min {min(diag['ebfmi_per_chain'] or [float('nan')]):.2f}"
                  + (f", max Pareto k {diag['pareto_k_max']:.2f}" if 'pareto_k_max' in diag
                     else "") + ").", ""]
        if "loo_warning" in diag:
            lines += [f"- Patient-level LOO: {diag['loo_warning']}.", ""]
        for failure in diag["failures"]:
            lines.append(f"- FAILED {failure['gate']}: {failure['problem']} — try: "
                         f"{failure['try']}")
        if diag["failures"]:
            lines.append("")
        extra = manifest["models"][model].get("notes", [])
        lines += [f"- {note}" for note in extra] + ([""] if extra else [])
        for outcome, part in table.groupby("outcome", sort=False):
            lines += [f"### {outcome or 'parameters shared by all outcomes'}", ""]
            shown = pd.DataFrame([{"quantity": r["quantity"], "group": r["group"],
                                   **format_row(r)} for _, r in part.iterrows()])
            shown = shown.rename(columns={"interval": interval_label(ci_prob, ci_kind)})
            lines += [markdown_table(shown), ""]
    return "\n".join(lines)


def significant(value: float, digits: int = 3) -> str:
    """``value`` to ``digits`` significant digits (for prior summaries, which have no MCSE
    worth quoting: they describe a distribution, not estimate a number)."""
    if value is None or not math.isfinite(value):
        return "NA"
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))
    return f"{value:.{decimals}f}" if abs(value) < 10 ** (digits + 2) else f"{value:.{digits}g}"


def prior_predictive_markdown(table: pd.DataFrame, manifest: dict) -> str:
    """prior_predictive.md: the quantiles of prior_predictive.csv, for people."""
    lines = ["# What the priors imply (prior predictive, no fitting)", ""]
    if manifest["data"].get("reconstructed"):
        lines += [f"> **{RECONSTRUCTED_NOTE}**", ""]
    lines += [f"{manifest['prior_draws']} draws from each model's prior (seed "
              f"{manifest['seed']}), pushed through the model with the series' own patients, "
              "groups and covariates; the outcomes themselves were not used. Columns are "
              "quantiles of the prior predictive distribution (5% to 95%: a 90% prior "
              "predictive interval), shown to 3 significant digits; "
              "`prior_predictive.csv` has them unrounded.", ""]
    quantile_columns = [c for c in table.columns if c[0] == "q" and c[1:].isdigit()]
    for model, part in table.groupby("model", sort=False):
        info = manifest["models"][model]
        lines += [f"## {model} (prior set '{info['prior_set']}')", "",
                  f"![{model}](plots/{model}_prior.png)", ""]
        shown = pd.DataFrame([{"outcome": r["outcome"], "quantity": r["quantity"],
                               "group": r["group"],
                               **{f"{int(c[1:])}%": significant(r[c])
                                  for c in quantile_columns}}
                              for _, r in part.iterrows()])
        lines += [markdown_table(shown), ""]
    return "\n".join(lines)


def estimate_with_interval(row) -> str:
    """'median (low to high)', rounded by the row's Monte Carlo error."""
    d = decimals_for(row["mcse_mean"], row["median"])
    return f"{fmt(row['median'], d)} ({fmt(row['ci_low'], d)} to {fmt(row['ci_high'], d)})"


DIAGNOSTIC_FORMATS = {"r_hat": "{:.4f}", "ess": "{:.0f}", "ebfmi": "{:.2f}",
                      "pareto_k": "{:.2f}", "sensitivity": "{:.3f}", "seconds": "{:.1f}"}


def diagnostic(kind: str, value: float) -> str:
    """A diagnostic for people: R-hat to 4 decimals, ESS whole, E-BFMI and Pareto k to 2,
    power-scaling sensitivity to 3, seconds to 1."""
    if value is None or not math.isfinite(value):
        return "NA"
    return DIAGNOSTIC_FORMATS[kind].format(value)


def prior_text(prior: dict) -> str:
    """A prior in the Prior.to_dict form as people read it: 'Normal(mu=1.4, sigma=1.5)'."""
    arguments = ", ".join(f"{k}={v:g}" for k, v in prior["kwargs"].items())
    return f"{prior['dist']}({arguments})"
