"""The design prior: what is believed true when the trial runs, kept apart from the analysis
prior the trial will be analysed with (O'Hagan, Stevens & Campbell 2005).

From a fitted run folder, the design prior is the posterior of the model named by the
design: each simulated trial takes one posterior draw (for a milestone model the intercepts,
dispersions, patient frailty SD and each arm's cell location, main effects plus pooled cell
deviation; for a score the population parameters with the arm's change), so the uncertainty
of every parameter, not only of the effect, carries into the assurance.

Robustified (RBesT's ``robustify``): with weight ``w`` the effect is drawn instead from a
vague component ``N(robust_mean, robust_sd)`` on the effect's analysis scale (log time
ratio, log-odds of a probability, mean change or difference); the other parameters keep
their draw. Effects fixed for operating characteristics replace the effect the same way.

Effective sample size: the moment method. A design prior whose effect has variance
``v_design`` carries as much information as ``ESS = u / v_design`` patients per arm, where
``u`` (the variance of the effect from one patient per arm) is measured under the design
itself, as ``n * v_post(n)`` averaged over the simulated trials at the largest size (so
censoring and dropout count). Only the informative component is counted: a mixture's ESS is
reported for its informative part with its weight stated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jdmbayes.data.io import sha256_of
from jdmbayes.errors import InputError, Problem
from jdmbayes.planning.design import TrialDesign


@dataclass
class DesignPrior:
    """Draws of what a simulated trial needs, and where they came from.

    ``effect`` is on the analysis scale (:meth:`TrialDesign.to_analysis_scale`); the other arrays
    are whatever the endpoint's simulator reads (:mod:`jdmbayes.planning.trials`)."""

    effect: np.ndarray
    nuisance: dict[str, np.ndarray] = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.effect)

    def draw(self, design: TrialDesign, m: int, rng: np.random.Generator,
             fixed_effect: float | None = None) -> tuple[np.ndarray, dict, np.ndarray]:
        """``m`` trial truths: (effect, nuisance arrays, whether from the vague component).

        ``fixed_effect`` (as the design states it: a time ratio, a probability, a change)
        replaces the
        effect in every trial (operating characteristics); the nuisance stays random."""
        pick = rng.integers(0, self.size, m)
        effect = self.effect[pick].copy()
        nuisance = {k: v[pick] for k, v in self.nuisance.items()}
        vague = rng.random(m) < design.robust_weight
        robust = rng.normal(design.robust_mean, design.robust_sd, m)
        if fixed_effect is not None:
            vague[:] = False
            effect[:] = design.to_analysis_scale(fixed_effect)
        else:
            effect = np.where(vague, robust, effect)
        return effect, nuisance, vague

    def informative_variance(self) -> float:
        return float(np.var(self.effect))


def normal_design_prior(design: TrialDesign, draws: int, rng: np.random.Generator) -> DesignPrior:
    """The normal design prior stated in the design (``[design.design_prior]``), as draws;
    a point mass (sd 0) gives classical power."""
    mean, sd = design.design_prior["mean"], design.design_prior["sd"]
    return DesignPrior(rng.normal(mean, sd, draws) if sd > 0 else np.full(draws, mean),
                       source={"kind": "stated normal", "mean": mean, "sd": sd})


def run_design_prior(design: TrialDesign, run: str | Path,
                     allow_failed: bool = False) -> DesignPrior:
    """The posterior of the milestone model ``design.model`` in the run folder ``run`` as
    the design prior of a time-to-event design."""
    post, manifest, posterior_file = _read_run(design, run, allow_failed)
    spec = manifest["models"][design.model]["spec"]["model"]
    outcomes = list(spec.get("outcomes", []))
    problems = []
    if spec.get("kind") != "milestones":
        problems.append(Problem(str(design.path), "design_model", f"model '{design.model}' "
                                f"is a {spec.get('kind')} model; a {design.endpoint} design "
                                "needs a milestones model", column="model"))
    elif design.outcome not in outcomes:
        problems.append(Problem(str(design.path), "design_outcome", f"outcome "
                                f"'{design.outcome}' is not one of model '{design.model}''s "
                                f"outcomes ({', '.join(outcomes)})", column="outcome"))
    if problems:
        raise InputError(problems)
    locations = _arm_locations(design, post, list(spec.get("grouping", [])))
    treatment, control = locations if len(locations) == 2 else (locations[0], locations[0])
    k_out = outcomes.index(design.outcome)
    nuisance = {"intercept": _flat(post, "intercept")[:, : k_out + 1],
                "dispersion": _flat(post, "dispersion")[:, : k_out + 1],
                "sigma_patient": _flat(post, "sigma_patient") if "sigma_patient" in post
                else np.zeros(len(control)),
                "location_control": control}
    source = _source(design, run, manifest, posterior_file, len(control))
    return DesignPrior(treatment - control, nuisance, source)


