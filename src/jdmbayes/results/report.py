"""The people's part of a run folder: ``plots/*.png``, ``report.html`` (one self-contained
file), ``summary.tex`` (booktabs) and ``grant.md``. Nothing here reads subject identifiers:
patients appear only as numbers 1..n."""

from __future__ import annotations

import pandas as pd

from jdmbayes.estimands.names import describe, is_key, without_repeated_time_ratios
from jdmbayes.inference.diagnostics import GATES
from jdmbayes.models.spec import PARAMETERS
from jdmbayes.results.comparison import comparison_sentences
from jdmbayes.results.formatting import (
    RECONSTRUCTED_NOTE,
    decimals_for_se,
    diagnostic,
    fmt,
    format_row,
    interval_label,
    own_tuning,
    prior_text,
)
from jdmbayes.results.grant import grant_markdown
from jdmbayes.results.html import data_uri, render
from jdmbayes.results.report_plots import render_figures

FIGURE_TITLES = {
    "rank": "Rank plots (convergence)", "forest": "Drug and dose effects",
    "ppc_survival": "Posterior predictive survival against Kaplan–Meier/Turnbull",
    "survival_by_group": "Survival by drug and by dose, with credible bands",
    "trajectories": "Trajectories with posterior predictive bands",
    "prior_posterior": "Prior against posterior",
    "prior_check": "Prior predictive check (observed quantiles against data drawn from the "
                   "prior)",
}


def gate_rows(d: dict) -> list[dict]:
    ebfmi = min(d["ebfmi_per_chain"]) if d["ebfmi_per_chain"] else float("nan")
    def at(key: str) -> str:        # the parameter of the extreme, where recorded
        return f" ({d[key]})" if d.get(key) else ""

    rows = [("max R-hat", f"≤ {GATES['r_hat_max']}",
             diagnostic("r_hat", d["r_hat_max"]) + at("r_hat_max_at"),
             d["r_hat_max"] <= GATES["r_hat_max"]),
            ("min bulk ESS", f"≥ {GATES['ess_min']}",
             diagnostic("ess", d["ess_bulk_min"]) + at("ess_bulk_min_at"),
             d["ess_bulk_min"] >= GATES["ess_min"]),
            ("min tail ESS", f"≥ {GATES['ess_min']}",
             diagnostic("ess", d["ess_tail_min"]) + at("ess_tail_min_at"),
             d["ess_tail_min"] >= GATES["ess_min"]),
            ("divergent transitions", f"≤ {GATES['divergences_max']}", str(d["divergences"]),
             d["divergences"] <= GATES["divergences_max"]),
            ("min E-BFMI", f"≥ {GATES['ebfmi_min']}", diagnostic("ebfmi", ebfmi),
             not ebfmi < GATES["ebfmi_min"])]
    rows = [{"gate": g, "rule": r, "value": v, "result": "pass" if ok else "FAIL"}
            for g, r, v, ok in rows]
    if "pareto_k_max" in d:
        rows.append({"gate": "max Pareto k (patient-level LOO)", "rule": "reported, not a gate",
                     "value": diagnostic("pareto_k", d["pareto_k_max"]),
                     "result": f"{d['n_pareto_k_above_0_7']} patient(s) above 0.7"
                     + ("" if d.get("loo_trustworthy", True) else
                        ": elpd_loo is NOT reliable as it stands; jdmbayes compare refits "
                        "the model without each of them (exact LOO)")})
    elif "loo_warning" in d:
        rows.append({"gate": "patient-level LOO", "rule": "reported, not a gate",
                     "value": "not computed", "result": d["loo_warning"]})
    return rows


def shown_rows(part: pd.DataFrame, ci: str, which: str = "all") -> pd.DataFrame:
    """Key estimands first (in words), then everything else; rounded by MCSE.
    ``which``: 'all', 'key' or 'other'."""
    key = [is_key(o, q, g) for o, q, g in zip(part["outcome"], part["quantity"], part["group"])]
    chosen = {"all": [part[key], part[[not k for k in key]]], "key": [part[key]],
              "other": [part[[not k for k in key]]]}[which]
    ordered = pd.concat(chosen)
    return pd.DataFrame([{"quantity": describe(r["outcome"], r["quantity"], r["group"])
                          if is_key(r["outcome"], r["quantity"], r["group"])
                          else f"{r['quantity']} {r['outcome']} {r['group']}".strip(),
                          **{(ci if k == "interval" else k): v
                             for k, v in format_row(r).items()}}
                         for _, r in ordered.iterrows()])


def latex_escape(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("$", r"\$"),
                 ("#", r"\#"), ("_", r"\_"), ("{", r"\{"), ("}", r"\}"), ("~", r"\~{}"),
                 ("^", r"\^{}")):
        text = text.replace(a, b)
    return text


