"""Generate the reconstructed 25-patient series of Ding et al. (2021).

The letter publishes only summaries. This module builds synthetic patient rows, from a seed,
chosen so that every published statistic (``data/ding2021/published.toml``) is reproduced to
its published rounding: quantile anchors are placed on the order statistics, the rest is
drawn at random and then matched by a seeded search. The rows are **not patient records**.
The interpretations made are listed in ``data/ding2021/README.md``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from jdmbayes.data.published import quartiles

N = 25
CAT_BM_SCHEDULE = (0, 1, 2, 4, 8, 12, 24)
CMAS_SCHEDULE = (0, 4, 12, 24)
LATER_EVERY_WK = 12
# Median weight (kg) for age (y), both sexes, rounded from growth references.
WEIGHT_FOR_AGE = ((1, 9.5), (2, 12.3), (3, 14.3), (4, 16.3), (5, 18.4), (6, 20.7), (7, 23.0),
                  (8, 25.6), (9, 28.6), (10, 32.0), (11, 36.0), (12, 40.5), (13, 45.5),
                  (14, 50.5), (15, 55.0), (16, 58.5), (17, 61.0), (18, 63.0))
RESOLUTION_WK = (4, 4, 4, 8, 8, 8, 12, 12, 12, 12, 24, 24, 24, 24, 36, 48)
IMPROVEMENT_WK = (0.3, 0.4, 0.4, 0.5, 0.5, 0.6, 0.6, 0.7, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.3,
                  1.4, 1.6, 2.0, 2.0, 2.0, 2.4, 2.9, 3.0, 3.4)
MARKED_WK = (1.0, 1.3, 1.4, 1.6, 1.9, 2.0, 2.0, 2.1, 2.3, 2.4, 2.5, 2.5, 2.5, 2.9, 3.0, 3.3,
             3.6, 4.0, 4.0, 4.3, 5.0, 6.0, 7.0, 8.0)
CAT_BM_BASELINE = (1, 2, 2, 3, 3, 3, 3, 4, 5, 6, 7, 7, 7, 7, 8, 9, 10, 10, 10, 10, 12, 13, 14,
                   15)
CAT_BM_FINAL_UNRESOLVED = (1, 1, 1, 1, 2, 2, 3, 4)
CAT_BM_RELAPSE = 3


def _rounds(value: float, target: float, decimals: int) -> bool:
    return abs(value - target) <= 0.5 * 10.0 ** (-decimals) + 1e-9


def _ages_and_course(rng: np.random.Generator):
    """Onset age, start age (0.1 y) and disease course (0.1 mo) matching the letter."""
    while True:
        course = np.empty(N)
        course[[5, 6]] = 14.0
        course[12] = 21.0
        course[[18, 19]] = (36.0, 37.0)
        course[:5] = np.sort(rng.uniform(3, 13.9, 5))
        course[7:12] = np.sort(rng.uniform(14.1, 20.9, 5))
        course[13:18] = np.sort(rng.uniform(21.1, 35.9, 5))
        course[20:] = np.sort(rng.uniform(37.1, 60, 5))
        # stretch the upper tail so the mean course matches the mean age difference (2.6 y)
        need = 31.2 * N - course[:20].sum()
        tail = course[20:] - 37.0
        course[20:] = 37.0 + tail * (need - 37.0 * 5) / tail.sum()
        course = np.round(course, 1)
        if course[20] <= 37.0 or course[24] > 150:
            continue
        onset = 0.8 + rng.gamma(1.33, 2.87, N)
        onset = 4.6 + 3.3 * (onset - onset.mean()) / onset.std(ddof=1)
        if onset.min() < 0.8:
            continue
        onset = np.round(onset, 1)
        order = rng.permutation(N)
        for _ in range(20000):
            start = np.round(onset + course[order] / 12, 1)
            if (_rounds(start.mean(), 7.2, 1) and _rounds(start.std(ddof=1), 4.0, 1)
                    and _rounds(onset.mean(), 4.6, 1) and _rounds(onset.std(ddof=1), 3.3, 1)
                    and start.max() < 17.5):
                return onset, start, course[order]
            i, j = rng.choice(N, 2, replace=False)
            trial = order.copy()
            trial[[i, j]] = trial[[j, i]]
            new = np.round(onset + course[trial] / 12, 1)
            if abs(new.std(ddof=1) - 4.0) <= abs(start.std(ddof=1) - 4.0) or rng.random() < 0.1:
                order = trial


def _weights(rng, age_start, heavy):
    ages, kg = zip(*WEIGHT_FOR_AGE)
    weight = np.interp(age_start, ages, kg) * 1.08 * np.exp(rng.normal(0, 0.08, N))
    weight = np.where(heavy & (weight < 25), rng.uniform(25.2, 27.5, N), weight)
    weight = np.where(~heavy & (weight >= 25), rng.uniform(21.5, 24.8, N), weight)
    return np.round(weight, 1)


def _followup(rng):
    weeks = np.empty(N)
    weeks[0], weeks[12], weeks[24] = 13.0, 30.4, 91.3
    weeks[1:12] = np.sort(rng.uniform(13.5, 30.0, 11))
    weeks[13:24] = np.sort(rng.uniform(31.0, 90.0, 11))
    return np.round(weeks, 1)


def _visits(schedule, followup):
    weeks = [w for w in schedule if w <= followup]
    later = schedule[-1] + LATER_EVERY_WK
    while later <= followup and schedule is CAT_BM_SCHEDULE:
        weeks.append(later)
        later += LATER_EVERY_WK
    if followup - weeks[-1] > 1.0:
        weeks.append(followup)
    return weeks


def _cmas_improvers(rng):
    """Seven integer (baseline, final) CMAS pairs: 18.6 ± 15.0 to 35.7 ± 6.3, paired t p=0.018."""
    def score(b, f):
        p = stats.ttest_rel(f, b).pvalue
        return ((b.std(ddof=1) - 15.0) ** 2 + (f.std(ddof=1) - 6.3) ** 2
                + (1000 * (p - 0.018)) ** 2)

    while True:
        b = rng.multinomial(130 - 7 * 3, np.ones(7) / 7) + 3
        f = rng.multinomial(250 - 7 * 27, np.ones(7) / 7) + 27
        current = score(b, f)
        for _ in range(20000):
            ok = (_rounds(b.std(ddof=1), 15.0, 1) and _rounds(f.std(ddof=1), 6.3, 1)
                  and _rounds(stats.ttest_rel(f, b).pvalue, 0.018, 3))
            if ok and (f > b).all() and b.min() >= 2 and f.max() <= 52:
                return b, f
            vec = b if rng.random() < 0.5 else f
            i, j = rng.choice(7, 2, replace=False)
            step = rng.integers(1, 4)
            vec[i] += step
            vec[j] -= step
            new = score(b, f)
            bad = (vec.min() < 2 or vec.max() > 52 or not (f > b).all())
            if bad or (new > current and rng.random() > 0.02):
                vec[i] -= step
                vec[j] += step
            else:
                current = new


def _ldh_pairs(rng):
    """Twelve integer (baseline, final) LDH pairs matching the published quartiles and test."""
    rises = [(340, 395), (307, 420)]
    while True:
        x = [*rng.integers(215, 300, 2), 306, 358, 365, int(rng.integers(380, 455)), 461, 464,
             *rng.integers(520, 780, 2)]
        y = [*rng.integers(205, 270, 2), 275, 278, int(rng.integers(280, 286)), 289, 293,
             int(rng.integers(300, 380)), 394, int(rng.integers(430, 500))]
        if len(set(x)) < 10 or len(set(y)) < 10:
            continue
        for _ in range(2000):
            pairs = list(zip(x, rng.permutation(y).tolist())) + rises
            d = np.array([f - b for b, f in pairs], float)
            if (d[:10] >= 0).any() or len(set(np.abs(d))) < 12:
                continue
            ranks = stats.rankdata(np.abs(d))
            if ranks[d > 0].sum() != 12:
                continue
            base, final = np.array(pairs).T
            qb, qf = quartiles(base), quartiles(final)
            if (np.allclose(qb, (306.25, 361.5, 463.25)) and np.allclose(qf, (275.75, 291.0,
                                                                              394.75))):
                order = rng.permutation(12)
                return base[order].astype(int), final[order].astype(int)


def _cat_bm_trajectory(weeks, baseline, final, t_improve, t_marked, resolved_hi,
                       relapse_wk=None):
    """CAT-BM at the visits: baseline, down after improvement, 0 from resolution on."""
    values = []
    after_marked = [w for w in weeks if w >= t_marked and (resolved_hi is None or w < resolved_hi)]
    start = max(final, 1, int(round(0.5 * baseline))) if baseline > 1 else baseline
    end = final if resolved_hi is None else 1
    for w in weeks:
        if relapse_wk is not None and w >= relapse_wk:
            value = final
        elif resolved_hi is not None and w >= resolved_hi:
            value = 0
        elif w == 0 or w < t_improve:
            value = baseline
        elif w < t_marked:
            value = max(1, min(baseline - 1, int(round(0.75 * baseline)))) if baseline > 1 \
                else baseline
        else:
            k = after_marked.index(w)
            frac = k / max(len(after_marked) - 1, 1)
            value = int(round(start + (min(end, start) - start) * frac))
            value = max(value, end)
        values.append(value)
    return values


def generate_series(seed: int = 20211028) -> dict[str, pd.DataFrame]:
    """The three tables of the reconstructed series (deterministic for a given seed)."""
    rng = np.random.default_rng(seed)
    ids = [f"REC{i:02d}" for i in range(1, N + 1)]
    onset, start, course = _ages_and_course(rng)
    heavy = np.zeros(N, bool)
    heavy[np.argsort(start)[-14:]] = True
    weight = _weights(rng, start, heavy)
    dose_start = np.where(heavy, 5.0, 2.5)
    dose_max = dose_start.copy()
    escalated = int(rng.choice(np.flatnonzero(heavy)))
    dose_max[escalated] = 7.5
    sex = np.array(["M"] * N, dtype=object)
    sex[escalated] = "F"
    others = rng.choice([i for i in range(N) if i != escalated], 10, replace=False)
    sex[others] = "F"
    drug = np.array(["ruxolitinib"] * N, dtype=object)
    drug[rng.choice([i for i in range(N) if i != escalated], 7, replace=False)] = "tofacitinib"
    refractory = np.array(["gc_dependent"] * N, dtype=object)
    refractory[rng.choice(N, 8, replace=False)] = "ineffective"

    # rash: one patient without rash; 16 resolved (the relapse and the escalated girl among
    # them, she late at 36 weeks), 8 censored
    no_rash = int(rng.choice([i for i in range(N) if i != escalated]))
    rash = [i for i in range(N) if i != no_rash]
    pool = [i for i in rash if i != escalated]
    relapse = int(rng.choice(pool))
    pool.remove(relapse)
    resolved_times = list(RESOLUTION_WK)
    resolved_times.remove(36)
    resolved_times.remove(8)  # the relapse patient resolved at 8 weeks
    late_resolvers = rng.choice(pool, len(resolved_times), replace=False).tolist()
    resolution = {escalated: 36, relapse: 8}
    resolution.update(dict(zip(late_resolvers, rng.permutation(resolved_times).tolist())))
    unresolved = [i for i in rash if i not in resolution]

    # follow-up: long enough for each resolution visit; the relapse patient stopped at 12 wk
    weeks = _followup(rng)
    followup = np.zeros(N)
    followup[relapse] = weeks[0]
    followup[escalated] = weeks[-1]
    rest = list(weeks[1:-1])
    need = sorted((i for i in range(N) if i not in (relapse, escalated)),
                  key=lambda i: -resolution.get(i, 0) + rng.random())
    for i in need:
        fits = [w for w in rest if w >= resolution.get(i, 0) + 1]
        choice = fits[int(rng.integers(len(fits)))] if fits else max(rest)
        rest.remove(choice)
        followup[i] = choice

    # improvement and marked improvement: faster for earlier resolvers, ordered per patient
    speed = sorted(rash, key=lambda i: resolution.get(i, 60) + rng.normal(0, 6))
    while True:
        imp = np.array(IMPROVEMENT_WK)[np.argsort(np.arange(24) + rng.normal(0, 3, 24))]
        marked = np.array(MARKED_WK)[np.argsort(np.arange(24) + rng.normal(0, 3, 24))]
        t_imp = dict(zip(speed, imp))
        t_marked = dict(zip(speed, marked))
        if all(t_imp[i] < t_marked[i] < resolution.get(i, 1e9) - 2 or (
                t_imp[i] < t_marked[i] < resolution.get(i, 1e9) and resolution[i] == 4)
               for i in rash):
            break

    # glucocorticoid discontinuation: 7, the escalated girl among them
    candidates = [i for i in range(N) if i != escalated and followup[i] >= 20]
    gc_stop = [escalated, *rng.choice(candidates, 6, replace=False).tolist()]
    gc_time = {i: float(np.round(rng.uniform(12, min(followup[i], 64) - 1), 1)) for i in gc_stop}

    subjects = pd.DataFrame({
        "subject_id": ids, "sex": sex, "age_onset_y": onset, "age_start_y": start,
        "weight_kg": weight, "drug": drug, "dose_start_mg_bid": dose_start,
        "dose_max_mg_bid": dose_max, "disease_course_mo": course,
        "refractory_type": refractory,
        "rash_at_start": [int(i in rash) for i in range(N)],
        "weak_at_start": 0, "followup_wk": followup,
    })

    events = []
    for i in rash:
        sid, fu = ids[i], followup[i]
        events.append((sid, "rash_improvement", t_imp[i], 0, np.nan))
        events.append((sid, "rash_marked_improvement", t_marked[i], 0, np.nan))
        if i in resolution:
            visits = _visits(CAT_BM_SCHEDULE, fu)
            hi = resolution[i]
            before = float(visits[visits.index(hi) - 1])
            events.append((sid, "rash_resolution", float(hi), 0, before))
            relapsed = i == relapse
            events.append((sid, "rash_relapse", 12.0 if relapsed else fu, 0 if relapsed else 1,
                           np.nan))
        else:
            events.append((sid, "rash_resolution", fu, 1, np.nan))
    for i in range(N):
        if i in gc_time:
            events.append((ids[i], "gc_discontinuation", gc_time[i], 0, np.nan))
        else:
            events.append((ids[i], "gc_discontinuation", followup[i], 1, np.nan))
    events = pd.DataFrame(events, columns=["subject_id", "event", "time_wk", "censored",
                                           "time_lo_wk"])

    measurements = []
    # CAT-BM in the 24 with rash; two visits missed (kept as blank values with a note)
    finals = dict(zip(unresolved, rng.permutation(CAT_BM_FINAL_UNRESOLVED).tolist()))
    finals[relapse] = CAT_BM_RELAPSE
    while True:
        base = dict(zip(rash, rng.permutation(CAT_BM_BASELINE).tolist()))
        if all(base[i] > finals.get(i, 0) for i in rash) and all(
                base[i] >= 2 * finals[i] for i in unresolved):
            break
    missed = rng.choice(rash, 2, replace=False).tolist()
    for i in rash:
        visits = _visits(CAT_BM_SCHEDULE, followup[i])
        values = _cat_bm_trajectory(visits, base[i], finals.get(i, 0), t_imp[i], t_marked[i],
                                    resolution.get(i), 12 if i == relapse else None)
        skip = None
        if i in missed:
            keep = {0, visits[-1], resolution.get(i, -1)}
            if i in resolution:
                keep.add(visits[visits.index(resolution[i]) - 1])
            options = [w for w in visits if w not in keep]
            skip = options[int(rng.integers(len(options)))] if options else None
        for w, v in zip(visits, values):
            if w == skip:
                measurements.append((ids[i], "cat_bm", w, np.nan, "visit missed"))
            else:
                measurements.append((ids[i], "cat_bm", w, v, ""))

    # CMAS in the 10 weak: 7 improvers, 2 unchanged at 47, 1 unevaluable at baseline
    weak = rng.choice([i for i in range(N) if followup[i] >= 24], 10, replace=False).tolist()
    subjects.loc[weak, "weak_at_start"] = 1
    b7, f7 = _cmas_improvers(rng)
    for k, i in enumerate(weak):
        visits = _visits(CMAS_SCHEDULE, followup[i])
        if k < 7:
            b, f = int(b7[k]), int(f7[k])
            shape = 1 - np.exp(-np.array(visits) / 8.0)
            shape = shape / shape[-1]
            values = np.round(b + (f - b) * shape + rng.normal(0, 1.5, len(visits)))
            values = np.clip(values, b, f).astype(int)
            values[0], values[-1] = b, f
            notes = [""] * len(visits)
        elif k < 9:
            values = [47] * len(visits)
            notes = [""] * len(visits)
        else:
            later = np.round(np.linspace(26, 38, len(visits) - 1) + rng.normal(0, 1, len(visits)
                                                                               - 1))
            values = [np.nan, *np.maximum.accumulate(later).astype(int).tolist()]
            notes = ["unevaluable: joint contracture", *[""] * (len(visits) - 1)]
        for w, v, note in zip(visits, values, notes):
            measurements.append((ids[i], "cmas", w, v, note))

    # LDH and CK in the 12 with abnormal muscle enzymes, at baseline and the last visit
    enzymes = sorted(rng.choice(N, 12, replace=False).tolist())
    ldh_b, ldh_f = _ldh_pairs(rng)
    ck_b = np.round(np.exp(rng.normal(np.log(120), 0.7, 12))).astype(int)
    ck_f = np.round(np.minimum(ck_b, np.exp(rng.normal(np.log(85), 0.4, 12)))).astype(int)
    for k, i in enumerate(enzymes):
        for measure, b, f in (("ldh", ldh_b[k], ldh_f[k]), ("ck", ck_b[k], ck_f[k])):
            measurements.append((ids[i], measure, 0.0, float(b), ""))
            measurements.append((ids[i], measure, followup[i], float(f), ""))
    measurements = pd.DataFrame(measurements, columns=["subject_id", "measure", "week", "value",
                                                       "note"])
    measurements["week"] = measurements["week"].astype(float)
    measurements = measurements.sort_values(["subject_id", "measure", "week"], kind="stable")
    events = events.sort_values(["subject_id"], kind="stable")
    return {"subjects": subjects, "events": events.reset_index(drop=True),
            "measurements": measurements.reset_index(drop=True)}