def design_prior_from_run(design: TrialDesign, run: str | Path,
                          allow_failed: bool = False) -> DesignPrior:
    """The design prior of ``design`` from the run folder ``run``. A fit that failed its
    diagnostic gates there is refused unless ``allow_failed`` (its verdict then travels in
    ``source["run_verdict"]`` into the plan's sentences)."""
    if design.endpoint == "change":
        return score_design_prior(design, run, allow_failed)
    if design.endpoint == "event_by_week":
        return event_probability_prior(run_design_prior(design, run, allow_failed), design)
    return run_design_prior(design, run, allow_failed)


def event_probability_prior(prior: DesignPrior, design: TrialDesign) -> DesignPrior:
    """A single-arm milestone design prior: the arm's location and the log-odds of the event
    by ``endpoint_week`` of each draw (:func:`jdmbayes.planning.trials.event_probability`)."""
    from jdmbayes.planning.trials import event_probability

    probability = event_probability(prior.source["family"], prior.nuisance,
                                    prior.nuisance["location_control"], design.endpoint_week)
    return DesignPrior(design.to_analysis_scale(np.clip(probability, 1e-6, 1 - 1e-6)),
                       prior.nuisance, prior.source)


def score_design_prior(design: TrialDesign, run: str | Path,
                       allow_failed: bool = False) -> DesignPrior:
    """The posterior of the longitudinal model ``design.model`` in ``run`` as the design
    prior of a single-arm change design: the arm's cell gives the population change; the
    effect of each draw is its population mean change by ``endpoint_week``."""
    from jdmbayes.planning.score_analysis import HYPER, mean_change

    post, manifest, posterior_file = _read_run(design, run, allow_failed)
    spec = manifest["models"][design.model]["spec"]["model"]
    problems = []
    if spec.get("kind") != "longitudinal" or spec.get("likelihood") != "beta_binomial" or \
            spec.get("shape", "plateau") != "plateau":
        problems.append(Problem(str(design.path), "design_model", f"model '{design.model}' is "
                                "not a beta-binomial longitudinal model with the plateau shape "
                                "(what a change design simulates from)", column="model"))
    if spec.get("measure") != design.measure or float(spec.get("upper", 0)) != design.upper:
        problems.append(Problem(str(design.path), "design_measure", f"model '{design.model}' "
                                f"models {spec.get('measure')} (0-{spec.get('upper')}), not "
                                f"{design.measure} (0-{design.upper:g})", column="measure"))
    if problems:
        raise InputError(problems)
    location = _arm_locations(design, post, list(spec.get("grouping", [])))
    theta = {name: _flat(post, name) for name in HYPER}
    theta["change"] = theta["change"] + location[0]
    if "rho_baseline_change" in post:
        theta["rho"] = _flat(post, "rho_baseline_change")
    effect = mean_change(theta, design.endpoint_week, design.upper)
    source = _source(design, run, manifest, posterior_file, len(effect))
    return DesignPrior(effect, theta, source)


def _flat(post, name: str) -> np.ndarray:
    value = post[name].values
    return value.reshape(-1, *value.shape[2:])


