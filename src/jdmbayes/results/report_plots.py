"""The run report's figures, one function per figure, each from a fitted model's results.

Patients appear only as numbers 1..n (model coordinates); no subject identifier is read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter
from scipy.stats import rankdata

from jdmbayes.estimands.names import (
    describe,
    is_contrast,
    null_value,
    weekly,
    without_repeated_time_ratios,
)
from jdmbayes.results.formatting import interval_label
from jdmbayes.results.plots import OTHER_COLOURS, forest_figure, png_bytes


def _present(idata, names):
    return [n for n in names if n in idata.posterior]


def element_draws(array) -> list[tuple[str, np.ndarray]]:
    """(label, (chains, draws) values) for each element of a posterior variable."""
    extra = [d for d in array.dims if d not in ("chain", "draw")]
    if not extra:
        return [(array.name, array.transpose("chain", "draw").values)]
    stacked = array.stack(element=extra).transpose("chain", "draw", "element")
    labels = [", ".join(str(v) for v in np.atleast_1d(key)) for key in
              stacked.indexes["element"]]
    return [(f"{array.name}[{label}]", stacked.values[..., i]) for i, label in enumerate(labels)]


def rank_panel(ax, values: np.ndarray, title: str, bins: int = 20) -> None:
    """Rank plot (Vehtari et al. 2021): the draws of all chains ranked together, then each
    chain's ranks as a histogram drawn with vertical lines about the uniform count."""
    chains, draws = values.shape
    ranks = rankdata(values.ravel()).reshape(chains, draws)
    edges = np.linspace(0.5, chains * draws + 0.5, bins + 1)
    expected = draws / bins
    centres = np.arange(bins)
    for chain in range(chains):
        counts, _ = np.histogram(ranks[chain], edges)
        offset = chain * (bins + 2)
        colour = f"C{chain}"
        ax.vlines(offset + centres, expected, counts, colors=colour, linewidth=1.2)
        ax.hlines(expected, offset - 0.5, offset + bins - 0.5, colors=colour, linewidth=0.6)
    ax.set_yticks([])
    ax.set_xticks([c * (bins + 2) + bins / 2 for c in range(chains)],
                  [str(c) for c in range(chains)], fontsize=7)
    ax.set_xlabel("chain (ranks binned)", fontsize=7)
    ax.set_title(title, fontsize=8)


