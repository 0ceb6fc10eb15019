"""The comparison's files: ``compare.csv`` (unrounded), ``compare.md`` with the sentence a
grant writer can use, and ``compare.png`` (ELPD with its SE, differences with theirs)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jdmbayes.inference.compare import equally_good
from jdmbayes.results.formatting import decimals_for_se, fmt, markdown_table
from jdmbayes.results.plots import save_png


def comparison_sentences(table: pd.DataFrame) -> list[str]:
    """One plain sentence per model after the best: equally good, or worse by how much."""
    best = table.iloc[0]
    lines = []
    for _, row in table.iloc[1:].iterrows():
        d = decimals_for_se(row["se_diff"])
        diff, se = fmt(-row["elpd_diff"], d), fmt(row["se_diff"], d)
        if equally_good(row):
            lines.append(f"The {best['model']} and {row['model']} models predicted equally "
                         f"well; the difference in ELPD was {diff} (SE {se}).")
        else:
            lines.append(f"The {best['model']} model predicted better than {row['model']}; "
                         f"the difference in ELPD was {diff} (SE {se}).")
    refitted = table[table["n_exact_refits"] > 0]
    if len(refitted):
        lines.append("PSIS-LOO could not be trusted for some patients (Pareto k > 0.7), so "
                     "each was left out and the model refitted (exact LOO): "
                     + "; ".join(f"{r['model']}: {int(r['n_exact_refits'])} patient(s)"
                                 for _, r in refitted.iterrows()) + ".")
    untrusted = table.loc[~table["loo_trustworthy"], "model"].tolist()
    if untrusted:
        lines.append("Patient-level LOO is not reliable for " + ", ".join(untrusted)
                     + " (some Pareto k > 0.7); treat their ELPD as approximate.")
    return lines


def comparison_figure(table: pd.DataFrame) -> Figure:
    figure = Figure(figsize=(6.5, 0.6 * len(table) + 1.2), layout="constrained")
    ax = figure.subplots()
    y = np.arange(len(table))[::-1]
    ax.errorbar(table["elpd_loo"], y, xerr=table["se"], fmt="o", color="#1b5e9e",
                label="ELPD (± SE)")
    shown = table.iloc[1:]
    ax.errorbar(table["elpd_loo"].iloc[0] + shown["elpd_diff"], y[1:] - 0.2,
                xerr=shown["se_diff"], fmt="^", color="0.4", label="difference to the best (± SE)")
    ax.set_yticks(y, table["model"])
    ax.set_xlabel("expected log predictive density (patient-level LOO)")
    ax.legend(fontsize=7)
    return figure


def write_comparison(folder: Path, table: pd.DataFrame) -> None:
    """``compare.csv``, ``compare.md``, ``compare.png`` and, when patients were refitted
    (the table's ``attrs["exact_refits"]``), ``loo_refits.csv``: one row per refit."""
    table.to_csv(folder / "compare.csv", index=False, float_format="%.17g")
    if refits := table.attrs.get("exact_refits"):
        pd.DataFrame(refits).to_csv(folder / "loo_refits.csv", index=False,
                                    float_format="%.17g")
    shown = pd.DataFrame({
        "model": table["model"],
        "elpd_loo": [fmt(v, decimals_for_se(s)) for v, s in zip(table["elpd_loo"], table["se"])],
        "SE": [fmt(s, decimals_for_se(s)) for s in table["se"]],
        "elpd_diff": [fmt(v, decimals_for_se(s)) for v, s in zip(table["elpd_diff"],
                                                          table["se_diff"])],
        "SE of difference": [fmt(s, decimals_for_se(s)) for s in table["se_diff"]],
        "stacking weight": [fmt(w, 2) for w in table["weight"]],
        "patients with Pareto k > 0.7": table["n_pareto_k_above_0_7"].astype(str),
        "of them refitted (exact LOO)": table["n_exact_refits"].astype(str)})
    text = ["# Model comparison (patient-level LOO: PSIS, exact refits where Pareto k > 0.7)",
            "",
            *comparison_sentences(table), "", markdown_table(shown), ""]
    (folder / "compare.md").write_text("\n".join(text))
    save_png(comparison_figure(table), folder / "compare.png")
