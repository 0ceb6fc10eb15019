r"""Hierarchical AFT model of ordered milestones (gap times) with a shared patient frailty.

Model
-----
For patient :math:`i` and milestone :math:`k = 1..K` (ordered), the gap
:math:`G_{ik} = T_{ik} - T_{i,k-1}` (:math:`T_{i0}=0`) follows an AFT family
(:mod:`jdmbayes.families`):

.. math::

    \log G_{ik} &= \eta_{ik} + \sigma_k \varepsilon_{ik}, \\
    \eta_{ik} &= \alpha_k + x^{grp}_i{}^\top \beta_{group} + \sigma_{cell} z_{c(i)}
                 + x^{cov}_i{}^\top \beta_{cov} + \sigma_{patient} u_i, \\
    z_c, u_i &\sim \mathcal N(0, 1) \quad\text{(non-centred)},

so every milestone time is a cumulative sum of positive gaps and the milestones are ordered
in every predictive draw. Group effects (reference-coded main effects of each grouping
column, plus drug-by-dose cell deviations pooled with an estimated spread
:math:`\sigma_{cell}`) and the frailty :math:`u_i` are shared by the milestones, so
:math:`e^{\beta}` is a time ratio for every milestone time.

Likelihood per gap: exact :math:`\log f`; right-censored :math:`\log S`; interval-censored
:math:`\log(S(L)-S(R))` (left-censored when :math:`L \le 0`); an interval-censored milestone
with a later milestone is sampled as a latent time
:math:`T = L' + (R - L')\,v`, :math:`v \sim U(0,1)`, :math:`L' = \max(L, T_{prev})`, whose
Jacobian :math:`\log(R-L')` makes the marginal equal :math:`\log(S(L')-S(R))`.

Data
----
:class:`jdmbayes.indexing.MilestoneData`.

References
----------
Kalbfleisch & Prentice (2002), *The Statistical Analysis of Failure Time Data*, ch. 2-3;
Hougaard (2000), *Analysis of Multivariate Survival Data* (shared frailty);
Sun (2006), *The Statistical Analysis of Interval-censored Failure Time Data*.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from . import families
from .indexing import EXACT, INTERVAL, LATENT, NONE, RIGHT, MilestoneData
from .priors import create_prior_variable
from .spec import ModelSpec, PriorSet


def group_coords(design) -> dict:
    coords = {"effect": design.effect_labels, "cell": design.cell_labels or ["all"]}
    if design.covariate_names:
        coords["covariate"] = list(design.covariate_names)
    return coords


def group_effects(design, prior_set: PriorSet, n: int):
    """Sum of the group (main + pooled cell) and covariate effects for each patient."""
    x_group = pm.Data("x_group", design.cell_effects[design.patient_cell] if
                      design.effect_labels else np.zeros((n, 0)), dims=("patient", "effect"))
    patient_cell = pm.Data("patient_cell", design.patient_cell, dims="patient")
    total = pt.zeros(n)
    if design.effect_labels:
        beta_group = create_prior_variable(prior_set, "beta_group", "beta_group", dims="effect")
        total = total + pt.dot(x_group, beta_group)
    if len(design.cells) > 1:
        sigma_cell = create_prior_variable(prior_set, "sigma_cell", "sigma_cell")
        z_cell = pm.Normal("z_cell", 0.0, 1.0, dims="cell")
        pm.Deterministic("cell_deviation", sigma_cell * z_cell, dims="cell")
        total = total + sigma_cell * z_cell[patient_cell]
    if design.covariate_names:
        x_cov = pm.Data("x_covariate", design.covariates, dims=("patient", "covariate"))
        beta_cov = create_prior_variable(prior_set, "beta_covariate", "beta_covariate",
                                         dims="covariate")
        total = total + pt.dot(x_cov, beta_cov)
    return total


def gap_observations(data: MilestoneData) -> dict[str, np.ndarray]:
    """Flatten the informative (patient, milestone) cells into gap-time observations.

    ``origin`` is the previous milestone's exact time (0 for the first); where the previous
    milestone is latent, ``origin_latent`` gives its index (else -1) and ``origin`` is unused.
    """
    rows = {key: [] for key in ("patient", "outcome", "kind", "lo", "hi", "origin",
                                "origin_latent", "latent")}
    latent = data.latent
    n, k_count = data.kind.shape
    for i in range(n):
        origin, origin_latent = 0.0, -1
        for k in range(k_count):
            kind = data.kind[i, k]
            if kind == NONE:
                break
            for key, value in (("patient", i), ("outcome", k), ("kind", kind),
                               ("lo", data.lo[i, k]), ("hi", data.hi[i, k]),
                               ("origin", origin), ("origin_latent", origin_latent),
                               ("latent", latent.index((i, k)) if kind == LATENT else -1)):
                rows[key].append(value)
            if kind == EXACT:
                origin, origin_latent = data.hi[i, k], -1
            elif kind == LATENT:
                origin_latent = latent.index((i, k))
    ints = ("patient", "outcome", "kind", "origin_latent", "latent")
    return {k: np.asarray(v, dtype=int if k in ints else float) for k, v in rows.items()}


def build_milestone_model(data: MilestoneData, spec: ModelSpec, prior_set: PriorSet) -> pm.Model:
    """The PyMC model of ``spec`` on ``data`` (not sampled)."""
    n, k_count = data.kind.shape
    family = spec.family
    obs = gap_observations(data)
    latent = data.latent
    coords = {"patient": np.arange(1, n + 1), "outcome": list(data.outcomes),
              "obs": np.arange(len(obs["kind"])), **group_coords(data.design)}
    if latent:
        coords["latent"] = [f"{data.outcomes[k]}[{i + 1}]" for i, k in latent]
    with pm.Model(coords=coords) as model:
        obs_patient = pm.Data("obs_patient", obs["patient"], dims="obs")
        obs_outcome = pm.Data("obs_outcome", obs["outcome"], dims="obs")
        obs_hi = pm.Data("obs_time_hi", obs["hi"], dims="obs")
        obs_lo = pm.Data("obs_time_lo", obs["lo"], dims="obs")
        obs_origin = pm.Data("obs_origin", obs["origin"], dims="obs")
        alpha = create_prior_variable(prior_set, "intercept", "intercept", dims="outcome")
        sigma = create_prior_variable(prior_set, "dispersion", "dispersion", dims="outcome")
        base = group_effects(data.design, prior_set, n)
        if k_count > 1:  # a frailty is identified only by several milestones per patient
            sigma_patient = create_prior_variable(prior_set, "sigma_patient", "sigma_patient")
            if spec.frailty == "centred":
                frailty = pm.Normal("frailty", 0.0, sigma_patient, dims="patient")
            else:
                z_patient = pm.Normal("z_patient", 0.0, 1.0, dims="patient")
                frailty = pm.Deterministic("frailty", sigma_patient * z_patient, dims="patient")
            base = base + frailty
        eta = base[obs_patient] + alpha[obs_outcome]
        scale = sigma[obs_outcome]
        origin = obs_origin
        if latent:
            v = pm.Uniform("v_latent", 0.0, 1.0, dims="latent")
            # latent times in milestone order, so each may start after an earlier latent one
            t_latent = pt.zeros(len(latent))
            origin_of = obs["origin_latent"]
            for j in np.argsort([k for _, k in latent], kind="stable"):
                row = int(np.flatnonzero(obs["latent"] == j)[0])
                start = obs["origin"][row] if origin_of[row] < 0 else t_latent[origin_of[row]]
                lo_eff = pt.maximum(obs["lo"][row], start)
                t_latent = pt.set_subtensor(t_latent[j], lo_eff + (obs["hi"][row] - lo_eff)
                                            * v[j])
            uses = np.flatnonzero(origin_of >= 0)
            origin = pt.set_subtensor(obs_origin[uses], t_latent[origin_of[uses]])
        terms = pt.zeros(len(obs["kind"]))
        for kind in (EXACT, RIGHT, INTERVAL, LATENT):
            idx = np.flatnonzero(obs["kind"] == kind)
            if idx.size == 0:
                continue
            e, s, o, hi = eta[idx], scale[idx], origin[idx], obs_hi[idx]
            if kind in (EXACT, RIGHT):
                log_gap = pt.log(hi - o)
                term = (families.log_density if kind == EXACT else families.log_survival)(
                    family, log_gap, e, s)
            elif kind == INTERVAL:
                gap_lo = obs_lo[idx] - o
                has_lo = gap_lo > 0
                log_hi = pt.log(hi - o)
                log_lo = pt.log(pt.switch(has_lo, gap_lo, 1.0))
                log_s_lo = pt.switch(has_lo, families.log_survival(family, log_lo, e, s), 0.0)
                log_s_hi = families.log_survival(family, log_hi, e, s)
                term = log_s_lo + pt.log1mexp(log_s_hi - log_s_lo)
            else:
                j = obs["latent"][idx]
                lo_eff = pt.maximum(obs_lo[idx], o)
                t = lo_eff + (hi - lo_eff) * v[j]
                term = (families.log_density(family, pt.log(t - o), e, s)
                        + pt.log(hi - lo_eff))
            terms = pt.set_subtensor(terms[idx], term)
        per_patient = pt.zeros(n)
        per_patient = pt.inc_subtensor(per_patient[obs_patient], terms)
        per_patient = pm.Deterministic("loglik_patient", per_patient, dims="patient")
        pm.Potential("likelihood", per_patient.sum())
    return model