def _read_run(design: TrialDesign, run, allow_failed: bool = False):
    import xarray as xr

    run = Path(run)
    posterior_file = run / design.model / "posterior.nc"
    manifest_file = run / "manifest.json"
    if not posterior_file.is_file():
        raise InputError([Problem(str(posterior_file), "design_prior_run",
                                  f"no fitted '{design.model}' in run folder {run} (the design "
                                  f"names model '{design.model}'); fit it first: jdmbayes fit "
                                  f"--model {design.model} --out {run}")])
    try:
        manifest = json.loads(manifest_file.read_text())
        model = manifest["models"][design.model]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError([Problem(str(manifest_file), "design_prior_run", f"run folder {run} "
                                  f"has no manifest of its fit of '{design.model}' that can be "
                                  f"read ({type(error).__name__}: {error}); a run folder is "
                                  "what jdmbayes fit writes, whole")]) from None
    if model.get("verdict") != "pass" and not allow_failed:
        raise InputError([Problem(str(manifest_file), "design_prior_failed_fit", f"the fit of "
                                  f"'{design.model}' in {run} failed its diagnostic gates "
                                  "(its diagnostics.json says which): a design prior needs a "
                                  "posterior that passed them. Refit it as the fit's advice "
                                  "says, or pass --allow-failed-diagnostics to use it anyway "
                                  "(the plan's sentences then say so)")])
    try:
        tree = xr.open_datatree(str(posterior_file), engine="h5netcdf")
        posterior = tree["posterior"].to_dataset()
    except (OSError, ValueError, KeyError) as error:    # not HDF5, truncated, no posterior
        raise InputError([Problem(str(posterior_file), "design_prior_run", "cannot read the "
                                  f"posterior draws ({type(error).__name__}: {error}); refit: "
                                  f"jdmbayes fit --model {design.model}")]) from None
    return posterior, manifest, posterior_file


def _arm_locations(design: TrialDesign, post, grouping: list[str]) -> list[np.ndarray]:
    """(S,) group part of each arm's cell: main effects plus the pooled cell deviation."""
    cells = [str(c) for c in post["cell"].values] if "cell" in post.coords else []
    effects = [str(e) for e in post["effect"].values] if "effect" in post.coords else []
    size = _flat(post, "intercept").shape[0]
    problems, out = [], []
    for arm in design.arms:
        levels = dict(arm.levels)
        if sorted(levels) != sorted(grouping):
            problems.append(Problem(str(design.path), "design_arm", f"arm '{arm.label}' names "
                                    f"{', '.join(sorted(levels)) or 'no column'}; model "
                                    f"'{design.model}' is grouped by {', '.join(grouping)}: "
                                    "name a level of each", column="arms"))
            continue
        label = ":".join(levels[c] for c in grouping)
        if cells and label not in cells:
            problems.append(Problem(str(design.path), "design_arm", f"arm '{arm.label}' is "
                                    f"cell '{label}', which model '{design.model}' does not "
                                    f"have (cells: {', '.join(cells)})", column="arms"))
            continue
        row = np.array([float(e == f"{c}[{levels[c]}]") for e in effects for c in grouping
                        if e.startswith(f"{c}[")])
        loc = _flat(post, "beta_group") @ row if effects else np.zeros(size)
        if "cell_deviation" in post and cells:
            loc = loc + _flat(post, "cell_deviation")[:, cells.index(label)]
        out.append(loc)
    if problems:
        raise InputError(problems)
    return out


def _source(design: TrialDesign, run, manifest: dict, posterior_file: Path, draws: int) -> dict:
    model = manifest["models"][design.model]
    return {"kind": "posterior of a fitted run", "run": str(Path(run).resolve()),
            "model": design.model, "posterior_sha256": sha256_of(posterior_file),
            "run_seed": manifest.get("seed"), "data": manifest.get("data"),
            "prior_set": model.get("prior_set"), "draws": int(draws),
            "run_verdict": model.get("verdict"),
            "arms": {a.label: ":".join(dict(a.levels)[c] for c in
                                       model["spec"]["model"].get("grouping", []))
                     for a in design.arms},
            **({"family": model["spec"]["model"].get("family", "weibull")}
               if design.endpoint != "change" else {})}
