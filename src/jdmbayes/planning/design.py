"""A planned trial as a TOML file (``designs/*.toml``): endpoint, arms, visits, sizes, rule.

A design names what the next study measures and how it decides, not what is true: the truth
is the *design prior* (:mod:`jdmbayes.planning.design_prior`), the analysis of each simulated
trial uses the named *analysis prior* set. Every problem is reported with the file and key
(exit 2, nothing run).

Endpoints:

``time_to_event``
    two arms (treatment first, control second), each a cell of a fitted milestone model
    (its grouping columns' levels). The trial observes one milestone (``outcome``) at the
    visits (interval-censored; right-censored after the last visit attended); patients drop
    out at a constant rate. The effect is the time ratio treatment/control.
``event_by_week``
    one arm, a cell of a fitted milestone model, against a fixed threshold: the effect is
    the probability that a new patient of the arm reaches ``outcome`` by ``endpoint_week``
    (marginal over the frailty); the robust component is stated on its log-odds.
``change``
    one arm, a cell of a fitted longitudinal model of a bounded score (beta-binomial,
    plateau shape), against a fixed threshold: the effect is the population mean change of
    the score by ``endpoint_week``. The trial measures the score at baseline and at the
    visits until follow-up or dropout.
``normal``
    two arms, a normal outcome with known SD, effect the difference in means; analysed by
    the conjugate normal update. The textbook case with a closed-form assurance (O'Hagan &
    Stevens 2001): the check of the simulation engine.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import special

from jdmbayes.errors import InputError, Problem

ROOT = Path(__file__).resolve().parents[3]
DESIGNS_DIR = ROOT / "designs"
ENDPOINTS = ("time_to_event", "event_by_week", "change", "normal")
COMPARISONS = ("<", ">")
# the effect's natural null and the scale its design-prior component is stated on
# (a single arm's null is the threshold of its success rule)
NULL_EFFECT = {"time_to_event": 1.0, "normal": 0.0}
EFFECT_NAME = {"time_to_event": "time ratio", "event_by_week": "probability of the event",
               "change": "mean change", "normal": "difference in means"}
# the keys a design may have: every endpoint's, then those of a design simulated from a
# fitted model or of the normal textbook case
COMMON_KEYS = {"description", "endpoint", "arms", "n_per_arm", "success", "fixed_effects",
               "robust_weight", "robust_mean", "robust_sd", "interval_prob", "interval_kind"}
MODEL_KEYS = {"model", "outcome", "family", "measure", "upper", "visits_wk", "followup_wk",
              "endpoint_week", "dropout_per_year", "analysis_priors"}
NORMAL_KEYS = {"sd", "design_prior", "analysis_prior"}
SUCCESS_KEYS = {"comparison", "value", "probability"}
# plan simulates and analyses every patient of every trial: a larger arm took memory until
# the system stopped the process (10^8), and 2,000 per arm already takes about 14 s a trial
# for a score's fast analysis
MAX_N_PER_ARM = 10_000


@dataclass(frozen=True)
class Arm:
    """One arm: a label and, for a model endpoint, the grouping levels it is a cell of."""

    label: str
    levels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SuccessRule:
    """Success when posterior P(effect <comparison> value) > probability."""

    comparison: str
    value: float
    probability: float

    def words(self, effect: str) -> str:
        return f"posterior P({effect} {self.comparison} {self.value:g}) > {self.probability:g}"


@dataclass(frozen=True)
class TrialDesign:
    name: str
    path: Path
    raw: dict
    description: str
    endpoint: str
    arms: tuple[Arm, ...]
    n_per_arm: tuple[int, ...]
    success: SuccessRule
    # true effects at which the operating characteristics are computed (the null included)
    fixed_effects: tuple[float, ...]
    # robustified design prior: with this weight the effect comes from a vague component
    # N(robust_mean, robust_sd) on the effect's analysis scale (log time ratio, difference)
    robust_weight: float = 0.0
    robust_mean: float = 0.0
    robust_sd: float = 1.0
    interval_prob: float = 0.95
    interval_kind: str = "eti"
    # time_to_event
    model: str = ""
    outcome: str = ""
    family: str = "weibull"
    visits_wk: tuple[float, ...] = ()
    followup_wk: float = 0.0
    dropout_per_year: float = 0.0
    analysis_priors: str = "default"
    # change
    measure: str = ""
    upper: float = 0.0
    endpoint_week: float = 0.0
    # normal
    sd: float = 1.0
    design_prior: dict = field(default_factory=dict)    # {mean, sd} when no run is given
    analysis_prior: dict = field(default_factory=dict)  # {mean, sd}; sd = inf: flat

    @property
    def null_effect(self) -> float:
        return NULL_EFFECT.get(self.endpoint, self.success.value)

    @property
    def effect_name(self) -> str:
        return EFFECT_NAME[self.endpoint]

    @property
    def analysis_scale(self) -> str:
        """The scale the effect is drawn and analysed on: log (a time ratio), logit (a
        probability) or identity."""
        return {"time_to_event": "log", "event_by_week": "logit"}.get(self.endpoint,
                                                                       "identity")

    def to_analysis_scale(self, value):
        """An effect as the design states it (a time ratio, a probability, a difference)
        on the scale it is drawn and analysed on."""
        value = np.asarray(value, float)
        return {"log": np.log, "logit": special.logit}.get(self.analysis_scale,
                                                           lambda v: v)(value)

    def from_analysis_scale(self, value):
        value = np.asarray(value, float)
        return {"log": np.exp, "logit": special.expit}.get(self.analysis_scale,
                                                           lambda v: v)(value)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(
        value)


class _Reader:
    """Reads keys of one table, recording a problem per bad key."""

    def __init__(self, path: Path, table: dict, section: str):
        self.path, self.table, self.section = path, table, section
        self.problems: list[Problem] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(Problem(str(self.path), "design_key",
                                     f"[{self.section}] {key}: {message}", column=key))

    def get(self, key: str, check, rule: str, default=None, required: bool = False):
        if key not in self.table:
            if required:
                self.fail(key, f"missing; it must be {rule}")
            return default
        value = self.table[key]
        if not check(value):
            self.fail(key, f"{value!r} is not valid; it must be {rule}")
            return default
        return value


def _design_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        if candidate.is_file():
            return candidate.resolve()
        raise InputError([Problem(str(candidate), "unknown_design",
                                  f"no design file {name_or_path}")])
    path = DESIGNS_DIR / f"{name_or_path}.toml"
    if path.is_file():
        return path
    names = sorted(p.stem for p in DESIGNS_DIR.glob("*.toml"))
    raise InputError([Problem(str(path), "unknown_design", f"no design '{name_or_path}' in "
                              f"{DESIGNS_DIR}; valid: {', '.join(names)}; or give the path to "
                              "a design file (.toml)")])


def load_design(name_or_path: str) -> TrialDesign:
    """The design ``name_or_path`` names (a ``.toml`` path or a bundled design's name)."""
    path = _design_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise InputError([Problem(str(path), "toml_syntax", f"not valid TOML: {err}")]) \
            from None
    table = raw.get("design")
    if not isinstance(table, dict):
        raise InputError([Problem(str(path), "design_key", "no [design] table")])
    r = _Reader(path, table, "design")
    positive = lambda v: _number(v) and v > 0  # noqa: E731
    endpoint = r.get("endpoint", lambda v: v in ENDPOINTS, f"one of {', '.join(ENDPOINTS)}",
                     required=True)
    sizes = r.get("n_per_arm", lambda v: isinstance(v, list) and v and all(
        isinstance(x, int) and not isinstance(x, bool) and 2 <= x <= MAX_N_PER_ARM for x in v),
        f"a list of whole numbers from 2 to {MAX_N_PER_ARM:,}", required=True)
    fixed = r.get("fixed_effects", lambda v: isinstance(v, list) and all(
        _number(x) for x in v), "a list of numbers (true effects)", default=[])
    weight = r.get("robust_weight", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)",
                   default=0.0)
    robust_mean = r.get("robust_mean", _number, "a number", default=0.0)
    robust_sd = r.get("robust_sd", positive, "a number > 0", default=1.0)
    interval_prob = r.get("interval_prob", lambda v: _number(v) and 0 < v < 1,
                          "a probability in (0, 1)", default=0.95)
    interval_kind = r.get("interval_kind", lambda v: v in ("eti",), "'eti'", default="eti")
    rule_table = r.get("success", lambda v: isinstance(v, dict), "a table {comparison, value, "
                       "probability}", required=True) or {}
    s = _Reader(path, rule_table, "design.success")
    success = SuccessRule(
        s.get("comparison", lambda v: v in COMPARISONS, "'<' or '>'", required=True),
        s.get("value", _number, "a number", required=True),
        s.get("probability", lambda v: _number(v) and 0.5 <= v < 1, "a probability in "
              "[0.5, 1)", required=True))
    arm_count = 1 if endpoint in ("change", "event_by_week") else 2
    arms_raw = r.get("arms", lambda v: isinstance(v, list) and len(v) == arm_count and all(
        isinstance(a, dict) and isinstance(a.get("label"), str) for a in v),
        "a list of two tables with a 'label' (treatment first, then control)" if arm_count == 2
        else "a list of one table with a 'label' (the single arm)", required=True)
    arms = tuple(Arm(a["label"], tuple((k, str(v)) for k, v in a.items() if k != "label"))
                 for a in arms_raw or [])
    if len(arms) == 2 and arms[0].label == arms[1].label:
        r.fail("arms", f"both arms are labelled '{arms[0].label}': give each its own label")
    if len(arms) == 2 and arms[0].levels and dict(arms[0].levels) == dict(arms[1].levels):
        r.fail("arms", f"arms '{arms[0].label}' and '{arms[1].label}' are the same cell "
               f"({', '.join(f'{k} = {v}' for k, v in arms[0].levels)}): a trial of a cell "
               "against itself")
    valid = COMMON_KEYS | (NORMAL_KEYS if endpoint == "normal" else MODEL_KEYS)
    for key in sorted(set(table) - valid):
        r.fail(key, f"unknown key; valid: {', '.join(sorted(valid))}")
    for key in sorted(set(rule_table) - SUCCESS_KEYS):
        s.fail(key, f"unknown key; valid: {', '.join(sorted(SUCCESS_KEYS))}")
    problems = r.problems + s.problems
    common = dict(name=path.stem, path=path, raw=raw,
                  description=str(table.get("description", "")), endpoint=endpoint,
                  arms=arms, n_per_arm=tuple(sizes or ()), success=success,
                  fixed_effects=tuple(float(x) for x in fixed),
                  robust_weight=float(weight), robust_mean=float(robust_mean),
                  robust_sd=float(robust_sd), interval_prob=float(interval_prob),
                  interval_kind=interval_kind)
    if endpoint in ("time_to_event", "event_by_week", "change"):
        design, more = _time_to_event(path, table, common)
    elif endpoint == "normal":
        design, more = _normal(path, table, common)
    else:
        design, more = None, []
    problems += more
    for value in (success.value, *design.fixed_effects) if design is not None else ():
        rule = _effect_range_problem(design, value) if _number(value) else None
        if rule:
            problems.append(Problem(str(path), "design_key", f"{rule}, got {value!r}",
                                    column="fixed_effects"))
    if problems:
        raise InputError(problems)
    return design


