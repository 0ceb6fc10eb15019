"""The design prior: what is believed true when the trial runs, kept apart from the analysis
prior the trial will be analysed with (O'Hagan, Stevens & Campbell 2005).

From a fitted run folder, the design prior is the posterior of the milestone model named by
the design: each simulated trial takes one posterior draw (intercepts, dispersions, patient
frailty SD and the two arms' cell locations: main effects plus pooled cell deviations), so
the uncertainty of every parameter, not only of the effect, carries into the assurance.

Robustified (RBesT's ``robustify``): with weight ``w`` the effect (log time ratio, or the
difference) is drawn instead from a vague component ``N(robust_mean, robust_sd)``; the other
parameters keep their draw. Effects fixed for operating characteristics replace the effect
the same way.

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

    ``effect`` is on the analysis scale (log time ratio, or difference); the other arrays
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

        ``fixed_effect`` (on the design's scale: a time ratio, a difference) replaces the
        effect in every trial (operating characteristics); the nuisance stays random."""
        pick = rng.integers(0, self.size, m)
        effect = self.effect[pick].copy()
        nuisance = {k: v[pick] for k, v in self.nuisance.items()}
        vague = rng.random(m) < design.robust_weight
        robust = rng.normal(design.robust_mean, design.robust_sd, m)
        if fixed_effect is not None:
            vague[:] = False
            effect[:] = np.log(fixed_effect) if design.log_scale else fixed_effect
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


def run_design_prior(design: TrialDesign, run: str | Path) -> DesignPrior:
    """The posterior of ``design.model`` in the run folder ``run`` as a design prior."""
    import xarray as xr

    run = Path(run)
    posterior_file = run / design.model / "posterior.nc"
    manifest_file = run / "manifest.json"
    if not posterior_file.is_file() or not manifest_file.is_file():
        raise InputError([Problem(str(posterior_file), "design_prior_run",
                                  f"no fitted '{design.model}' in run folder {run} (the design "
                                  f"names model '{design.model}'); fit it first: jdmbayes fit "
                                  f"--model {design.model} --out {run}")])
    manifest = json.loads(manifest_file.read_text())
    spec = manifest["models"][design.model]["spec"]["model"]
    grouping = list(spec.get("grouping", []))
    outcomes = list(spec.get("outcomes", []))
    problems = []
    if spec.get("kind") != "milestones":
        problems.append(Problem(str(design.path), "design_model", f"model '{design.model}' "
                                f"is a {spec.get('kind')} model; a time_to_event design needs "
                                "a milestones model", column="model"))
    if design.outcome not in outcomes:
        problems.append(Problem(str(design.path), "design_outcome", f"outcome "
                                f"'{design.outcome}' is not one of model '{design.model}''s "
                                f"outcomes ({', '.join(outcomes)})", column="outcome"))
    tree = xr.open_datatree(str(posterior_file), engine="h5netcdf")
    post = tree["posterior"].to_dataset()
    cells = [str(c) for c in post["cell"].values] if "cell" in post.coords else []
    effects = [str(e) for e in post["effect"].values] if "effect" in post.coords else []
    arm_cells = []
    for arm in design.arms:
        levels = dict(arm.levels)
        if sorted(levels) != sorted(grouping):
            problems.append(Problem(str(design.path), "design_arm", f"arm '{arm.label}' names "
                                    f"{', '.join(sorted(levels)) or 'no column'}; model "
                                    f"'{design.model}' is grouped by {', '.join(grouping)}: "
                                    "name a level of each", column="arms"))
            continue
        label = ":".join(levels[c] for c in grouping)
        if label not in cells:
            problems.append(Problem(str(design.path), "design_arm", f"arm '{arm.label}' is "
                                    f"cell '{label}', which model '{design.model}' does not "
                                    f"have (cells: {', '.join(cells)})", column="arms"))
        arm_cells.append(label)
    if problems:
        raise InputError(problems)

    def flat(name: str) -> np.ndarray:
        value = post[name].values
        return value.reshape(-1, *value.shape[2:])

    beta = flat("beta_group") if effects else np.zeros((flat("intercept").shape[0], 0))
    deviation = flat("cell_deviation") if "cell_deviation" in post else None
    location = []
    for label in arm_cells:
        levels = dict(zip(grouping, label.split(":")))
        row = np.array([float(e == f"{c}[{levels[c]}]") for e in effects for c in grouping
                        if e.startswith(f"{c}[")])
        loc = beta @ row
        if deviation is not None:
            loc = loc + deviation[:, cells.index(label)]
        location.append(loc)
    k_out = outcomes.index(design.outcome)
    nuisance = {"intercept": flat("intercept")[:, : k_out + 1],
                "dispersion": flat("dispersion")[:, : k_out + 1],
                "sigma_patient": flat("sigma_patient") if "sigma_patient" in post
                else np.zeros(len(location[1])),
                "location_control": location[1]}
    source = {"kind": "posterior of a fitted run", "run": str(run.resolve()),
              "model": design.model, "posterior_sha256": sha256_of(posterior_file),
              "run_seed": manifest.get("seed"), "data": manifest.get("data"),
              "prior_set": manifest["models"][design.model].get("prior_set"),
              "draws": int(len(location[0])), "arms": dict(zip(
                  [a.label for a in design.arms], arm_cells)),
              "family": spec.get("family", "weibull")}
    return DesignPrior(location[0] - location[1], nuisance, source)
