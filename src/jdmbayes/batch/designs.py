"""Varied simulated designs with known truth: the series users bring, made up (issues 12.4, 18.4).

Each design is drawn from a seed and its number, with the factors spread evenly over the
set (stratified, not at random, so 40 designs cover every level of every factor):

* 15 to 500 patients (log-uniform strata); one to four drugs;
* the dose coded four ways: mg twice daily (``dose_start_mg_bid``, 2.5 / 5), text levels
  (``dose_level``, low / high), three weight-based levels (``dose_mg_kg_daily``), or a
  placebo arm (``arm``, dose 0, a randomised controlled design);
* no covariate, a text one (``sex``), a numeric one (``age_y``) or both;
* regular visits (0, 2, 4, 8, 12, 16, 24, 36, 52, 78, 104 weeks) or irregular ones (gaps of
  2 to 12 weeks), follow-up 24 to 104 weeks;
* one to three ordered milestones from a Weibull, log-normal or log-logistic AFT model with
  a shared frailty, seen only at visits (interval-censored; left-censored before the first
  visit; a middle milestone seen in an interval is latent), right-censored at the end of
  follow-up, or for some patients reported exactly;
* one measure per series at every visit, a positive marker (log-normal) or a bounded score
  (beta-binomial on 0..17, 0..52 or 0..100), with a plateau, linear or curved (spline) time
  shape, correlated patient baseline and change, and a share of values missing.

The truth uses the models' own parameterisation (reference-coded main effects, numeric
covariates per SD of the series, a cubic departure from the line that the spline represents
exactly), so every true value is a parameter row of ``summary.csv``. There are no
drug-by-dose cell deviations in the truth (``sigma_cell`` = 0 sits on its boundary and is
not checked). Nothing here is a patient record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from jdmbayes.models import families
from jdmbayes.models.indexing import level_label

DRUGS = ("baricitinib", "ruxolitinib", "tofacitinib", "upadacitinib")
DOSE_CODINGS = ("mg_bid", "level", "mg_kg_daily", "placebo")
COVARIATE_SETS = ((), ("sex",), ("age_y",), ("sex", "age_y"))
FAMILIES = ("weibull", "lognormal", "loglogistic")
SHAPES = ("plateau", "linear", "spline")
OUTCOME_COUNTS = (3, 2, 3, 1)
MILESTONES = ("rash_improvement", "rash_marked_improvement", "rash_resolution")
REGULAR_VISITS = np.array([0, 2, 4, 8, 12, 16, 24, 36, 52, 78, 104], float)
SCORE_TOPS = (52, 17, 100)
MIN_PATIENTS, MAX_PATIENTS = 15, 500


@dataclass(frozen=True)
class Design:
    """One simulated design: its factors (the truth is drawn from ``seed``)."""

    number: int
    seed: int
    patients: int
    drugs: int
    dose_coding: str
    covariates: tuple[str, ...]
    schedule: str          # "regular" or "irregular"
    followup: tuple[float, float]
    outcomes: int
    family: str
    exact_share: float     # share of patients whose milestones are reported exactly
    measure: str           # "marker" (log-normal) or "score" (beta-binomial)
    score_top: int
    shape: str
    missing_share: float

    @property
    def milestones(self) -> tuple[str, ...]:
        """The design's ordered milestones: the last ``outcomes`` of ``MILESTONES``."""
        return MILESTONES[-self.outcomes:]

    def as_row(self) -> dict:
        row = asdict(self)
        row["covariates"] = "+".join(self.covariates) or "none"
        row["followup"] = f"{self.followup[0]:g}-{self.followup[1]:g}"
        return row


