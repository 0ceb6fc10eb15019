"""Model specs and prior sets: plain TOML in ``models/`` and ``models/priors/``.

A prior set is a TOML file with one table per parameter, ``[<section>.<parameter>]`` holding
``dist`` and ``kwargs`` exactly as pymc-extras' ``Prior.to_dict`` writes them. Sections are
the model kind (``milestones``, ``longitudinal_logit``, ``longitudinal_identity``,
``longitudinal_log``); a table named after a longitudinal model's measure (``[ldh.intercept]``)
overrides its kind's, and one named after the model overrides both. A longitudinal kind's own
tables are generic, stated in units of the measure's reference scale and of the follow-up
(:mod:`jdmbayes.models.measure_scale` turns them into numbers); a measure's tables are on its
link scale as written.
A ``[prior_set]`` table may name a set it ``extends``: its tables are taken first and this
file's tables replace them one parameter at a time.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import math
import tomllib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import pymc as pm
from pymc_extras.prior import Prior

from jdmbayes.errors import InputError, Problem

ROOT = Path(__file__).resolve().parents[3]
MODELS_DIR = ROOT / "models"
PRIORS_DIR = MODELS_DIR / "priors"

FAMILIES = ("weibull", "lognormal", "loglogistic")
# the shared patient frailty: sampled (the conditional form), centred or non-centred, chosen
# from the data ("auto", the default of milestones: models.milestones.frailty_form) or by
# spec; hierarchically centred by spec, or by the retry ladder where a centred fit failed on
# population effects alone (each patient's location carries the group effects and the mean
# intercept: models.milestones.patient_locations and retry_frailty_spec; the same model,
# chosen for many patients with several milestones each: benchmarks/RESULTS.md, "2,500
# patients");
# or integrated out of the likelihood (adaptive Gauss-Hermite; opt-in: it passes
# simulation-based calibration on the bundled design, validation/sbc-integrated/, but has
# not been run on the varied designs and costs more per gradient).
# Recurrent episodes default to non-centred.
FRAILTY_FORMS = ("auto", "non_centred", "centred", "integrated", "hierarchically_centred")
PATIENT_EFFECT_FORMS = ("auto", "centred", "centred_baseline", "centred_level",
                        "non_centred", "integrated")
# time shapes of a longitudinal change (models.longitudinal)
SHAPES = ("plateau", "linear", "spline")
LIKELIHOODS = {"beta_binomial": "logit", "censored_normal": "identity", "lognormal": "log"}
# the parameters each section's models read, with what they mean (shown in error messages)
PARAMETERS = {
    "milestones": {
        "intercept": "log time (weeks) of each gap for the reference group",
        "beta_group": "log time ratio of a group level against the reference level",
        "sigma_cell": "spread of drug-by-dose cell deviations (log time)",
        "sigma_patient": "spread of the patient frailty shared by the milestones (log time)",
        "dispersion": "scale of the log-time error of each gap (Weibull shape = 1/dispersion)",
        "beta_covariate": "log time ratio per unit of a standardised covariate",
    },
    # recurrent episodes: the milestone tables are read first (one intercept and dispersion
    # for the gap of every episode), then these and [episodes.*] overrides
    "episodes": {
        "intercept": "log gap time (weeks from an episode's start to its event) for the "
                     "reference group",
        "beta_group": "log time ratio of a group level against the reference level",
        "sigma_cell": "spread of drug-by-dose cell deviations (log time)",
        "sigma_patient": "spread of the patient frailty shared by the episodes (log time)",
        "dispersion": "scale of the log-time error of each gap (Weibull shape = 1/dispersion)",
        "beta_covariate": "log time ratio per unit of a standardised covariate",
        "beta_episode": "log time ratio of episode number 2, 3, ... against the first",
    },
    **{f"longitudinal_{link}": {
        "intercept": f"baseline on the {link} scale",
        "sigma_intercept": "spread of patient baselines",
        "change": f"change from baseline at the plateau for the reference group ({link} scale)",
        "beta_group": "difference in change of a group level against the reference level",
        "sigma_cell": "spread of drug-by-dose cell deviations of the change",
        "sigma_change": "spread of patient changes",
        "tau_weeks": "time constant of the approach to the plateau (weeks)",
        "noise": "concentration (beta-binomial) or residual SD (normal, log-normal)",
        "beta_covariate": "change per unit of a standardised covariate",
        "spline_coef": "a smooth trend's departure from a straight line on the link scale "
                       "(spec shape = \"spline\"), shared by all patients and groups",
        "lkj_corr": "(rho + 1) / 2 for the correlation rho of patient baseline and change: "
                    "Beta(eta, eta) is the LKJ(eta) prior of a 2 x 2 correlation",
    } for link in ("logit", "identity", "log")},
}
SPEC_KEYS = {
    "common": {"name", "kind", "description", "population", "grouping", "covariates",
               "contrasts", "priors", "replicates", "cell_deviations", "covariate_reference"},
    "milestones": {"outcomes", "family", "frailty"},
    "episodes": {"event", "family", "frailty", "episode_effect", "episode_effect_cap"},
    "longitudinal": {"measure", "likelihood", "upper", "threshold", "final_week",
                     "improvement", "random_change", "summary_weeks", "shape", "knots",
                     "correlation", "patient_effects", "unit", "plausible_range"},
}


@dataclass(frozen=True)
class ModelSpec:
    """A model as named in ``models/<name>.toml``."""

    name: str
    kind: str
    path: Path
    raw: dict
    grouping: tuple[str, ...] = ()
    covariates: tuple[str, ...] = ()
    covariate_reference: tuple[tuple[str, object], ...] = ()   # text covariate -> reference level
    contrasts: tuple[tuple[str, object, object], ...] = ()
    population: tuple[tuple[str, object], ...] = ()
    prior_set: str = "default"
    replicates: int = 40
    outcomes: tuple[str, ...] = ()
    family: str = "weibull"
    frailty: str = "non_centred"
    cell_deviations: str = "non_centred"
    measure: str = ""
    likelihood: str = ""
    upper: float | None = None
    threshold: float = 0.0
    final_week: float = 24.0
    # longitudinal: the weeks changes and contrasts are reported at (empty: derived from the
    # series' visit schedule, :func:`jdmbayes.estimands.longitudinal.summary_weeks`)
    summary_weeks: tuple[float, ...] = ()
    # longitudinal: the time shape of the change (plateau, linear or spline, with interior
    # knots in weeks) and whether patient baseline and change are correlated (LKJ prior)
    shape: str = "plateau"
    knots: tuple[float, ...] = ()
    correlation: bool = True
    # longitudinal: patient baselines and changes sampled centred or non-centred, integrated
    # out of the likelihood (exact for log-normal measures, else by quadrature), or chosen
    # from the data ("auto": :func:`jdmbayes.models.longitudinal.patient_effects_form`)
    patient_effects: str = "auto"
    improvement: str = "increase"
    random_change: bool = True
    # longitudinal: the measure's unit and the range of values plausible for a patient (a
    # 90% range, log-normal measures), from which generic priors are scaled
    unit: str = ""
    plausible_range: tuple[float, ...] = ()
    event: str = ""                 # episodes: the recurrent event's name in events.csv
    episode_effect: bool = False    # episodes: a time ratio per episode number (2, 3, ...)
    episode_effect_cap: int = 0     # episodes: numbers from this one share its effect (0: none)

    def other_frailty(self) -> ModelSpec | None:
        """This spec with a sampled frailty in its other parameterisation (None if the
        frailty is integrated out or there is none: a single outcome)."""
        other = {"centred": "non_centred", "non_centred": "centred",
                 "hierarchically_centred": "non_centred"}.get(self.frailty)
        if other is None or (self.kind == "milestones" and len(self.outcomes) < 2):
            return None
        return replace(self, frailty=other)

    @property
    def prior_section(self) -> str:
        if self.kind in ("milestones", "episodes"):
            return self.kind
        return f"longitudinal_{LIKELIHOODS[self.likelihood]}"


@dataclass(frozen=True)
class PriorSet:
    """Named priors for one model: parameter -> pymc-extras ``Prior``, plus their source."""

    name: str
    path: Path
    priors: dict[str, Prior] = field(default_factory=dict)
    description: str = ""
    # longitudinal: the parameters whose tables are the kind's generic ones (in reference
    # units until :func:`jdmbayes.models.measure_scale.scale_priors` scales them), and what
    # they were scaled by once they are
    generic: tuple[str, ...] = ()
    scaling: dict = field(default_factory=dict)

    def as_dicts(self) -> dict[str, dict]:
        return {k: _plain(p.to_dict()) for k, p in self.priors.items()}

    def family_signature(self) -> str:
        """What forces a rebuild: distributions and their argument names, not their values."""
        shape = {k: (p.distribution, sorted(p.parameters)) for k, p in self.priors.items()}
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def _load_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as err:
        raise InputError([Problem(str(path), "toml_syntax", f"not valid TOML: {err}")]) from None
    except UnicodeDecodeError:
        raise InputError([Problem(str(path), "not_utf8", "file is not UTF-8")]) from None


def search_folders(*folders) -> list[Path]:
    """Distinct existing folders, in order (where a name is looked up)."""
    out: list[Path] = []
    for folder in folders:
        if folder is None:
            continue
        folder = Path(folder).resolve()
        if folder.is_dir() and folder not in out:
            out.append(folder)
    return out


def model_folders(models_dir: str | Path | None = None) -> list[Path]:
    """Where ``--model NAME`` looks, first match wins: the user's folder (``models_dir``, else
    the current folder), then the bundled ``models/``."""
    if models_dir is None:
        try:
            models_dir = Path.cwd()
        except FileNotFoundError:   # the current folder was removed: search the bundled only
            models_dir = None
    return search_folders(models_dir, MODELS_DIR)


def is_model_spec(path: Path) -> bool:
    """Whether a TOML file is a model spec (has a [model] table): a user's folder, or the
    current one, may hold other TOML files (pyproject.toml)."""
    try:
        with open(path, "rb") as handle:
            return isinstance(tomllib.load(handle).get("model"), dict)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def resolve(name_or_path: str, folders: Path | list[Path], what: str) -> Path:
    """The file ``name_or_path`` names: a path to a ``.toml`` file, or ``<name>.toml`` in the
    first of ``folders`` that has it (for a model, one with a [model] table)."""
    folders = [folders] if isinstance(folders, Path) else list(folders)
    usable = is_model_spec if what == "model" else Path.is_file
    rule = f"unknown_{what.replace(' ', '_')}"
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        if candidate.is_file():
            return candidate.resolve()
        raise InputError([Problem(str(candidate), rule, f"no {what} file {name_or_path}")])
    for folder in folders:
        path = folder / f"{name_or_path}.toml"
        if path.is_file() and usable(path):
            return path
    names = sorted({p.stem for folder in folders for p in folder.glob("*.toml") if usable(p)})
    where = " or ".join(str(folder) for folder in folders)
    raise InputError([Problem(str(folders[0] / f"{name_or_path}.toml"), rule,
                              f"no {what} '{name_or_path}' in {where}; valid: "
                              f"{', '.join(names)}; or give the path to a {what} file "
                              "(.toml)")])


def _positive_numbers(value) -> bool:
    """Whether a spec value is a list of numbers > 0 (weeks)."""
    return isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) and v > 0 for v in value)


class _TypedKeys:
    """Values of a spec's ``[model]`` table of the type their key needs; each one that is
    not is a problem (file, key, rule) and its default is used, so that every problem of
    the spec is listed at once and nothing fails later on a wrong type."""

    def __init__(self, path: Path, table: dict, problems: list[Problem]):
        self.path, self.table, self.problems = path, table, problems

    def _refuse(self, key: str, needs: str, value, default):
        self.problems.append(Problem(str(self.path), key, f"{key} must be {needs}, got "
                                     f"{value!r}", column=key))
        return default

    def number(self, key: str, default, *, above: float | None = None,
               at_least: float | None = None, whole: bool = False):
        value = self.table.get(key, default)
        if value is None:
            return value
        bound = (f" > {above:g}" if above is not None else
                 f" >= {at_least:g}" if at_least is not None else "")
        ok = (isinstance(value, int | float) and not isinstance(value, bool)
              and math.isfinite(value) and (above is None or value > above)
              and (at_least is None or value >= at_least)
              and (not whole or float(value).is_integer()))
        return value if ok else self._refuse(
            key, f"a {'whole ' if whole else ''}number{bound}", value, default)

    def text(self, key: str, default: str, empty: bool = False) -> str:
        """Text (``empty``: the empty text too)."""
        value = self.table.get(key, default)
        return value if isinstance(value, str) and (value or empty) else self._refuse(
            key, "text", value, default)

    def flag(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        return value if isinstance(value, bool) else self._refuse(key, "true or false",
                                                                  value, default)

    def names(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        return self._refuse(key, 'a list of names (e.g. ["drug"])', value, ())

    def pairs(self, key: str) -> tuple[tuple[str, object], ...]:
        value = self.table.get(key, {})
        if isinstance(value, dict):
            return tuple(value.items())
        return self._refuse(key, 'a table (e.g. { column = "value" })', value, ())

    def contrasts(self) -> tuple[tuple, ...]:
        value = self.table.get("contrasts", [])
        if isinstance(value, list) and all(isinstance(c, list) for c in value):
            return tuple(tuple(c) for c in value)
        return self._refuse("contrasts", "a list of [grouping column, numerator level, "
                            "denominator level]", value, ())


def _population(pairs: tuple[tuple[str, object], ...]) -> tuple[tuple[str, object], ...]:
    """The population filter's (column, value) pairs; a list of values (the patients with
    any of them) becomes a tuple."""
    return tuple((column, tuple(value) if isinstance(value, list) else value)
                 for column, value in pairs)


def repeated(names) -> list[str]:
    """The names that occur more than once in ``names``, sorted."""
    return sorted(n for n, count in Counter(names).items() if count > 1)


def _repeated_columns(path: Path, grouping: tuple[str, ...], covariates: tuple[str, ...]
                      ) -> list[Problem]:
    """A column named twice in ``grouping`` or ``covariates``, or in both (its effect would
    enter the model twice and only their sum be identified)."""
    problems = []
    for key, names in (("grouping", grouping), ("covariates", covariates)):
        for name in repeated(names):
            problems.append(Problem(str(path), key, f"{key} lists '{name}' more than once",
                                    column=key))
    for name in sorted(set(grouping) & set(covariates)):
        problems.append(Problem(str(path), "covariates", f"'{name}' is both a grouping column "
                                "and a covariate: its effect would enter the model twice; "
                                "keep it in one of them", column="covariates"))
    return problems


def load_model_spec(name_or_path: str, models_dir: str | Path | None = None) -> ModelSpec:
    """The spec ``name_or_path`` names (a ``.toml`` path, or a name looked up in
    :func:`model_folders`)."""
    path = resolve(name_or_path, model_folders(models_dir), "model")
    raw = _load_toml(path)
    table = raw.get("model", {})
    kind = table.get("kind")
    problems = []
    if kind not in ("milestones", "episodes", "longitudinal"):
        problems.append(Problem(str(path), "model_kind", f"[model] kind must be 'milestones', "
                                f"'episodes' or 'longitudinal', got {kind!r}", column="kind"))
        raise InputError(problems)
    allowed = SPEC_KEYS["common"] | SPEC_KEYS[kind]
    for key in sorted(set(table) - allowed):
        problems.append(Problem(str(path), "unknown_key", f"unknown key '{key}' in [model]; "
                                f"valid: {', '.join(sorted(allowed))}", column=key))
    typed = _TypedKeys(path, table, problems)
    typed.text("description", "", empty=True)   # the reports quote it from the spec file
    common = dict(
        name=typed.text("name", path.stem), kind=kind, path=path, raw=raw,
        grouping=typed.names("grouping"), covariates=typed.names("covariates"),
        covariate_reference=typed.pairs("covariate_reference"),
        contrasts=typed.contrasts(), population=_population(typed.pairs("population")),
        prior_set=typed.text("priors", "default"),
        replicates=int(typed.number("replicates", 40, at_least=1, whole=True)),
        cell_deviations=table.get("cell_deviations", "non_centred"))
    if common["cell_deviations"] not in ("centred", "non_centred", "interaction"):
        problems.append(Problem(str(path), "cell_deviations", "cell_deviations must be "
                                "'centred', 'non_centred' or 'interaction', got "
                                f"{common['cell_deviations']!r}", column="cell_deviations"))
    for column, _ in common["covariate_reference"]:
        if column not in common["covariates"]:
            problems.append(Problem(str(path), "covariate_reference", f"covariate_reference "
                                    f"names '{column}', which is not one of the covariates "
                                    f"({', '.join(common['covariates']) or 'none'})",
                                    column="covariate_reference"))
    for contrast in common["contrasts"]:
        if len(contrast) != 3 or contrast[0] not in common["grouping"]:
            problems.append(Problem(str(path), "contrast", f"contrast {list(contrast)} must be "
                                    "[grouping column, numerator level, denominator level]",
                                    column="contrasts"))
        elif contrast[1] == contrast[2]:
            problems.append(Problem(str(path), "contrast", f"contrast {list(contrast)} sets a "
                                    "level against itself: name two different levels",
                                    column="contrasts"))
    problems.extend(_repeated_columns(path, common["grouping"], common["covariates"]))
    for column, value in common["population"]:
        values = value if isinstance(value, tuple) else (value,)
        if not values or not all(isinstance(v, str | int | float) for v in values):
            # (bool is an int)
            shown = list(value) if isinstance(value, tuple) else value
            problems.append(Problem(str(path), "population", f"population selects {column} = "
                                    f"{shown!r}: give a value (text, a number, or true or "
                                    "false) or a list of such values (any of them)",
                                    column="population"))
        for twice in repeated(repr(v) for v in values):
            problems.append(Problem(str(path), "population", f"population lists {twice} more "
                                    f"than once for {column}", column="population"))
    if kind in ("milestones", "episodes"):
        family = table.get("family", "weibull")
        if family not in FAMILIES:
            problems.append(Problem(str(path), "family", f"unknown family {family!r}; valid: "
                                    f"{', '.join(FAMILIES)}", column="family"))
        frailty = table.get("frailty", "auto" if kind == "milestones" else "non_centred")
        forms = FRAILTY_FORMS if kind == "milestones" else FRAILTY_FORMS[1:]
        if frailty not in forms:
            problems.append(Problem(str(path), "frailty", f"frailty must be one of "
                                    f"{', '.join(forms)}, got {frailty!r}",
                                    column="frailty"))
        if kind == "milestones":
            outcomes = typed.names("outcomes")
            if not outcomes and isinstance(table.get("outcomes", []), list):
                problems.append(Problem(str(path), "outcomes", "list at least one event in "
                                        "'outcomes'", column="outcomes"))
            for outcome in repeated(outcomes):
                problems.append(Problem(str(path), "outcomes", f"outcomes lists '{outcome}' "
                                        "more than once", column="outcomes"))
            spec = ModelSpec(**common, outcomes=outcomes, family=family, frailty=frailty)
        else:
            event = table.get("event", "")
            if not isinstance(event, str) or not event:
                problems.append(Problem(str(path), "event", "name the recurrent event "
                                        "(event = \"...\", as events.csv writes it)",
                                        column="event"))
            effect = typed.flag("episode_effect", False)
            cap = table.get("episode_effect_cap", 0)
            if not isinstance(cap, int) or isinstance(cap, bool) or (cap != 0 and cap < 2):
                problems.append(Problem(str(path), "episode_effect_cap", "episode_effect_cap "
                                        "must be a whole number >= 2 (episodes from that number "
                                        f"on share one effect) or 0 (none), got {cap!r}",
                                        column="episode_effect_cap"))
                cap = 0
            spec = ModelSpec(**common, outcomes=(str(event),), family=family, frailty=frailty,
                             event=str(event), episode_effect=bool(effect),
                             episode_effect_cap=cap)
    else:
        likelihood = table.get("likelihood", "")
        if not isinstance(likelihood, str) or likelihood not in LIKELIHOODS:
            problems.append(Problem(str(path), "likelihood", f"unknown likelihood "
                                    f"{likelihood!r}; valid: {', '.join(LIKELIHOODS)}",
                                    column="likelihood"))
        upper = typed.number("upper", None, above=0,
                             whole=likelihood == "beta_binomial")
        if likelihood in ("beta_binomial", "censored_normal") and "upper" not in table:
            problems.append(Problem(str(path), "upper", f"'{likelihood}' needs 'upper' (the "
                                    "top of the scale)", column="upper"))
        improvement = table.get("improvement", "increase")
        if improvement not in ("increase", "decrease"):
            problems.append(Problem(str(path), "improvement", "improvement must be 'increase' "
                                    f"or 'decrease', got {improvement!r}", column="improvement"))
        weeks = table.get("summary_weeks", [])
        if not _positive_numbers(weeks):
            problems.append(Problem(str(path), "summary_weeks", "summary_weeks must be a list "
                                    f"of weeks > 0 (e.g. [12, 24, 52]), got {weeks!r}",
                                    column="summary_weeks"))
            weeks = []
        shape = table.get("shape", "plateau")
        if shape not in SHAPES:
            problems.append(Problem(str(path), "shape", f"shape must be one of "
                                    f"{', '.join(SHAPES)}, got {shape!r}", column="shape"))
        knots = table.get("knots", [])
        if not _positive_numbers(knots) or (knots and shape != "spline"):
            problems.append(Problem(str(path), "knots", "knots must be a list of interior "
                                    "weeks > 0 (e.g. [12, 52]) and only with shape = "
                                    f"\"spline\", got {knots!r}", column="knots"))
            knots = []
        correlation = typed.flag("correlation", True)
        effects = table.get("patient_effects", "auto")
        if effects not in PATIENT_EFFECT_FORMS:
            problems.append(Problem(str(path), "patient_effects", "patient_effects must be "
                                    "'auto', 'centred', 'centred_baseline', "
                                    "'centred_level', 'non_centred' or "
                                    f"'integrated', got {effects!r}",
                                    column="patient_effects"))
            effects = "auto"
        plausible = table.get("plausible_range", [])
        if plausible and (likelihood != "lognormal" or not _positive_numbers(plausible)
                          or len(plausible) != 2 or plausible[0] >= plausible[1]):
            problems.append(Problem(str(path), "plausible_range", "plausible_range must be "
                                    "[low, high] with 0 < low < high, the range of values "
                                    "plausible for a patient in the measure's unit (a "
                                    "log-normal measure; a bounded score's range is 0 to "
                                    f"'upper'), got {plausible!r}", column="plausible_range"))
            plausible = []
        unit = typed.text("unit", "", empty=True)
        spec = ModelSpec(**common, measure=typed.text("measure", path.stem),
                         unit=unit, plausible_range=tuple(float(v) for v in plausible),
                         patient_effects=effects,
                         summary_weeks=tuple(sorted({float(w) for w in weeks})),
                         shape=shape, knots=tuple(sorted({float(k) for k in knots})),
                         correlation=correlation,
                         improvement=improvement,
                         random_change=typed.flag("random_change", True),
                         likelihood=likelihood, upper=upper,
                         threshold=float(typed.number("threshold", 0.0, at_least=0)),
                         final_week=float(typed.number("final_week", 24.0, above=0)))
    if problems:
        raise InputError(problems)
    return spec


# a prior is a univariate continuous distribution of PyMC's with proper draws; its arguments
# are numbers (Interpolated needs arrays; Flat and HalfFlat have no draws; PolyaGamma's
# density needs a package PyMC does not install)
IMPROPER = ("Flat", "HalfFlat")
PRIOR_DISTRIBUTIONS = tuple(sorted(set(pm.distributions.continuous.__all__)
                                   - {*IMPROPER, "Interpolated", "PolyaGamma"}))
# the values each parameter takes: a prior must put all its mass there (a Normal prior on a
# spread gives negative spreads: where the model's density cuts them off, the fit silently
# uses another prior than its prior draws; where it does not, the posterior turns bimodal)
POSITIVE_PARAMETERS = frozenset({"sigma_cell", "sigma_patient", "sigma_intercept",
                                 "sigma_change", "dispersion", "tau_weeks", "noise"})
UNIT_INTERVAL_PARAMETERS = frozenset({"lkj_corr"})


def _check_prior_table(path: Path, section: str, parameter: str, table) -> list[Problem]:
    where = f"[{section}.{parameter}]"
    if not isinstance(table, dict) or "dist" not in table:
        return [Problem(str(path), "prior_table", f"{where} needs dist = \"...\" and kwargs",
                        column=parameter)]
    extra = set(table) - {"dist", "kwargs", "dims", "centered", "transform"}
    if extra:
        return [Problem(str(path), "prior_table", f"{where}: unknown key(s) "
                        f"{', '.join(sorted(extra))}; valid: dist, kwargs", column=parameter)]
    dist = table["dist"]
    if not isinstance(dist, str):
        return [Problem(str(path), "prior_distribution", f"{where}: dist must be the name of "
                        f"a distribution, got {dist!r}; valid: "
                        f"{', '.join(PRIOR_DISTRIBUTIONS)}", column=parameter)]
    if not isinstance(table.get("kwargs", {}), dict):
        return [Problem(str(path), "prior_table", f"{where}: kwargs must be a table of "
                        f"arguments (kwargs = {{ sigma = 1.0 }}), got {table['kwargs']!r}",
                        column=parameter)]
    distribution = getattr(pm, dist, None)
    if dist not in PRIOR_DISTRIBUTIONS:
        if not (isinstance(distribution, type) and issubclass(distribution, pm.Distribution)):
            what = f"unknown distribution '{dist}'"
        elif issubclass(distribution, pm.Discrete):
            what = f"'{dist}' is discrete, and NUTS samples continuous parameters only"
        elif dist in IMPROPER:
            what = (f"'{dist}' is improper, and a prior must give draws (prior predictive "
                    "check, power-scaling)")
        else:
            what = f"'{dist}' is not a univariate continuous distribution"
        return [Problem(str(path), "prior_distribution", f"{where}: {what}; valid: "
                        f"{', '.join(PRIOR_DISTRIBUTIONS)}", column=parameter)]
    signature = inspect.signature(distribution.dist)
    valid_args = [n for n, p in signature.parameters.items()
                  if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n != "cls"]
    problems = []
    for arg, value in table.get("kwargs", {}).items():
        if arg not in valid_args:
            problems.append(Problem(str(path), "prior_argument", f"{where}: {dist} has no "
                                    f"argument '{arg}'; valid: {', '.join(valid_args)}",
                                    column=parameter))
        elif not isinstance(value, int | float) or isinstance(value, bool):
            problems.append(Problem(str(path), "prior_argument", f"{where}: {arg} must be a "
                                    f"number, got {value!r}", column=parameter))
    return problems


# values outside a positive or a unit-interval parameter's range, where a prior for it must
# have no density (the smallest ones catch a bound just below 0 or just above 1)
BELOW_ZERO = (-1e-12, -1e-6, -1e-2, -1.0, -100.0)
ABOVE_ONE = (1 + 1e-12, 1 + 1e-6, 1.01, 2.0, 100.0)


@dataclass(frozen=True)
class _PriorFacts:
    """What PyMC says of a prior table: the argument condition it breaks ("sigma > 0"), else
    its support point and whether it has density below 0 or above 1."""

    broken: str = ""
    unbuildable: str = ""    # PyMC's refusal of the argument set ("Incompatible ...")
    support_point: float = math.nan
    below_zero: bool = False
    above_one: bool = False


_PRIOR_FACTS: dict[str, _PriorFacts] = {}   # (dist, kwargs) as JSON -> its facts


def _prior_facts(dist: str, kwargs: dict) -> _PriorFacts:
    """The facts of ``dist(**kwargs)``: its log density at its support point and at the
    values of ``BELOW_ZERO`` and ``ABOVE_ONE``, in one function evaluated by PyTensor's
    Python linker (about 10 ms; once per distinct table in a process). PyMC's own checks of
    the arguments raise, or the density at the support point is not finite."""
    import numpy as np
    import pytensor
    import pytensor.tensor as pt
    from pymc.distributions.distribution import support_point
    from pymc.logprob.utils import ParameterValueError

    key = json.dumps([dist, kwargs], sort_keys=True)
    if key not in _PRIOR_FACTS:
        try:
            variable = getattr(pm, dist).dist(**kwargs)
        except (TypeError, ValueError) as error:   # PyMC's refusal of the argument set
            _PRIOR_FACTS[key] = _PriorFacts(unbuildable=str(error))
            return _PRIOR_FACTS[key]
        point = pt.as_tensor(support_point(variable), dtype="float64")
        values = pt.concatenate([pt.atleast_1d(point),
                                 pt.as_tensor(np.array(BELOW_ZERO + ABOVE_ONE))])
        try:
            # a zero scale divides by zero while the graph is folded: only finiteness counts
            with np.errstate(all="ignore"):
                at, logp = pytensor.function([], [point, pm.logp(variable, values)],
                                             mode="FAST_COMPILE")()
        except ParameterValueError as error:
            _PRIOR_FACTS[key] = _PriorFacts(broken=str(error))
            return _PRIOR_FACTS[key]
        below = np.isfinite(logp[1:1 + len(BELOW_ZERO)]).any()
        above = np.isfinite(logp[1 + len(BELOW_ZERO):]).any()
        _PRIOR_FACTS[key] = _PriorFacts(
            broken="" if np.isfinite(logp[0]) else "parameters with a finite log density",
            support_point=float(at), below_zero=bool(below), above_one=bool(above))
    return _PRIOR_FACTS[key]


def _prior_table_problem(parameter: str, dist: str, kwargs: dict) -> tuple[str, str] | None:
    """(rule, message) when the table breaks its distribution's argument conditions or puts
    prior mass where ``parameter`` cannot be, else None."""
    facts = _prior_facts(dist, kwargs)
    if facts.unbuildable:
        return "prior_argument", f"{dist} cannot be built from {kwargs}: {facts.unbuildable}"
    if facts.broken:
        return "prior_support", f"{dist} needs {facts.broken}, got {kwargs}"
    if parameter in POSITIVE_PARAMETERS and (facts.below_zero or facts.support_point <= 0):
        return "prior_domain", (f"{dist}({kwargs}) puts prior mass on values <= 0, and "
                                f"{parameter} is positive: use a distribution of positive "
                                "values (HalfNormal, LogNormal, Gamma, ...)")
    if parameter in UNIT_INTERVAL_PARAMETERS and (facts.below_zero or facts.above_one
                                                  or not 0 < facts.support_point < 1):
        return "prior_domain", (f"{dist}({kwargs}) puts prior mass outside 0 to 1, and "
                                f"{parameter} lies between them: use Beta(eta, eta)")
    return None


META_SECTION = "prior_set"
META_KEYS = {"extends", "description"}


def _read_prior_file(path: Path, priors_dir: list[Path], seen: tuple[Path, ...] = ()
                     ) -> tuple[dict, list[Problem]]:
    """The file's tables merged over those of the set it ``extends`` (recursively)."""
    raw = _load_toml(path)
    meta = raw.pop(META_SECTION, {})
    if not isinstance(meta, dict):
        meta = {}
    problems = [Problem(str(path), "prior_set_key", f"unknown key '{key}' in [{META_SECTION}];"
                        f" valid: {', '.join(sorted(META_KEYS))}", column=key)
                for key in sorted(set(meta) - META_KEYS)]
    base_name = meta.get("extends")
    if base_name is None:
        return raw, problems
    base_path = resolve(str(base_name), search_folders(path.parent, *priors_dir), "prior set")
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        return raw, problems + [Problem(str(path), "prior_extends", f"'extends = "
                                        f"\"{base_name}\"' makes a cycle", column="extends")]
    base, base_problems = _read_prior_file(base_path, priors_dir, (*seen, path.resolve()))
    merged = {name: dict(tables) for name, tables in base.items()}
    for name, tables in raw.items():
        merged.setdefault(name, {}).update(tables if isinstance(tables, dict) else {})
    return merged, problems + base_problems


