"""The varied designs themselves (no sampling): spread over every factor, valid series that
``fit`` accepts, truths that name the models' own parameters, a simulator that independent
libraries recover, and the verdict's arithmetic."""

import dataclasses
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jdmbayes.batch.design_check import design_verdict
from jdmbayes.batch.designs import (
    COVARIATE_SETS,
    DOSE_CODINGS,
    FAMILIES,
    SHAPES,
    draw_designs,
    simulate_series,
)
from jdmbayes.data.validate import load_series
from jdmbayes.kinds.fit import check_models
from jdmbayes.kinds.registry import kind_of
from jdmbayes.models.indexing import level_label
from jdmbayes.models.spec import load_model_spec, load_prior_set

SEED = 20261203


@pytest.fixture(scope="module")
def designs():
    return draw_designs(40, SEED)


def test_designs_are_reproducible_and_cover_every_factor(designs):
    assert designs == draw_designs(40, SEED)
    assert designs != draw_designs(40, SEED + 1)
    patients = sorted(d.patients for d in designs)
    assert patients[0] <= 20 and patients[-1] >= 400
    # log-uniform strata: a quarter of the designs below 15 * (500/15)^0.25 = 36 patients
    assert sum(p < 36 for p in patients) == 10
    for factor, levels in (("dose_coding", DOSE_CODINGS), ("covariates", COVARIATE_SETS),
                           ("family", FAMILIES), ("drugs", (1, 2, 3, 4)),
                           ("schedule", ("regular", "irregular")),
                           ("measure", ("marker", "score")), ("shape", SHAPES),
                           ("outcomes", (1, 2, 3))):
        counts = Counter(getattr(d, factor) for d in designs)
        assert set(counts) == set(levels), factor
        assert min(counts.values()) >= 40 // (2 * len(levels)), (factor, counts)


def _written(design, tmp_path: Path):
    simulated = simulate_series(design)
    paths = simulated.write(tmp_path / f"d{design.number}")
    return simulated, load_series(paths["milestones"].parent), paths


def test_every_series_is_valid_and_every_truth_is_a_parameter_of_its_model(designs,
                                                                           tmp_path):
    kinds = Counter()
    for design in designs:
        simulated, series, paths = _written(design, tmp_path)
        for model, path in paths.items():
            spec = load_model_spec(str(path))
            check_models(series, [spec])          # the rules fit applies before sampling
            kind = kind_of(spec)
            data = kind.index(series, spec)
            prior_set = kind.resolve_priors(data, spec, load_prior_set(spec.prior_set, spec))
            built = kind.build(data, spec, prior_set)
            for quantity, outcome, group in simulated.truth[model]:
                assert quantity in built.named_vars, (design.number, quantity)
                dims = built.named_vars_to_dims.get(quantity, ())
                labels = [str(v) for d in dims for v in built.coords[d]]
                for label in (outcome, group):
                    if label and dims and model == "milestones":
                        assert label in labels, (design.number, quantity, label)
                if group:
                    assert group in labels, (design.number, quantity, group)
        events = simulated.events
        kinds["interval"] += int((events["time_lo_wk"] > 0).sum())
        kinds["left"] += int((events["time_lo_wk"] == 0).sum())
        kinds["right"] += int(events["censored"].sum())
        kinds["exact"] += int((events["time_lo_wk"].isna() & (events["censored"] == 0)).sum())
        kinds["missing"] += int(simulated.measurements["value"].isna().sum())
    # every censoring kind and missing values occur across the designs
    assert min(kinds.values()) > 100, kinds


def test_simulated_milestones_recover_under_lifelines_weibull_aft(designs):
    """One Weibull milestone reported exactly (no frailty: one outcome), 3,000 patients:
    lifelines' maximum-likelihood AFT fit recovers the simulated intercept, dispersion and
    effects within 4 standard errors."""
    from lifelines import WeibullAFTFitter

    design = next(d for d in designs if d.outcomes == 1 and d.family == "weibull")
    design = dataclasses.replace(design, patients=3000, exact_share=1.0,
                                 followup=(80.0, 104.0))
    simulated = simulate_series(design)
    truth = simulated.truth["milestones"]
    frame = simulated.subjects.merge(simulated.events, on="subject_id")
    x = pd.DataFrame({"T": frame["time_wk"], "E": 1 - frame["censored"]})
    names = {}
    for (quantity, _, group) in truth:
        if quantity not in ("beta_group", "beta_covariate"):
            continue
        column, _, level = group.partition("[")
        level = level.rstrip("]")
        if quantity == "beta_covariate" and column == "age_y":
            age = frame["age_y"]
            x[group] = (age - age.mean()) / age.std(ddof=0)
        else:
            values = frame[column].map(lambda v, c=column: level_label(c, v))
            x[group] = (values == level).astype(float)
        names[group] = quantity
    fitted = WeibullAFTFitter().fit(x, "T", "E")
    params, se = fitted.params_, fitted.standard_errors_
    outcome = next(k[1] for k in truth if k[0] == "intercept")
    checks = {("lambda_", "Intercept"): truth[("intercept", outcome, "")]}
    checks.update({("lambda_", g): truth[(q, "", g)] for g, q in names.items()})
    for key, value in checks.items():
        assert abs(params[key] - value) < 4 * se[key], (key, params[key], value)
    # lifelines' rho_ is the Weibull shape, 1 / dispersion
    rho = np.exp(params[("rho_", "Intercept")])
    dispersion = truth[("dispersion", outcome, "")]
    assert abs(np.log(1 / rho) - np.log(dispersion)) < 4 * se[("rho_", "Intercept")]


