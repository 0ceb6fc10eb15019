"""A descriptive summary of a validated series (counts only: no patient rows)."""

from __future__ import annotations

from jdmbayes.data.validate import Series


def describe_series(series: Series) -> str:
    s, e, m = series.subjects, series.events, series.measurements
    unit = "" if series.time_unit == "weeks" else f" (converted from {series.time_unit})"
    female = f" ({(s['sex'] == 'F').sum()} female)" if "sex" in s else ""
    lines = [f"series {series.folder}: {len(s)} patients{female}, follow-up median "
             f"{s['followup_wk'].median():.1f} weeks (range {s['followup_wk'].min():g}-"
             f"{s['followup_wk'].max():g}){unit}"]
    if {"drug", "dose_start_mg_bid"} <= set(s):
        lines.append("groups (drug x starting dose):")
        for (drug, dose), n in s.groupby(["drug", "dose_start_mg_bid"]).size().items():
            lines.append(f"  {drug}:{dose:g}mg  n={n}")
    lines.append("events (observed / right-censored / interval-censored):"
                 + ("" if len(e) else " none"))
    for event, rows in e.groupby("event", sort=False):
        interval = rows["time_lo_wk"].notna()
        lines.append(f"  {event}: {int(((rows['censored'] == 0) & ~interval).sum())} / "
                     f"{int((rows['censored'] == 1).sum())} / {int(interval.sum())}")
    lines.append("measurements (patients, values, missing):" + ("" if len(m) else " none"))
    for measure, rows in m.groupby("measure", sort=False):
        lines.append(f"  {measure}: {rows['subject_id'].nunique()}, "
                     f"{int(rows['value'].notna().sum())}, {int(rows['value'].isna().sum())}")
    return "\n".join(lines)