def _effect_range_problem(design: TrialDesign, value: float) -> str | None:
    """What an effect (a fixed effect, or the success rule's value) must be on the design's
    scale, where ``value`` is not: a time ratio > 0, a probability in (0, 1), a mean change
    of a 0..upper score within +-upper (beyond it a scenario would be simulated at the
    nearest attainable change under its label)."""
    if design.analysis_scale == "log" and value <= 0:
        return "a time ratio must be > 0"
    if design.analysis_scale == "logit" and not 0 < value < 1:
        return "a probability must be between 0 and 1"
    if design.endpoint == "change" and design.upper > 0 and \
            not -design.upper < value < design.upper:
        return (f"a mean change of a 0-{design.upper:g} score must be between "
                f"{-design.upper:g} and {design.upper:g}")
    return None


def _time_to_event(path: Path, table: dict, common: dict):
    """A design simulated from a fitted model: time to event or change of a score."""
    r = _Reader(path, table, "design")
    visits = r.get("visits_wk", lambda v: isinstance(v, list) and v and all(
        _number(x) and x > 0 for x in v) and sorted(v) == v and len(set(v)) == len(v),
        "an increasing list of weeks > 0 (the assessment visits)", required=True)
    followup = r.get("followup_wk", lambda v: _number(v) and v > 0, "a number of weeks > 0",
                     required=True)
    week = table.get("endpoint_week")
    if common["endpoint"] == "change" and _number(week) and visits and week not in visits:
        r.fail("endpoint_week", f"week {week:g} is not one of the visits; the change is "
               "measured at a visit")
    if visits and followup and visits[-1] > followup:
        r.fail("visits_wk", f"the last visit ({visits[-1]:g}) is after follow-up "
               f"({followup:g} weeks)")
    design = TrialDesign(
        **common, model=r.get("model", lambda v: isinstance(v, str) and v, "a model name",
                              required=True) or "",
        outcome=r.get("outcome", lambda v: isinstance(v, str) and v, "an outcome name",
                      required=common["endpoint"] != "change") or "",
        measure=r.get("measure", lambda v: isinstance(v, str) and v, "a measure name",
                      required=common["endpoint"] == "change") or "",
        upper=float(r.get("upper", lambda v: isinstance(v, int) and not isinstance(v, bool)
                          and v > 0, "the score's maximum (a whole number > 0)",
                          required=common["endpoint"] == "change") or 0),
        endpoint_week=float(r.get("endpoint_week", lambda v: _number(v) and v > 0,
                                  "a week > 0", required=common["endpoint"] != "time_to_event")
                            or 0),
        family=r.get("family", lambda v: v in ("weibull", "lognormal", "loglogistic"),
                     "weibull, lognormal or loglogistic", default="weibull"),
        visits_wk=tuple(float(v) for v in visits or ()), followup_wk=float(followup or 0),
        dropout_per_year=float(r.get("dropout_per_year", lambda v: _number(v) and v >= 0,
                                     "a rate >= 0 (dropouts per patient-year)", default=0.0)),
        analysis_priors=r.get("analysis_priors", lambda v: isinstance(v, str) and v,
                              "a prior set name", default="default"))
    for arm in design.arms:
        if not arm.levels:
            r.fail("arms", f"arm '{arm.label}' names no grouping level of model "
                   f"'{design.model}' (for example drug = \"ruxolitinib\")")
    return design, r.problems


def _normal(path: Path, table: dict, common: dict):
    r = _Reader(path, table, "design")
    sd = r.get("sd", lambda v: _number(v) and v > 0, "a number > 0 (the outcome's SD)",
               required=True)

    def prior(key: str, flat_ok: bool):
        value = r.get(key, lambda v: isinstance(v, dict) and _number(v.get("mean")) and (
            (_number(v.get("sd")) and v["sd"] >= 0) or (flat_ok and v.get("sd") == "inf")),
            "a table {mean, sd}" + (" (sd = \"inf\": flat)" if flat_ok else ""),
            required=key == "design_prior")
        if value is None:
            return {}
        return {"mean": float(value["mean"]), "sd": float(value["sd"])}

    design = TrialDesign(**common, sd=float(sd or 1.0), design_prior=prior("design_prior", False),
                         analysis_prior=prior("analysis_prior", True) or
                         {"mean": 0.0, "sd": math.inf})
    return design, r.problems