def _strata(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` values in [0, 1), one in each of ``count`` equal strata, shuffled."""
    return rng.permutation((np.arange(count) + rng.uniform(size=count)) / count)


def draw_designs(count: int, seed: int) -> list[Design]:
    """``count`` designs from ``seed``: every factor level used about equally often; the
    design numbered ``k`` has the seed ``[seed, k]`` for its truth and series."""
    rng = np.random.default_rng([seed, 0])
    size = _strata(rng, count)
    order = [rng.permutation(count) for _ in range(10)]
    designs = []
    for k in range(count):
        patients = int(round(MIN_PATIENTS * (MAX_PATIENTS / MIN_PATIENTS) ** size[k]))
        followup_end = float((52, 78, 104)[order[5][k] % 3])
        designs.append(Design(
            number=k + 1, seed=seed, patients=patients,
            drugs=1 + order[0][k] % 4,
            dose_coding=DOSE_CODINGS[order[1][k] % 4],
            covariates=COVARIATE_SETS[order[2][k] % 4],
            schedule=("regular", "irregular")[order[3][k] % 2],
            followup=(24.0, followup_end),
            outcomes=OUTCOME_COUNTS[order[4][k] % 4],
            family=FAMILIES[order[6][k] % 3],
            exact_share=(0.0, 0.1, 0.3)[order[7][k] % 3],
            measure=("marker", "score")[order[8][k] % 2],
            score_top=SCORE_TOPS[order[9][k] % 3],
            shape=SHAPES[(order[8][k] // 2) % 3],
            missing_share=(0.0, 0.05, 0.15)[(order[9][k] // 3) % 3]))
    return designs


@dataclass
class SimulatedSeries:
    """A design's series (tables and ``series.toml``), its two model specs and the truth:
    ``truth[model]`` maps (quantity, outcome, group) of ``summary.csv`` to the true value."""

    design: Design
    subjects: pd.DataFrame
    events: pd.DataFrame
    measurements: pd.DataFrame
    series_toml: str
    specs: dict[str, str]
    truth: dict[str, dict[tuple[str, str, str], float]]

    def write(self, folder: Path) -> dict[str, Path]:
        """The series folder and the specs beside it; model name -> spec path."""
        folder.mkdir(parents=True, exist_ok=True)
        self.subjects.to_csv(folder / "subjects.csv", index=False)
        self.events.to_csv(folder / "events.csv", index=False)
        self.measurements.to_csv(folder / "measurements.csv", index=False)
        (folder / "series.toml").write_text(self.series_toml)
        paths = {}
        for name, text in self.specs.items():
            paths[name] = folder / f"{name}.toml"
            paths[name].write_text(text)
        return paths


def _groups(design: Design, rng: np.random.Generator):
    """Subjects' grouping columns, the spec's grouping and contrasts, and each patient's
    reference-coded main effects as (label, indicator) pairs."""
    n = design.patients
    drugs = sorted(DRUGS[:design.drugs])
    columns: dict[str, np.ndarray] = {}
    if design.dose_coding == "placebo":
        arm = np.array(["placebo", *drugs])[np.arange(n) % (len(drugs) + 1)]
        arm = rng.permutation(arm)
        columns["arm"] = arm
        columns["dose_mg"] = np.where(arm == "placebo", 0.0, 10.0)
        grouping = ["arm"]
        levels = {"arm": ["placebo", *drugs]}          # placebo is the reference
    else:
        dose_column, dose_levels = {
            "mg_bid": ("dose_start_mg_bid", [2.5, 5.0]),
            "level": ("dose_level", ["high", "low"]),
            "mg_kg_daily": ("dose_mg_kg_daily", [0.1, 0.2, 0.3])}[design.dose_coding]
        columns["drug"] = rng.choice(drugs, n)
        columns[dose_column] = rng.choice(np.array(dose_levels, dtype=object), n)
        if design.dose_coding != "level":
            columns[dose_column] = columns[dose_column].astype(float)
        grouping = (["drug"] if len(drugs) > 1 else []) + [dose_column]
        levels = {"drug": drugs, dose_column: dose_levels}
    contrasts, effects = [], []
    for column in grouping:
        present = [v for v in levels[column] if (columns[column] == v).any()]
        reference = present[0]
        for level in present[1:]:
            label = f"{column}[{level_label(column, level)}]"
            effects.append((label, (columns[column] == level).astype(float)))
        if len(present) > 1:
            contrasts.append([column, level_label(column, present[1]),
                              level_label(column, reference)])
    return columns, grouping, contrasts, effects


def _covariates(design: Design, rng: np.random.Generator):
    """Subjects' covariate columns and each covariate's model term (label, values) as the
    model codes it: a numeric one per SD of the series, a text one as a 0/1 indicator."""
    n = design.patients
    columns, terms = {}, []
    if "sex" in design.covariates:
        sex = rng.choice(["F", "M"], n, p=[0.65, 0.35])
        sex[:2] = ["F", "M"]
        columns["sex"] = sex
        terms.append(("sex[M]", (sex == "M").astype(float)))
    if "age_y" in design.covariates:
        age = np.round(rng.uniform(2.0, 17.0, n), 1)
        columns["age_y"] = age
        terms.append(("age_y", (age - age.mean()) / (age.std() or 1.0)))
    return columns, terms


def _visits(design: Design, rng: np.random.Generator) -> list[np.ndarray]:
    """Each patient's visit weeks from 0 to the end of follow-up (the last visit)."""
    visits = []
    for _ in range(design.patients):
        end = rng.uniform(*design.followup)
        if design.schedule == "regular":
            weeks = REGULAR_VISITS[REGULAR_VISITS <= end]
        else:
            gaps = rng.uniform(2.0, 12.0, 40)
            weeks = np.r_[0.0, np.round(np.cumsum(gaps), 1)]
            weeks = weeks[weeks <= end]
        if weeks.size < 2:
            weeks = np.r_[0.0, np.round(end, 1)]
        visits.append(weeks)
    return visits


def _milestone_rows(design: Design, rng, ids, visits, times) -> list[tuple]:
    rows = []
    outcomes = design.milestones
    for i, sid in enumerate(ids):
        seen, end = visits[i], float(visits[i][-1])
        exact = rng.random() < design.exact_share
        censored = False
        for k, event in enumerate(outcomes):
            t = times[i, k]
            if censored or t > end:
                rows.append((sid, event, end, 1, np.nan))
                censored = True
            elif exact:
                rows.append((sid, event, max(round(float(t), 2), 0.01), 0, np.nan))
            else:
                hi = float(seen[seen >= t][0])
                lo = float(seen[seen < t].max())
                rows.append((sid, event, hi, 0, lo))
    return rows


def _spline_knots(final_week: float) -> list[float]:
    return [round(final_week / 3), round(2 * final_week / 3)]


def simulate_series(design: Design) -> SimulatedSeries:
    """The design's series, specs and truth (deterministic in ``design.seed`` and number)."""
    rng = np.random.default_rng([design.seed, design.number])
    n = design.patients
    ids = [f"D{design.number:02d}P{i + 1:03d}" for i in range(n)]
    groups, grouping, contrasts, effects = _groups(design, rng)
    covariates, terms = _covariates(design, rng)
    visits = _visits(design, rng)

    # milestones: log gap = alpha_k + effects + frailty + dispersion_k * standard error
    outcomes = design.milestones
    k = len(outcomes)
    alpha = np.log(rng.uniform([4, 4, 8], [10, 12, 20]))[-k:]
    dispersion = rng.uniform(0.3, 0.8, k)
    sigma_patient = rng.uniform(0.2, 0.7) if k > 1 else 0.0
    beta = {label: rng.uniform(-0.5, 0.5) for label, _ in effects}
    beta_cov = {label: rng.uniform(-0.3, 0.3) for label, _ in terms}
    linear = sum((beta[label] * x for label, x in effects), np.zeros(n))
    linear = linear + sum((beta_cov[label] * x for label, x in terms), np.zeros(n))
    eta = alpha[None, :] + (linear + sigma_patient * rng.standard_normal(n))[:, None]
    gaps = np.exp(eta + dispersion[None, :]
                  * families.np_standard_error(design.family, rng, eta.shape))
    events = pd.DataFrame(_milestone_rows(design, rng, ids, visits, np.cumsum(gaps, axis=1)),
                          columns=["subject_id", "event", "time_wk", "censored",
                                   "time_lo_wk"])
    milestone_truth = {("intercept", o, ""): float(a) for o, a in zip(outcomes, alpha)}
    milestone_truth.update({("dispersion", o, ""): float(s)
                            for o, s in zip(outcomes, dispersion)})
    if k > 1:
        milestone_truth[("sigma_patient", "", "")] = float(sigma_patient)
    milestone_truth.update({("beta_group", "", label): float(v) for label, v in beta.items()})
    milestone_truth.update({("beta_covariate", "", label): float(v)
                            for label, v in beta_cov.items()})

    measurements, measure_truth, measure_spec = _measure(design, rng, ids, visits, effects,
                                                         terms)
    subjects = pd.DataFrame({"subject_id": ids,
                             "followup_wk": [float(v[-1]) for v in visits],
                             **groups, **covariates})
    randomised = design.dose_coding == "placebo"
    series_toml = "\n".join([
        "# A simulated design of jdmbayes.batch.designs (not patient records).",
        "[series]",
        f'name = "design-{design.number:02d}"',
        'time_unit = "weeks"',
        f'description = "Simulated design {design.number} of the varied-design validation '
        f'({n} patients; not patient records)"',
        f"randomised = {'true' if randomised else 'false'}",
        *(['control = "placebo"'] if randomised else []),
        f'provenance = "jdmbayes.batch.designs, seed {design.seed}, design {design.number}"',
        ""])
    common = [f"grouping = {_toml_list(grouping)}",
              f"covariates = {_toml_list(list(design.covariates))}",
              f"contrasts = [{', '.join(_toml_list(c) for c in contrasts)}]",
              'priors = "default"']
    milestone_spec = "\n".join([
        "[model]", 'name = "milestones"', 'kind = "milestones"',
        f'description = "Simulated milestones of design {design.number}"',
        f"outcomes = {_toml_list(list(outcomes))}", f'family = "{design.family}"',
        *common, ""])
    return SimulatedSeries(design, subjects, events, measurements, series_toml,
                           {"milestones": milestone_spec,
                            "trajectory": "\n".join([*measure_spec, *common, ""])},
                           {"milestones": milestone_truth, "trajectory": measure_truth})


def _measure(design: Design, rng, ids, visits, effects, terms):
    """Measurement rows, truth and spec lines of the design's measure."""
    n = design.patients
    final_week = float(design.followup[1] / 2)
    if design.measure == "marker":
        truth = {"intercept": np.log(rng.uniform(50, 300)), "sigma_intercept":
                 rng.uniform(0.3, 0.6), "change": rng.uniform(-0.4, 0.4),
                 "sigma_change": rng.uniform(0.15, 0.4), "noise": rng.uniform(0.12, 0.3)}
        scale = 0.3
    else:
        truth = {"intercept": rng.uniform(-0.8, 0.8), "sigma_intercept": rng.uniform(0.4, 0.9),
                 "change": rng.uniform(0.3, 1.0), "sigma_change": rng.uniform(0.2, 0.5),
                 "noise": rng.uniform(10.0, 40.0)}
        scale = 0.4
    truth["rho_baseline_change"] = rng.uniform(-0.3, 0.5)
    beta = {label: rng.uniform(-scale, scale) for label, _ in effects}
    beta_cov = {label: rng.uniform(-scale / 2, scale / 2) for label, _ in terms}
    if design.shape == "plateau":
        truth["tau_weeks"] = rng.uniform(0.15, 0.4) * final_week
    bend = rng.uniform(-0.3, 0.3) if design.shape == "spline" else 0.0
    u = rng.standard_normal(n)
    rho = truth["rho_baseline_change"]
    w = rho * u + np.sqrt(1 - rho**2) * rng.standard_normal(n)
    baseline = truth["intercept"] + truth["sigma_intercept"] * u
    change = (truth["change"] + sum((beta[label] * x for label, x in effects), np.zeros(n))
              + sum((beta_cov[label] * x for label, x in terms), np.zeros(n))
              + truth["sigma_change"] * w)
    rows = []
    for i, sid in enumerate(ids):
        week = visits[i]
        if design.shape == "plateau":
            h = 1 - np.exp(-week / truth["tau_weeks"])
        else:
            h = week / final_week
        mu = baseline[i] + change[i] * h + bend * week * (week - final_week) / final_week**2
        if design.measure == "marker":
            value = np.round(np.exp(mu + truth["noise"] * rng.standard_normal(week.size)), 3)
            value = np.maximum(value, 0.001)
        else:
            p = 1 / (1 + np.exp(-mu))
            phi = truth["noise"]
            value = rng.binomial(design.score_top, rng.beta(p * phi, (1 - p) * phi)).astype(float)
        missing = rng.random(week.size) < design.missing_share
        for j in range(week.size):
            rows.append((sid, design.measure, float(week[j]),
                         np.nan if missing[j] else float(value[j]),
                         "not done" if missing[j] else ""))
    measurements = pd.DataFrame(rows, columns=["subject_id", "measure", "week", "value",
                                               "note"])
    # a longitudinal model's rows all carry the measure as their outcome
    table = {("beta_group", design.measure, label): float(v) for label, v in beta.items()}
    table.update({("beta_covariate", design.measure, label): float(v)
                  for label, v in beta_cov.items()})
    table.update({(name, design.measure, ""): float(v) for name, v in truth.items()})
    lines = ["[model]", 'name = "trajectory"', 'kind = "longitudinal"',
             f'description = "Simulated {design.measure} of design {design.number}"',
             f'measure = "{design.measure}"',
             f'likelihood = "{"lognormal" if design.measure == "marker" else "beta_binomial"}"',
             *([f"upper = {design.score_top}"] if design.measure == "score" else []),
             f'shape = "{design.shape}"', f"final_week = {final_week:g}",
             *([f"knots = {_spline_knots(final_week)}"] if design.shape == "spline" else [])]
    return measurements, table, lines


def _toml_list(values) -> str:
    return "[" + ", ".join(f'"{v}"' for v in values) + "]"
