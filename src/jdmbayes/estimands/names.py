"""The key estimands: the few quantities a statistician quotes, in words.

One list serves the sensitivity grid (rows of its table), power-scaling diagnostics and the
grant sentences, so they all speak of the same numbers with the same names.
"""

from __future__ import annotations

MILESTONE_OVERALL = ("median_time_wk", "p_event_by_wk12", "p_event_by_wk24")
LONGITUDINAL_OVERALL = ("mean_change_wk24", "p_change_ge_threshold_wk24")
CONTRASTS = ("time_ratio", "diff_mean_change_wk24")
# covariate effects: per unit and per SD of a numeric covariate (an indicator's effect is a
# plain contrast, level against reference)
COVARIATE_EFFECTS = ("time_ratio_per_unit", "time_ratio_per_sd", "diff_mean_change_wk24_per_unit",
                     "diff_mean_change_wk24_per_sd")
NULL_VALUE = {"time_ratio": 1.0, "hazard_ratio": 1.0, "diff_mean_change_wk24": 0.0,
              "time_ratio_per_unit": 1.0, "time_ratio_per_sd": 1.0,
              "diff_mean_change_wk24_per_unit": 0.0, "diff_mean_change_wk24_per_sd": 0.0}

WORDS = {
    "median_time_wk": "median time to {outcome} (weeks)",
    "p_event_by_wk12": "probability of {outcome} by week 12",
    "p_event_by_wk24": "probability of {outcome} by week 24",
    "mean_change_wk24": "mean change in {outcome} by week 24",
    "p_change_ge_threshold_wk24": "proportion improving by at least the threshold in "
                                  "{outcome} by week 24",
    "time_ratio": "time ratio {group} for {outcome}",
    "diff_mean_change_wk24": "difference in mean {outcome} change by week 24, {group}",
    "time_ratio_per_unit": "time ratio for {outcome} per unit of {group}",
    "time_ratio_per_sd": "time ratio for {outcome} per SD of {group}",
    "diff_mean_change_wk24_per_unit": "difference in mean {outcome} change by week 24 per "
                                      "unit of {group}",
    "diff_mean_change_wk24_per_sd": "difference in mean {outcome} change by week 24 per SD "
                                    "of {group}",
}


DISPLAY = {"rash_improvement": "rash improvement",
           "rash_marked_improvement": "marked rash improvement",
           "rash_resolution": "complete rash resolution",
           "gc_discontinuation": "glucocorticoid discontinuation",
           "cmas": "CMAS", "cat_bm": "CAT-BM", "ldh": "LDH", "ck": "CK"}
UNITS = {"cmas": "points", "cat_bm": "points", "ldh": "U/L", "ck": "U/L"}


def display(outcome: str) -> str:
    """An outcome as people write it ('CAT-BM', 'complete rash resolution')."""
    return DISPLAY.get(outcome, outcome.replace("_", " "))


def is_key(outcome: str, quantity: str, group: str) -> bool:
    if quantity in CONTRASTS + COVARIATE_EFFECTS:
        return True
    return group == "overall" and quantity in MILESTONE_OVERALL + LONGITUDINAL_OVERALL


def describe(outcome: str, quantity: str, group: str) -> str:
    """The estimand in words, e.g. 'median time to rash_resolution (weeks)'."""
    text = WORDS.get(quantity, f"{quantity} of {{outcome}} ({{group}})")
    return text.format(outcome=display(outcome), group=group)


def null_value(quantity: str) -> float | None:
    """The value meaning 'no difference' for a contrast, else None."""
    return NULL_VALUE.get(quantity)


def without_repeated_time_ratios(frame, outcomes):
    """Milestone models share their group effects across milestones, so their time ratios
    are the same for every milestone: keep those of the last milestone only."""
    if not outcomes:
        return frame
    return frame[(frame["quantity"] != "time_ratio") | (frame["outcome"] == outcomes[-1])]


def covariate_label(info: dict, per: str) -> str:
    """The group label of a covariate effect: 'sex=M/sex=F' style for an indicator (with
    ``per`` the separator), else the column with its centre and SD ('age (centre 9.7, SD
    3.2)') so that summary.csv records how it was standardised."""
    if info["kind"] == "indicator":
        column = info["column"]
        return f"{column}={info['level']}{per}{column}={info['reference']}"
    return f"{info['column']} (centre {info['centre']:.6g}, SD {info['sd']:.6g})"
