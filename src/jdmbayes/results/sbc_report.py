"""The calibration report: ranks, uniformity table, ECDF figures and README.md of an SBC run.

``<out>/ranks.csv`` (one row per replicate and parameter, unrounded), ``uniformity.csv``,
``ecdf-<model>.png`` (rank ECDF minus the uniform CDF, with the simultaneous band the
verdict uses) and ``README.md`` (the report for people; numbers go through
:mod:`jdmbayes.results.formatting`), ``manifest.json`` (settings, data, versions, timing).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from jdmbayes.inference.calibration import SBCSettings, ecdf_band
from jdmbayes.results.formatting import diagnostic, markdown_table, significant
from jdmbayes.results.plots import save_png
from jdmbayes.results.runfolder import write_json


def ecdf_figure(ranks: pd.DataFrame, table: pd.DataFrame, model: str,
                settings: SBCSettings) -> Figure:
    """One panel per parameter: ECDF of the ranks minus the uniform CDF, with the band."""
    rows = table[table["model"] == model]
    m = len(table)
    columns = 4
    lines = int(np.ceil(len(rows) / columns))
    figure = Figure(figsize=(3.0 * columns, 2.3 * lines), layout="constrained")
    levels = settings.thin_to + 1
    for position, row in enumerate(rows.itertuples(index=False)):
        ax = figure.add_subplot(lines, columns, position + 1)
        values = ranks[(ranks["model"] == model) & (ranks["parameter"] == row.parameter)]
        values = np.sort(values["rank"].to_numpy())
        points, lower, upper = ecdf_band(len(values), settings.thin_to,
                                         1 - settings.alpha / m)
        expected = (points + 1) / levels
        ecdf = np.searchsorted(values, points, side="right") / len(values)
        ax.fill_between(points, lower - expected, upper - expected, color="#c8d6e5",
                        step="post", label=f"simultaneous {1 - settings.alpha / m:.4f} band")
        ax.step(points, ecdf - expected, where="post",
                color="#1b5e9e" if row.passes else "#c0392b")
        ax.axhline(0, color="#555555", linewidth=0.6)
        ax.set_title(f"{row.parameter}\nHolm p = {significant(row.p_holm, 2)}", fontsize=8)
        ax.tick_params(labelsize=7)
        if position % columns == 0:
            ax.set_ylabel("ECDF − uniform", fontsize=7)
        ax.set_xlabel("rank", fontsize=7)
    figure.suptitle(f"{model}: rank ECDF minus uniform ({len(values)} replicates, ranks 0–"
                    f"{settings.thin_to}); shaded: simultaneous band at "
                    f"{1 - settings.alpha / m:.4f} (Bonferroni over {m} parameters)",
                    fontsize=10)
    return figure


def verdict_table(table: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for model, frame in table.groupby("model", sort=False):
        rows.append({"model": model, "parameters": len(frame),
                     "pass": int(frame["passes"].sum()),
                     "verdict": "passes" if frame["passes"].all() else "FAILS",
                     "smallest Holm p": significant(frame["p_holm"].min(), 2),
                     "replicates with divergences": int(
                         frame["replicates_with_divergences"].max())})
    return pd.DataFrame(rows)


def parameter_table(table: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        "model": table["model"], "parameter": table["parameter"],
        "chi-square p": [significant(p, 2) for p in table["p"]],
        "Holm p": [significant(p, 2) for p in table["p_holm"]],
        "ECDF in band": np.where(table["inside_band"], "yes", "NO"),
        "median ESS bulk": [diagnostic("ess", v) for v in table["median_ess_bulk"]],
        "max R-hat": [diagnostic("r_hat", v) for v in table["max_rhat"]],
        "verdict": np.where(table["passes"], "passes", "FAILS")})


def report_markdown(table: pd.DataFrame, ranks: pd.DataFrame, manifest: dict) -> str:
    settings = manifest["settings"]
    m = len(table)
    seconds = ranks.groupby(["model", "replicate"])["sample_s"].first()
    data = manifest["data"]
    lines = [
        "# Simulation-based calibration on the real design", "",
        f"Design: the series in `{data['folder_name']}` ({data['kind']}): its patients, groups "
        "and covariates, follow-up, visit schedule, censoring pattern and missing values. "
        + ("The bundled series is *reconstructed*: synthetic rows that reproduce the letter's "
           "published statistics, not patient data. " if data["reconstructed"] else "")
        + f"Prior set: `{manifest['prior_set']}`.", "",
        "## What was done",
        f"- For each model, {settings['replicates']} replicates: parameters drawn from the "
        "model's own prior, a dataset simulated from the model on the design (milestones "
        "observed as the series observes them: exactly, or between the patient's visits for "
        "an outcome the series records that way; right-censored at follow-up; recurrent "
        "episodes in each real episode's window, from its start to its censoring or to the "
        "next episode's start; measures at the real visits), and the model "
        f"fitted with nutpie ({settings['chains']} chains × {settings['draws']} draws after "
        f"{settings['tune']} tuning, target acceptance {settings['target_accept']}), "
        "compiled once and reused with new data.",
        f"- Ranks of the true value among {settings['thin_to']} posterior draws thinned "
        f"evenly from {settings['chains'] * settings['draws']} (ranks 0–{settings['thin_to']}).",
        f"- Uniformity per parameter: chi-square test on {settings['bins']} equal-width rank "
        f"bins, Holm-adjusted over all {m} parameters of the run (family-wise error "
        f"{settings['alpha']}); and the rank ECDF inside the simultaneous band "
        "(Säilynoja et al. 2022, by simulation with a fixed generator, as arviz-stats "
        "does) at level "
        f"1 − {settings['alpha']}/{m} (Bonferroni). A parameter passes when both hold.",
        "- Checked parameters: every element of the population-level parameters and the "
        "first patient's frailty, baseline and change and the first cell's deviation.",
        f"- Seed {settings['seed']}; replicate r is simulated with seed ({settings['seed']}, r) "
        f"and fitted with seed {settings['seed']} + 1 + r.", "",
        "## Verdict", "", markdown_table(verdict_table(table)), "",
        f"Sampling time per replicate (after compilation): median "
        f"{significant(float(seconds.median()), 2)} s, max {significant(float(seconds.max()), 2)}"
        f" s, {significant(float(seconds.sum()), 3)} s in all. The command that wrote this "
        f"report took {significant(manifest['seconds'], 3)} s on {manifest['workers']} Dask "
        f"workers" + (f", reusing {manifest['chunks_reused']} of {manifest['chunks']} chunks of "
                      "replicates saved by an earlier run of the same configuration"
                      if manifest["chunks_reused"] else "") + ".", "",
        "## Per parameter", "", markdown_table(parameter_table(table)), "",
        "## Figures", "",
        *[f"![{model}](ecdf-{model}.png)" for model in table["model"].unique()], "",
        "## Reproduce", "", f"    {manifest['command']}", "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in manifest["versions"].items()) + ".",
        ""]
    return "\n".join(lines)


def write_sbc_report(folder: Path, ranks: pd.DataFrame, table: pd.DataFrame,
                     manifest: dict, settings: SBCSettings) -> None:
    ranks.to_csv(folder / "ranks.csv", index=False, float_format="%.17g")
    table.to_csv(folder / "uniformity.csv", index=False, float_format="%.17g")
    for model in table["model"].unique():
        save_png(ecdf_figure(ranks, table, model, settings), folder / f"ecdf-{model}.png")
    write_json(folder / "manifest.json", manifest)
    (folder / "README.md").write_text(report_markdown(table, ranks, manifest))