def rank_figure(result) -> Figure:
    """Rank plots of the key parameters: flat, overlapping histograms mean mixed chains."""
    names = _present(result.idata, result.key_parameters)
    panels = [(label, values) for name in names
              for label, values in element_draws(result.idata["posterior"][name])]
    count = len(panels)
    columns = 4
    rows = max(1, int(np.ceil(count / columns)))
    figure = Figure(figsize=(3.2 * columns, 2.2 * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, (label, values) in zip(axes, panels):
        rank_panel(ax, values, label)
    for ax in axes[count:]:
        ax.set_visible(False)
    figure.suptitle(f"{result.name}: rank plots by chain (uniform = well mixed)", fontsize=10)
    return figure


def forest_of_effects(result, summary: pd.DataFrame) -> Figure:
    """Group-level estimands (one panel per estimand, a row per drug and dose level) and the
    contrasts, with their intervals."""
    # the longitudinal panels: changes and their differences at the last summary week
    last = max((float(w[1]) for w in map(weekly, summary["quantity"]) if w), default=None)
    shown = ["time_ratio", "median_time_wk"]
    if last is not None:
        shown += [f"diff_mean_change_wk{last:g}", f"mean_change_wk{last:g}"]
    part = summary[(summary["model"] == result.name) & summary["quantity"].isin(shown)]
    part = part[~part["group"].str.contains(":")]
    # group effects shared by several outcomes (the milestones' time ratios): one panel
    part = without_repeated_time_ratios(part, result.spec.outcomes)
    contrasts = part["quantity"].map(is_contrast)
    label = [("time ratio (<1: a shorter time; shared by the milestones)" if q == "time_ratio"
              else describe(o, q, "").replace(", ", "") if c else describe(o, q, "overall"))
             for o, q, c in zip(part["outcome"], part["quantity"], contrasts)]
    frame = pd.DataFrame({"label": label, "quantity": part["quantity"], "set": part["group"],
                          "median": part["median"], "ci_low": part["ci_low"],
                          "ci_high": part["ci_high"]})
    ci = interval_label(part["ci_prob"].iloc[0], part["ci_kind"].iloc[0])
    quantity_of = dict(zip(frame["label"], frame["quantity"]))
    return forest_figure(frame, f"{result.name}: by drug and dose (posterior median, {ci})",
                         lambda name: null_value(quantity_of[name]))


def survival_axes(ax, outcome: str, part: pd.DataFrame) -> None:
    ax.set_ylim(-0.02, 1.02)
    # episodes: gap times, on the axis their table names
    ax.set_xlabel(part["time_axis"].iloc[0] if "time_axis" in part else "weeks from time 0")
    ax.set_ylabel("proportion without the event")
    ax.set_title(outcome, fontsize=9)
    ax.legend(fontsize=7)


def ppc_survival_figure(result) -> Figure:
    table = result.tables["ppc_survival"]
    outcomes = list(dict.fromkeys(table["outcome"]))
    figure = Figure(figsize=(max(4.2 * len(outcomes), 7.5), 3.2), layout="constrained")
    axes = figure.subplots(1, len(outcomes), squeeze=False)[0]
    for ax, outcome in zip(axes, outcomes):
        part = table[table["outcome"] == outcome]
        ax.fill_between(part["time_wk"], part["predicted_low"], part["predicted_high"],
                        color="#1b5e9e", alpha=0.25, lw=0, label="95% posterior predictive")
        ax.plot(part["time_wk"], part["predicted_median"], color="#1b5e9e", label="predicted")
        ax.step(part["time_wk"], part["observed_survival"], where="post", color="k",
                label=part["estimator"].iloc[0])
        survival_axes(ax, outcome, part)
    figure.suptitle(f"{result.name}: posterior predictive survival against the observed "
                    "estimate", fontsize=10)
    return figure


def group_survival_figure(result) -> Figure:
    table = result.tables["survival_by_group"]
    outcomes = list(dict.fromkeys(table["outcome"]))
    groups = [g for g in dict.fromkeys(table["group"]) if g != "overall"]
    figure = Figure(figsize=(max(4.2 * len(outcomes), 7.5), 3.4), layout="constrained")
    axes = figure.subplots(1, len(outcomes), squeeze=False)[0]
    level = interval_label(table["ci_prob"].iloc[0], "eti").replace("interval", "band")
    for ax, outcome in zip(axes, outcomes):
        for position, group in enumerate(groups):
            part = table[(table["outcome"] == outcome) & (table["group"] == group)]
            colour = OTHER_COLOURS[position % len(OTHER_COLOURS)]
            ax.fill_between(part["time_wk"], part["survival_low"], part["survival_high"],
                            color=colour, alpha=0.15, lw=0)
            ax.plot(part["time_wk"], part["survival_median"], color=colour, label=group)
        survival_axes(ax, outcome, part)
    figure.suptitle(f"{result.name}: population-averaged survival by drug and by dose "
                    f"(bands: {level})", fontsize=10)
    return figure


def trajectories_figure(result) -> Figure:
    """Observed values per patient (numbered) and the group means' predictive bands."""
    visits = result.tables["ppc_trajectories"]
    groups = result.tables["ppc_groups"]
    names = list(dict.fromkeys(groups["group"]))
    figure = Figure(figsize=(max(3.6 * len(names), 7.5), 3.3), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False, sharey=True)[0]
    cell_of = dict(zip(result.idata.log_likelihood.coords["patient"].values,
                       result.idata.constant_data["cell_label"].values))
    for ax, group in zip(axes, names):
        for patient, rows in visits.groupby("patient"):
            if cell_of.get(patient) != group:
                continue
            ax.plot(rows["week"], rows["observed"], color="0.55", lw=0.8, marker=".", ms=3)
        part = groups[groups["group"] == group]
        ax.fill_between(part["week"], part["predicted_low"], part["predicted_high"],
                        color="#1b5e9e", alpha=0.25, lw=0, label="95% predictive, group mean")
        ax.plot(part["week"], part["observed_mean"], "o", color="k", ms=3,
                label="observed group mean")
        ax.set_title(f"{group} (n={len([p for p, c in cell_of.items() if c == group])})",
                     fontsize=9)
        ax.set_xlabel("weeks from time 0")
        if result.spec.upper:
            ax.set_ylim(-0.02 * result.spec.upper, 1.02 * result.spec.upper)
        if result.spec.likelihood == "lognormal":
            ax.set_yscale("log")       # a positive measure modelled on the log scale
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(ScalarFormatter())
    axes[0].set_ylabel(result.spec.measure + (" (log scale)"
                                              if result.spec.likelihood == "lognormal" else ""))
    axes[0].legend(fontsize=7)
    binning = groups["binning"].iloc[0] if "binning" in groups and len(groups) else ""
    figure.suptitle(f"{result.name}: observed trajectories (grey, one line per patient)\n"
                    f"and posterior predictive bands of the group means ({binning})",
                    fontsize=10)
    return figure


def prior_check_figure(result) -> Figure:
    """The observed values' quantiles against those of data drawn from the prior."""
    table = result.tables["prior_check"]
    figure = Figure(figsize=(5.6, 3.4), layout="constrained")
    ax = figure.subplots()
    ax.fill_between(table["quantile"], table["prior_low"], table["prior_high"], color="#1b5e9e",
                    alpha=0.25, lw=0, label=f"{table['band'].iloc[0]}")
    ax.plot(table["quantile"], table["prior_median"], color="#1b5e9e", lw=1,
            label="prior predictive median")
    ax.plot(table["quantile"], table["observed"], "o", color="k", ms=4, label="observed")
    ax.set_xlabel("quantile of the values")
    ax.set_ylabel(result.spec.measure + (" (log scale)"
                                         if result.spec.likelihood == "lognormal" else ""))
    if result.spec.likelihood == "lognormal":
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    ax.set_title(f"{result.name}: prior predictive check ({result.prior_set.name} priors)",
                 fontsize=9)
    return figure


def filled_histogram(ax, values: np.ndarray, bins: np.ndarray, **style) -> None:
    """A density histogram drawn as one filled outline: the picture of ``ax.hist(values,
    bins, density=True, **style)``'s bars, without a patch per bar."""
    density, _ = np.histogram(values, bins=bins, density=True)
    ax.stairs(density, bins, fill=True, **style)


def prior_posterior_figure(result) -> Figure:
    """Prior (grey) against posterior (blue) of each key parameter's first element."""
    names = _present(result.idata, result.key_parameters)
    names = [n for n in names if n in result.idata.prior]
    figure = Figure(figsize=(max(3.0 * len(names), 7.5), 2.6), layout="constrained")
    axes = figure.subplots(1, len(names), squeeze=False)[0]
    for ax, name in zip(axes, names):
        post = result.idata.posterior[name]
        prior = result.idata.prior[name]
        extra = [d for d in post.dims if d not in ("chain", "draw")]
        first = {d: 0 for d in extra}
        p_values = post.isel(first).values.ravel()
        q_values = prior.isel(first).values.ravel()
        low, high = np.quantile(np.concatenate([p_values, q_values]), [0.005, 0.995])
        bins = np.linspace(low, high, 50)
        filled_histogram(ax, q_values, bins, color="0.6", alpha=0.6, label="prior")
        filled_histogram(ax, p_values, bins, color="#1b5e9e", alpha=0.7, label="posterior")
        label = name + ("[" + ",".join(str(post.coords[d].values[0]) for d in extra) + "]"
                        if extra else "")
        ax.set_title(label, fontsize=8)
        ax.set_yticks([])
    axes[0].legend(fontsize=7)
    figure.suptitle(f"{result.name}: prior against posterior", fontsize=10)
    return figure


def render_figures(result) -> dict[str, bytes]:
    """name -> PNG of every figure of one model (called where the model was fitted, so
    rendering runs in the worker, in parallel with the other models)."""
    summary = pd.DataFrame(result.summary_rows)
    return {name: png_bytes(figure) for name, figure in figures_for(result, summary).items()}


FIGURES = {"rank": lambda result, summary: rank_figure(result),
           "forest": forest_of_effects,
           "prior_posterior": lambda result, summary: prior_posterior_figure(result),
           "ppc_survival": lambda result, summary: ppc_survival_figure(result),
           "survival_by_group": lambda result, summary: group_survival_figure(result),
           "trajectories": lambda result, summary: trajectories_figure(result),
           "prior_check": lambda result, summary: prior_check_figure(result)}


def figures_for(result, summary: pd.DataFrame) -> dict[str, Figure]:
    """name -> figure for one model, those its kind declares (``result.figure_names``; file
    names are ``<model>_<name>.png``)."""
    return {name: FIGURES[name](result, summary) for name in result.figure_names}
