"""Recompute the published statistics of the Ding et al. (2021) letter from a series.

Used by ``scripts/reconstruct.py`` (which refuses to write a series that misses any) and by
the reconstruction test. Conventions: quartiles are Hyndman & Fan type 6 (numpy
``method="weibull"``, SPSS's default), SDs use ddof=1, one month is 30.4375 days, "final" is
each patient's last non-missing value.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

DAYS_PER_MONTH = 30.4375
QUARTILE_METHOD = "weibull"  # Hyndman & Fan type 6


@dataclass(frozen=True)
class Check:
    name: str
    published: object
    recomputed: object
    ok: bool

    def __str__(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: published {self.published}, " \
               f"recomputed {self.recomputed}"


def quartiles(values) -> tuple[float, float, float]:
    q = np.quantile(np.asarray(values, float), [0.25, 0.5, 0.75], method=QUARTILE_METHOD)
    return float(q[0]), float(q[1]), float(q[2])


def _rounds_to(value: float, target: float, decimals: int) -> bool:
    return abs(value - target) <= 0.5 * 10.0 ** (-decimals) + 1e-9


def _first_last(measurements: pd.DataFrame, measure: str) -> pd.DataFrame:
    rows = measurements[(measurements["measure"] == measure)].sort_values(["subject_id", "week"])
    baseline = rows[rows["week"] == 0].set_index("subject_id")["value"]
    final = rows.dropna(subset=["value"]).groupby("subject_id")["value"].last()
    return pd.DataFrame({"baseline": baseline, "final": final})


def _observed_times(events: pd.DataFrame, event: str) -> np.ndarray:
    rows = events[(events["event"] == event) & (events["censored"] == 0)]
    return rows["time_wk"].to_numpy(float)


def recompute(subjects: pd.DataFrame, events: pd.DataFrame,
              measurements: pd.DataFrame, published: dict) -> list[Check]:
    """Every statistic in ``published`` recomputed from the three tables, with a verdict."""
    checks: list[Check] = []

    def count(name, published_n, n):
        checks.append(Check(name, published_n, int(n), int(n) == int(published_n)))

    def mean_sd(name, values):
        spec = published[name]
        m, s = float(np.mean(values)), float(np.std(values, ddof=1))
        ok = _rounds_to(m, spec["mean"], spec["decimals"]) and _rounds_to(s, spec["sd"],
                                                                           spec["decimals"])
        checks.append(Check(name, f"{spec['mean']} ± {spec['sd']}", f"{m:.4f} ± {s:.4f}", ok))

    def median_iqr(name, values):
        spec = published[name]
        q1, med, q3 = quartiles(values)
        d = spec["decimals"]
        ok = all(_rounds_to(v, spec[k], d) for v, k in ((q1, "q1"), (med, "median"), (q3, "q3")))
        checks.append(Check(name, f"{spec['median']} ({spec['q1']}–{spec['q3']})",
                            f"{med:.4f} ({q1:.4f}–{q3:.4f})", ok))

    count("n_patients", published["n_patients"]["value"], len(subjects))
    count("n_female", published["n_female"]["value"], (subjects["sex"] == "F").sum())
    mean_sd("age_onset_y", subjects["age_onset_y"])
    mean_sd("age_start_y", subjects["age_start_y"])
    median_iqr("disease_course_mo", subjects["disease_course_mo"])
    gap = (subjects["disease_course_mo"]
           - 12 * (subjects["age_start_y"] - subjects["age_onset_y"])).abs().max()
    limit = published["disease_course_mo"]["max_abs_diff_from_ages_mo"]
    checks.append(Check("disease_course_vs_ages", f"<= {limit} mo", f"{gap:.3f} mo",
                        gap <= limit + 1e-9))
    for kind, n in published["refractory_type"].items():
        count(f"refractory_type.{kind}", n, (subjects["refractory_type"] == kind).sum())
    for drug, n in published["drug"].items():
        count(f"drug.{drug}", n, (subjects["drug"] == drug).sum())
    dose = published["dose"]
    light = subjects["weight_kg"] < 25
    count("dose.under_25kg_at_2_5mg", dose["under_25kg_at_2_5mg"],
          (light & (subjects["dose_start_mg_bid"] == 2.5)).sum())
    count("dose.at_or_over_25kg_at_5mg", dose["at_or_over_25kg_at_5mg"],
          (~light & (subjects["dose_start_mg_bid"] == 5)).sum())
    escalated = subjects[subjects["dose_max_mg_bid"] > subjects["dose_start_mg_bid"]]
    count("dose.escalated", dose["escalated_to_7_5mg"], len(escalated))
    ok = (len(escalated) == 1 and escalated["dose_max_mg_bid"].iloc[0] == 7.5
          and escalated["sex"].iloc[0] == dose["escalated_sex"]
          and escalated["weight_kg"].iloc[0] > 25)
    checks.append(Check("dose.escalated_is_girl_over_25kg_to_7_5mg", True, bool(ok), bool(ok)))

    spec = published["followup_mo"]
    months = subjects["followup_wk"] * 7 / DAYS_PER_MONTH
    med = float(np.median(months))
    ok = (_rounds_to(med, spec["median"], spec["decimals_median"])
          and round(months.min()) == spec["min"] and round(months.max()) == spec["max"])
    checks.append(Check("followup_mo", f"{spec['median']} ({spec['min']}–{spec['max']})",
                        f"{med:.4f} ({months.min():.3f}–{months.max():.3f})", ok))

    rash = published["rash"]
    count("rash.n_with_rash", rash["n_with_rash"], subjects["rash_at_start"].sum())
    count("rash.n_improved", rash["n_improved"], len(_observed_times(events, "rash_improvement")))
    count("rash.n_resolved", rash["n_resolved"], len(_observed_times(events, "rash_resolution")))
    for event in ("rash_improvement", "rash_marked_improvement", "rash_resolution"):
        median_iqr(f"{event}_wk", _observed_times(events, event))

    relapses = events[(events["event"] == "rash_relapse") & (events["censored"] == 0)]
    spec = published["relapse"]
    count("relapse.n", spec["n"], len(relapses))
    if len(relapses) == 1:
        sid = relapses["subject_id"].iloc[0]
        resolved = events[(events["subject_id"] == sid) & (events["event"] == "rash_resolution")]
        got = (float(resolved["time_wk"].iloc[0]), float(relapses["time_wk"].iloc[0]))
        want = (spec["resolved_wk"], spec["relapse_wk"])
        checks.append(Check("relapse.times_wk", want, got, got == want))

    gc = events[(events["event"] == "gc_discontinuation") & (events["censored"] == 0)]
    count("gc_discontinuation.n", published["gc_discontinuation"]["n"], len(gc))
    ok = len(escalated) == 1 and escalated["subject_id"].iloc[0] in set(gc["subject_id"])
    checks.append(Check("gc_discontinuation.includes_escalated", True, bool(ok), bool(ok)))

    with_rash = set(subjects.loc[subjects["rash_at_start"] == 1, "subject_id"])
    cat = _first_last(measurements, "cat_bm").loc[lambda d: d.index.isin(with_rash)]
    count("cat_bm.n_patients", rash["n_with_rash"], cat.dropna().shape[0])
    median_iqr("cat_bm_baseline", cat["baseline"])
    median_iqr("cat_bm_final", cat["final"])
    p = float(stats.wilcoxon(cat["baseline"], cat["final"]).pvalue)
    bound = published["cat_bm_wilcoxon"]["p_below"]
    checks.append(Check("cat_bm_wilcoxon", f"p < {bound}", f"p = {p:.2e}", p < bound))

    spec = published["cmas"]
    weak = set(subjects.loc[subjects["weak_at_start"] == 1, "subject_id"])
    cmas = _first_last(measurements, "cmas")
    count("cmas.n_weak_with_cmas", spec["n_weak"], len(weak & set(cmas.index)))
    count("cmas.n_unevaluable_baseline", spec["n_unevaluable_baseline"],
          cmas["baseline"].isna().sum())
    count("cmas.n_unchanged_at_47", spec["n_unchanged_at_47"],
          ((cmas["baseline"] == 47) & (cmas["final"] == 47)).sum())
    improved = cmas[cmas["final"] > cmas["baseline"]]
    count("cmas.n_improved", spec["n_improved"], len(improved))
    mean_sd("cmas_improved_baseline", improved["baseline"])
    mean_sd("cmas_improved_final", improved["final"])
    p = float(stats.ttest_rel(improved["final"], improved["baseline"]).pvalue)
    spec = published["cmas_paired_t"]
    checks.append(Check("cmas_paired_t", spec["p"], round(p, 5),
                        _rounds_to(p, spec["p"], spec["decimals"])))

    ldh = _first_last(measurements, "ldh")
    spec = published["ldh"]
    count("ldh.n", spec["n"], ldh.dropna().shape[0])
    median_iqr("ldh_baseline", ldh["baseline"])
    median_iqr("ldh_final", ldh["final"])
    p = float(stats.wilcoxon(ldh["baseline"], ldh["final"]).pvalue)
    checks.append(Check("ldh.wilcoxon_p", spec["wilcoxon_p"], round(p, 5),
                        _rounds_to(p, spec["wilcoxon_p"], spec["wilcoxon_decimals"])))
    rises = sorted(map(tuple, ldh[ldh["final"] > ldh["baseline"]].to_numpy(int).tolist()))
    want = sorted(map(tuple, spec["rises"]))
    checks.append(Check("ldh.rises", want, rises, rises == want))
    return checks


def load_published(path: str | Path) -> dict:
    with open(path, "rb") as handle:
        return tomllib.load(handle)