def summary_latex(summary: pd.DataFrame, manifest: dict) -> str:
    ci = interval_label(manifest["ci_prob"], manifest["ci_kind"])
    lines = ["% jdmbayes summary tables; needs \\usepackage{booktabs}",
             "% numbers rounded by their Monte Carlo standard error; summary.csv is unrounded"]
    if manifest["data"].get("reconstructed"):
        lines.append("% " + RECONSTRUCTED_NOTE)
    for model, part in summary.groupby("model", sort=False):
        table = shown_rows(part, ci)
        lines += ["\\begin{table}[htbp]", "\\centering", "\\small",
                  f"\\caption{{{latex_escape(model)}: posterior medians and "
                  f"{latex_escape(ci)}s"
                  + (" (reconstructed series, not patient records)"
                     if manifest["data"].get("reconstructed") else "") + "}",
                  "\\begin{tabular}{lrrrr}", "\\toprule",
                  "Quantity & Median & " + latex_escape(ci[0].upper() + ci[1:])
                  + " & ESS & $\\hat{R}$ \\\\", "\\midrule"]
        for _, row in table.iterrows():
            lines.append(" & ".join(latex_escape(str(row[c])) for c in
                                    ("quantity", "estimate (median)", ci, "ess_bulk", "r_hat"))
                         + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}", ""]
    return "\n".join(lines)


def comparison_rows(comparison: pd.DataFrame) -> list[dict]:
    """The comparison table as people read it (rounded by SE)."""
    return [{"model": r["model"],
             "elpd": fmt(r["elpd_loo"], decimals_for_se(r["se"])),
             "se": fmt(r["se"], decimals_for_se(r["se"])),
             "diff": fmt(r["elpd_diff"], decimals_for_se(r["se_diff"])),
             "se_diff": fmt(r["se_diff"], decimals_for_se(r["se_diff"])),
             "weight": fmt(r["weight"], 2), "k": int(r["n_pareto_k_above_0_7"]),
             "refits": int(r["n_exact_refits"])}
            for _, r in comparison.iterrows()]


def write_report(folder, results, summary: pd.DataFrame, diagnostics: dict, manifest: dict,
                 allow_failed: bool = False, comparison: pd.DataFrame | None = None) -> None:
    ci = interval_label(manifest["ci_prob"], manifest["ci_kind"])
    models = []
    # models with more events first (milestone models: those with more milestones first;
    # scores have none), then by name
    for result in sorted(results, key=lambda r: (-len(r.spec.outcomes), r.name)):
        figures = []
        for name, png in (result.figures or render_figures(result)).items():
            path = folder / "plots" / f"{result.name}_{name}.png"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(png)
            figures.append({"title": FIGURE_TITLES[name], "uri": data_uri(path),
                            "file": path.relative_to(folder).as_posix()})
        info = manifest["models"][result.name]
        meanings = PARAMETERS[result.spec.prior_section]
        generic = set(info.get("prior_scaling", {}).get("generic_parameters", ()))
        models.append({
            "name": result.name, "kind": result.spec.kind,
            "description": result.spec.raw.get("model", {}).get("description", ""),
            "prior_set": info["prior_set"], "prior_description": info["prior_description"],
            "priors": [{"parameter": k, "prior": prior_text(v),
                        "meaning": meanings.get(k, "") + (" (generic table, scaled: see the "
                                                          "notes)" if k in generic else "")}
                       for k, v in info["priors"].items()],
            "notes": info["notes"], "diagnostics": diagnostics[result.name],
            "gates": gate_rows(diagnostics[result.name]),
            "key_table": shown_rows(without_repeated_time_ratios(
                summary[summary["model"] == result.name], result.spec.outcomes), ci, "key"),
            "other_table": shown_rows(summary[summary["model"] == result.name], ci, "other"),
            "figures": figures})
    compared = None
    if comparison is not None:
        compared = {"sentences": comparison_sentences(comparison),
                    "uri": data_uri(folder / "compare.png"), "rows": comparison_rows(comparison)}
    context = {"manifest": manifest, "models": models, "ci": ci, "compared": compared,
               "own_tuning": own_tuning(manifest),
               "reconstructed_note": RECONSTRUCTED_NOTE,
               "failed": [m for m, d in diagnostics.items() if d["verdict"] != "pass"]}
    (folder / "report.html").write_text(render("report.html.j2", **context))
    (folder / "summary.tex").write_text(summary_latex(summary, manifest))
    (folder / "grant.md").write_text(grant_markdown(summary, diagnostics, manifest,
                                                    allow_failed))