def test_simulated_marker_recovers_under_a_linear_mixed_model(designs):
    """A log-normal marker with a linear trend, 600 patients: statsmodels' MixedLM (random
    intercept and slope) recovers the simulated intercept, change and noise."""
    import statsmodels.formula.api as smf

    design = next(d for d in designs if d.measure == "marker" and d.shape == "linear")
    design = dataclasses.replace(design, patients=600, missing_share=0.0)
    simulated = simulate_series(design)
    truth = simulated.truth["trajectory"]
    final_week = design.followup[1] / 2
    frame = simulated.measurements.merge(simulated.subjects, on="subject_id")
    frame["y"] = np.log(frame["value"])
    frame["h"] = frame["week"] / final_week
    terms = []
    for (quantity, _, group) in truth:
        if quantity in ("beta_group", "beta_covariate"):
            column, _, level = group.partition("[")
            name = f"x{len(terms)}"
            if column == "age_y" and not level:
                age = simulated.subjects.set_index("subject_id")["age_y"]
                z = (age - age.mean()) / age.std(ddof=0)
                frame[name] = frame["subject_id"].map(z) * frame["h"]
            else:
                labels = frame[column].map(lambda v, c=column: level_label(c, v))
                frame[name] = (labels == level.rstrip("]")).astype(float) * frame["h"]
            terms.append(name)
    fitted = smf.mixedlm("y ~ h" + "".join(f" + {t}" for t in terms), frame,
                         groups=frame["subject_id"], re_formula="~h").fit(reml=True)
    measure = design.measure
    assert abs(fitted.params["Intercept"] - truth[("intercept", measure, "")]) \
        < 4 * fitted.bse["Intercept"]
    assert abs(fitted.params["h"] - truth[("change", measure, "")]) < 4 * fitted.bse["h"]
    assert np.sqrt(fitted.scale) == pytest.approx(truth[("noise", measure, "")], rel=0.05)


def test_verdict_counts_and_binomial_range():
    fits = pd.DataFrame({"design": range(1, 41), "model": "milestones",
                         "verdict": ["pass"] * 38 + ["fail"] * 2,
                         "first_attempt": ["pass"] * 35 + ["fail"] * 5,
                         "seconds": np.arange(40.0)})
    coverage = pd.DataFrame({"design": 1, "model": "milestones", "inside": [True] * 300
                             + [False] * 20, "ci_prob": 0.95})
    row = design_verdict(fits, coverage).iloc[0]
    assert (row["passed"], row["passed_first_attempt"], row["inside"]) == (38, 35, 300)
    low, high = stats.binom.ppf([0.005, 0.995], 320, 0.95)
    assert (row["inside_low"], row["inside_high"]) == (low, high)
    assert row["verdict"] == "passes"                      # 38/40 = 95%, 300 in range
    assert design_verdict(fits, coverage, planned=41).iloc[0]["verdict"] == "incomplete"
    fits.loc[2, "verdict"] = "fail"                         # 37/40 < 95%
    assert design_verdict(fits, coverage).iloc[0]["verdict"] == "FAILS"
    coverage["inside"] = [True] * 280 + [False] * 40          # 87.5%: below the range
    fits.loc[2, "verdict"] = "pass"
    assert design_verdict(fits, coverage).iloc[0]["verdict"] == "FAILS"


def test_resume_keeps_only_the_coverage_of_saved_fits(designs, tmp_path):
    """A run stopped between a fit's coverage and its fit row: the orphan coverage rows go,
    so the fit reruns without duplicates; only the designs asked for are returned."""
    from jdmbayes.batch.design_check import run_designs
    from jdmbayes.inference.sampling import SamplerSettings

    pd.DataFrame({"design": [1, 3], "model": "milestones", "verdict": "pass",
                  "seconds": 1.0}).to_csv(tmp_path / "fits.csv", index=False)
    pd.DataFrame({"design": [1, 2, 3], "model": "milestones", "inside": True}).to_csv(
        tmp_path / "coverage.csv", index=False)
    fits, coverage = run_designs(designs[:2], tmp_path, SamplerSettings(), ("milestones",),
                                 fit_missing=False)
    assert fits["design"].tolist() == [1] and coverage["design"].tolist() == [1]
    assert pd.read_csv(tmp_path / "coverage.csv")["design"].tolist() == [1, 3]
