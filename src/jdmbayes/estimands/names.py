"""The key estimands: the few quantities a statistician quotes, in words.

One list serves the sensitivity grid (rows of its table), power-scaling diagnostics and the
grant sentences, so they all speak of the same numbers with the same names.
"""

from __future__ import annotations

import re

MILESTONE_OVERALL = ("median_time_wk", "p_event_by_wk12", "p_event_by_wk24")
CONTRASTS = ("time_ratio",)
# covariate effects of the milestone models: per unit and per SD of a numeric covariate (an
# indicator's effect is a plain contrast, level against reference)
COVARIATE_EFFECTS = ("time_ratio_per_unit", "time_ratio_per_sd")
NULL_VALUE = {"time_ratio": 1.0, "hazard_ratio": 1.0, "time_ratio_per_unit": 1.0,
              "time_ratio_per_sd": 1.0, "change_effect": 0.0}

# longitudinal quantities at a summary week w: <base>_wk<w>[_per_unit|_per_sd]
WEEKLY = re.compile(r"^(mean_change|p_change_ge_threshold|diff_mean_change|ratio_mean|"
                    r"mean_value)_wk(\d+(?:\.\d+)?)(_per_unit|_per_sd)?$")
WEEKLY_OVERALL = ("mean_change", "p_change_ge_threshold")      # key for the series overall
WEEKLY_CONTRASTS = ("diff_mean_change", "ratio_mean")          # key for every group
WEEKLY_NULL = {"diff_mean_change": 0.0, "ratio_mean": 1.0}
WEEKLY_WORDS = {
    "mean_change": "mean change in {outcome} by week {week}",
    "p_change_ge_threshold": "proportion improving by at least the threshold in {outcome} "
                             "by week {week}",
    "diff_mean_change": "difference in mean {outcome} change by week {week}, {group}",
    "ratio_mean": "ratio of mean {outcome} at week {week}, {group}",
    "mean_value": "mean {outcome} at week {week}",
}
PER_WORDS = {"_per_unit": "per unit of {group}", "_per_sd": "per SD of {group}"}

WORDS = {
    "median_time_wk": "median time to {outcome} (weeks)",
    "p_event_by_wk12": "probability of {outcome} by week 12",
    "p_event_by_wk24": "probability of {outcome} by week 24",
    "time_ratio": "time ratio {group} for {outcome}",
    "time_ratio_per_unit": "time ratio for {outcome} per unit of {group}",
    "time_ratio_per_sd": "time ratio for {outcome} per SD of {group}",
    "change_effect": "whole effect of {group} on the change in {outcome} (link scale)",
}


def weekly(quantity: str) -> tuple[str, str, str] | None:
    """(base, week, per) of a longitudinal quantity at a summary week, else None:
    'diff_mean_change_wk24_per_sd' -> ('diff_mean_change', '24', '_per_sd')."""
    match = WEEKLY.match(str(quantity))
    return (match.group(1), match.group(2), match.group(3) or "") if match else None


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
    parts = weekly(quantity)
    if parts is not None:
        base, _, per = parts
        return base in WEEKLY_CONTRASTS or (base in WEEKLY_OVERALL and not per
                                            and group == "overall")
    return group == "overall" and quantity in MILESTONE_OVERALL


def describe(outcome: str, quantity: str, group: str) -> str:
    """The estimand in words, e.g. 'median time to rash_resolution (weeks)'."""
    parts = weekly(quantity)
    if parts is not None:
        base, week, per = parts
        text = WEEKLY_WORDS[base]
        if per:
            text = text.replace(", {group}", " " + PER_WORDS[per])
        return text.format(outcome=display(outcome), group=group, week=week)
    text = WORDS.get(quantity, f"{quantity} of {{outcome}} ({{group}})")
    return text.format(outcome=display(outcome), group=group)


def null_value(quantity: str) -> float | None:
    """The value meaning 'no difference' for a contrast, else None."""
    parts = weekly(quantity)
    if parts is not None:
        return WEEKLY_NULL.get(parts[0])
    return NULL_VALUE.get(quantity)


def is_contrast(quantity: str) -> bool:
    """A comparison of groups (or a covariate's effect): it has a null value."""
    return null_value(quantity) is not None and quantity != "change_effect"


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
