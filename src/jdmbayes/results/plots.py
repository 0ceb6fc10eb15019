"""Figures for people (matplotlib, no global state: every function returns a ``Figure``).

Plots never show subject identifiers; where a patient must be told apart it is numbered
1..n as in the model's coordinates. ``save_png`` writes a figure to a file and closes it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

PRIOR_COLOURS = {"default": "#1b5e9e", "vague": "#7f7f7f", "sceptical": "#c0392b",
                 "enthusiastic": "#2e8b57", "informative": "#8e44ad"}
OTHER_COLOURS = ["#d68910", "#16a085", "#6c3483", "#34495e", "#a04000"]


def prior_colour(name: str, position: int) -> str:
    return PRIOR_COLOURS.get(name, OTHER_COLOURS[position % len(OTHER_COLOURS)])


def save_png(figure: Figure, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(figure))


def png_bytes(figure: Figure) -> bytes:
    # constrained layout already fits the figure: no second "tight" drawing pass
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    return buffer.getvalue()


def prior_predictive_figure(pp) -> Figure:
    """Milestones: simulated times per milestone (log axis); longitudinal: value bands."""
    if pp.times:   # simulated event times (else trajectories of a measure)
        outcomes = list(pp.times)
        figure = Figure(figsize=(max(4.2 * len(outcomes), 7.5), 3.2), layout="constrained")
        axes = figure.subplots(1, len(outcomes), squeeze=False)[0]
        for ax, outcome in zip(axes, outcomes):
            times = np.clip(pp.times[outcome], 1e-2, 1e4)
            ax.hist(np.log10(times), bins=60, color="#1b5e9e", alpha=0.8)
            ticks = [0.1, 1, 4, 12, 52, 520]
            ax.set_xticks(np.log10(ticks), [f"{t:g}" for t in ticks])
            ax.set_xlabel(f"{pp.time_axis} (log scale; <0.01 shown at 0.01)")
            shares = ", ".join(f"{float((pp.times[outcome] <= week).mean()):.0%} by {week} wk"
                               for week in (12, 52))
            ax.set_title(f"{outcome}\n{shares}", fontsize=9)
            for week in (12, 52):
                ax.axvline(np.log10(week), color="k", lw=0.8, ls="--")
            ax.set_yticks([])
        figure.suptitle(f"{pp.model}: prior predictive {pp.times_label} of the modelled "
                        "patients (no outcomes used)", fontsize=10)
        return figure
    figure = Figure(figsize=(6.0, 3.6), layout="constrained")
    ax = figure.subplots()
    values = pp.trajectories
    for low, high, alpha in ((0.05, 0.95, 0.25), (0.25, 0.75, 0.45)):
        lo, hi = np.quantile(values, [low, high], axis=0)
        ax.fill_between(pp.weeks, lo, hi, color="#1b5e9e", alpha=alpha, lw=0,
                        label=f"{100 * (high - low):.0f}% prior predictive band")
    ax.plot(pp.weeks, np.median(values, axis=0), color="#1b5e9e", label="median")
    for row in pp.expected[:8]:
        ax.plot(pp.weeks, row, color="0.35", lw=0.7, alpha=0.8)
    if pp.upper:
        ax.set_ylim(-0.02 * pp.upper, 1.02 * pp.upper)
    ax.set_xlabel(pp.time_axis)
    ax.set_ylabel(pp.measure)
    ax.set_title(f"{pp.model}: simulated {pp.measure} of a patient under the prior\n"
                 "(bands: values incl. noise; grey: 8 draws of the expected trajectory)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="best")
    return figure


def forest_figure(table, title: str, null_value_of=None) -> Figure:
    """One panel per estimand (``label``), one row per set in it (prior set or group),
    each a posterior median and interval; rows are named on the axis.

    ``table`` has columns ``label``, ``set``, ``median``, ``ci_low``, ``ci_high``.
    ``null_value_of(label)`` gives a reference line (1 for ratios, 0 for differences) or None.
    """
    labels = list(dict.fromkeys(table["label"]))
    sizes = [int((table["label"] == label).sum()) for label in labels]
    figure = Figure(figsize=(7.5, 0.28 * sum(sizes) + 0.55 * len(labels) + 0.8),
                    layout="constrained")
    axes = figure.subplots(len(labels), 1, squeeze=False,
                           gridspec_kw={"height_ratios": [max(s, 1) + 1 for s in sizes]})[:, 0]
    all_sets = list(dict.fromkeys(table["set"]))
    for ax, label in zip(axes, labels):
        part = table[table["label"] == label]
        names = list(dict.fromkeys(part["set"]))
        for position, name in enumerate(names):
            row = part[part["set"] == name].iloc[0]
            colour = prior_colour(name, all_sets.index(name))
            ax.plot([row["ci_low"], row["ci_high"]], [-position, -position], color=colour,
                    lw=2)
            ax.plot(row["median"], -position, "o", color=colour, ms=4)
        null = null_value_of(label) if null_value_of else None
        if null is not None:
            ax.axvline(null, color="k", lw=0.7, ls=":")
        ax.set_yticks([-i for i in range(len(names))], names, fontsize=7)
        ax.set_ylim(-len(names) + 0.4, 0.6)
        ax.set_title(label, fontsize=8, loc="left")
        ax.tick_params(axis="x", labelsize=7)
    figure.suptitle(title, fontsize=10)
    return figure