def load_prior_set(name_or_path: str, spec: ModelSpec,
                   priors_dir: Path | None = None) -> PriorSet:
    """The priors ``spec`` needs from a prior-set file (its kind's tables, then its own).

    A name is looked up in ``priors_dir`` if given, else in the spec's own ``priors/``
    folder, then in the bundled ``models/priors/`` (an ``extends`` name likewise, beside
    the file first)."""
    priors_dir = search_folders(priors_dir if priors_dir is not None
                                else spec.path.parent / "priors", PRIORS_DIR)
    path = resolve(name_or_path, priors_dir, "prior set")
    raw, problems = _read_prior_file(path, priors_dir)
    description = str(_load_toml(path).get(META_SECTION, {}).get("description", ""))
    section = spec.prior_section
    expected = PARAMETERS[section]
    longitudinal = section.startswith("longitudinal_")
    measure = spec.measure if longitudinal else ""
    known_sections = (set(PARAMETERS) | {n.stem for n in MODELS_DIR.glob("*.toml")}
                      | {spec.name} | ({measure} if measure else set()))
    for name in raw:
        if name not in known_sections:
            problems.append(Problem(str(path), "prior_section", f"unknown section [{name}]; "
                                    f"valid: {', '.join(sorted(PARAMETERS))} or a model name",
                                    column=name))

    def check_section(source: str, valid) -> dict[str, dict]:
        """The valid tables of ``[source.*]``; every problem in them is recorded."""
        good = {}
        for parameter, table in raw.get(source, {}).items():
            if parameter not in valid:
                problems.append(Problem(str(path), "prior_parameter", f"[{source}.{parameter}]:"
                                        f" unknown parameter; valid: {', '.join(valid)}",
                                        column=parameter))
                continue
            found = _check_prior_table(path, source, parameter, table)
            problems.extend(found)
            if not found:
                good[parameter] = table
        return good

    # every kind's section is checked, so a typo anywhere in the file is reported; a
    # longitudinal measure's section ([<measure>.*]) overrides its kind's generic tables and
    # the model's own section ([<model name>.*]) overrides both
    checked = {kind: check_section(kind, PARAMETERS[kind]) for kind in PARAMETERS}
    # an episodes model reads the milestone tables it shares, then its own section's
    inherited = checked["milestones"] if section == "episodes" else {}
    own = {**(check_section(measure, expected) if measure and measure != spec.name else {}),
           **check_section(spec.name, expected)}
    merged = {**inherited, **checked[section], **own}
    generic = tuple(p for p in expected if p in checked[section] and p not in own)
    missing = [p for p in expected if p not in merged]
    if missing and not problems:
        problems.append(Problem(str(path), "prior_missing", f"[{section}] lacks "
                                f"{', '.join(missing)}", column=section))
    if problems:
        raise InputError(problems)
    for parameter, table in merged.items():
        found = _prior_table_problem(parameter, table["dist"], table.get("kwargs", {}))
        if found:
            source = next((src for src in (spec.name, measure, section, "milestones")
                           if parameter in raw.get(src, {})), section)
            problems.append(Problem(str(path), found[0], f"[{source}.{parameter}]: "
                                    f"{found[1]}", column=parameter))
    if problems:
        raise InputError(problems)
    priors = {k: Prior.from_dict({"dist": t["dist"], "kwargs": copy.deepcopy(t.get("kwargs",
                                                                                   {}))})
              for k, t in merged.items()}
    return PriorSet(name=path.stem, path=path, priors=priors, description=description,
                    generic=generic if longitudinal else ())
