r"""Hierarchical AFT model of ordered milestones (gap times) with a shared patient frailty.

Model
-----
For patient :math:`i` and milestone :math:`k = 1..K` (ordered), the gap
:math:`G_{ik} = T_{ik} - T_{i,k-1}` (:math:`T_{i0}=0`) follows an AFT family
(:mod:`jdmbayes.models.families`):

.. math::

    \log G_{ik} &= \eta_{ik} + \sigma_k \varepsilon_{ik}, \\
    \eta_{ik} &= \alpha_k + x^{grp}_i{}^\top \beta_{group} + \sigma_{cell} z_{c(i)}
                 + x^{cov}_i{}^\top \beta_{cov} + \sigma_{patient} u_i, \\
    z_c &\sim \mathcal N(0, 1), \quad u_i \sim \mathcal N(0, 1),

so every milestone time is a cumulative sum of positive gaps and the milestones are ordered
in every predictive draw. Group effects (reference-coded main effects of each grouping
column, plus drug-by-dose cell deviations pooled with an estimated spread
:math:`\sigma_{cell}`) and the frailty :math:`u_i` are shared by the milestones, so
:math:`e^{\beta}` is a time ratio for every milestone time.

The frailty :math:`u_i` is sampled, centred or non-centred (spec ``frailty``; the default
``"auto"`` chooses from the data, :func:`frailty_form`), hierarchically centred
(``"hierarchically_centred"``, :func:`patient_locations`: each patient's location
:math:`m_i = \bar\alpha + x_i^\top\beta + \dots + \sigma_{patient} u_i`, with
:math:`\bar\alpha` the mean of the :math:`\alpha_k`, is sampled as
:math:`m_i \sim \mathcal N(\bar\alpha + x_i^\top\beta + \dots, \sigma_{patient})` and
:math:`\eta_{ik} = m_i + \alpha_k - \bar\alpha`: the same model, a shear of the
centred coordinates with unit Jacobian, in which the population effects enter only the
locations' mean (Gelfand, Sahu & Carlin 1995), or integrated out of each
patient's likelihood (``"integrated"``: adaptive Gauss-Hermite quadrature,
:func:`integrated_frailty`), so that the sampler sees :math:`\sigma_{patient}` without a
funnel and ``loglik_patient`` is the marginal likelihood of the patient's data
(trustworthy patient-level LOO). The integrated form is opt-in: it matches brute-force
integration and the conditional posterior on the bundled series, and passes
simulation-based calibration on the bundled design (``validation/sbc-integrated/``, 11 of
11 parameters, no divergent replicate, since its Newton steps are safeguarded and the
gradient stops at the node placement: :func:`integrated_frailty`), but it has not been run
on the varied designs of ``validation/designs/`` and costs more per gradient
(``benchmarks/RESULTS.md``).
With one milestone there is no frailty (it would not be identified).

Likelihood per gap: exact :math:`\log f`; right-censored :math:`\log S`; interval-censored
:math:`\log(S(L)-S(R))` (left-censored when :math:`L \le 0`); an interval-censored milestone
with a later milestone is sampled as a latent time
:math:`T = L' + (R - L')\,v`, :math:`v \sim U(0,1)`, :math:`L' = \max(L, T_{prev})`, whose
Jacobian :math:`\log(R-L')` makes the marginal equal :math:`\log(S(L')-S(R))`.

The censoring kind of each cell is data (``obs_kind``), so one compiled model serves every
dataset of the same shape and latent-time pattern (simulation-based calibration, new prior
sets); only the latent cells are structure.

Data
----
:class:`jdmbayes.indexing.MilestoneData`.

References
----------
Liu & Pierce (1994), *Biometrika* 81:624 (adaptive Gauss-Hermite quadrature);
Kalbfleisch & Prentice (2002), *The Statistical Analysis of Failure Time Data*, ch. 2-3;
Hougaard (2000), *Analysis of Multivariate Survival Data* (shared frailty);
Sun (2006), *The Statistical Analysis of Interval-censored Failure Time Data*;
Gelfand, Sahu & Carlin (1995), *Biometrika* 82:479 (hierarchical centring).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from jdmbayes.models import families
from jdmbayes.models.indexing import EXACT, INTERVAL, LATENT, NONE, RIGHT, MilestoneData
from jdmbayes.models.priors import create_prior_variable
from jdmbayes.models.quadrature import STEP_MULTIPLES, nan_to, patient_sum, stop_gradient
from jdmbayes.models.spec import ModelSpec, PriorSet


def group_coords(design) -> dict:
    coords = {"effect": design.effect_labels, "cell": design.cell_labels or ["all"]}
    if design.covariate_names:
        coords["covariate"] = list(design.covariate_names)
    return coords


def interaction_basis(design) -> np.ndarray:
    """(cells, q) orthonormal basis of the cell contrasts orthogonal to the intercept and
    the main effects."""
    main = np.column_stack([np.ones(len(design.cells)), design.cell_effects])
    u, singular, _ = np.linalg.svd(main, full_matrices=True)
    rank = int((singular > 1e-10).sum())
    return u[:, rank:]


def group_effects(design, prior_set: PriorSet, n: int, cells: str = "non_centred"):
    """Sum of the group (main + pooled cell) and covariate effects for each patient.

    Cell deviations (spec ``cell_deviations``) are non-centred (``z_cell``, for few patients
    per cell), centred, or ``interaction``: confined to the directions the main effects and
    intercept cannot express (an orthonormal basis ``B`` of that complement, ``deviation =
    B w``, ``w ~ N(0, sigma_cell)``, centred; one direction in a 2 x 2 design), so they do
    not trade off against the main effects when every cell has many patients (chosen by
    measurement for large series: ``benchmarks/RESULTS.md``)."""
    x_group = pm.Data("x_group", design.cell_effects[design.patient_cell] if
                      design.effect_labels else np.zeros((n, 0)), dims=("patient", "effect"))
    patient_cell = pm.Data("patient_cell", design.patient_cell, dims="patient")
    total = pt.zeros(n)
    if design.effect_labels:
        beta_group = create_prior_variable(prior_set, "beta_group", "beta_group", dims="effect")
        total = total + pt.dot(x_group, beta_group)
    if design.has_cell_deviations:
        sigma_cell = create_prior_variable(prior_set, "sigma_cell", "sigma_cell")
        if cells == "interaction":
            basis = interaction_basis(design)
            w = pm.Normal("w_interaction", 0.0, sigma_cell, shape=basis.shape[1])
            deviation = pm.Deterministic("cell_deviation", pt.dot(basis, w), dims="cell")
        elif cells == "centred":
            deviation = pm.Normal("cell_deviation", 0.0, sigma_cell, dims="cell")
        else:
            z_cell = pm.Normal("z_cell", 0.0, 1.0, dims="cell")
            pm.Deterministic("cell_deviation", sigma_cell * z_cell, dims="cell")
            total = total + sigma_cell * z_cell[patient_cell]
        if cells in ("interaction", "centred"):
            total = total + deviation[patient_cell]
    if design.covariate_names:
        x_cov = pm.Data("x_covariate", design.covariates, dims=("patient", "covariate"))
        beta_cov = create_prior_variable(prior_set, "beta_covariate", "beta_covariate",
                                         dims="covariate")
        total = total + pt.dot(x_cov, beta_cov)
    return total


def gap_observations(data: MilestoneData) -> dict[str, np.ndarray]:
    """One gap-time observation per (patient, milestone) cell, in patient-major order.

    ``origin`` is the previous milestone's exact time (0 for the first); where the previous
    milestone is latent, ``origin_latent`` gives its index (else -1) and ``origin`` is unused.
    Cells with no information (``NONE``) get harmless values (origin 0, interval (0, 1]) and
    contribute nothing, so every censoring pattern without latent times gives arrays of the
    same shape: the pattern is data, not structure.
    """
    rows = {key: [] for key in ("patient", "outcome", "kind", "lo", "hi", "origin",
                                "origin_latent", "latent")}
    latent = data.latent
    n, k_count = data.kind.shape
    for i in range(n):
        origin, origin_latent, informative = 0.0, -1, True
        for k in range(k_count):
            kind = data.kind[i, k] if informative else NONE
            informative = informative and kind != NONE
            useful = kind != NONE
            for key, value in (("patient", i), ("outcome", k), ("kind", kind),
                               ("lo", data.lo[i, k] if useful else 0.0),
                               ("hi", data.hi[i, k] if useful else 1.0),
                               ("origin", origin if useful else 0.0),
                               ("origin_latent", origin_latent if useful else -1),
                               ("latent", latent.index((i, k)) if kind == LATENT else -1)):
                rows[key].append(value)
            if kind == EXACT:
                origin, origin_latent = data.hi[i, k], -1
            elif kind == LATENT:
                origin_latent = latent.index((i, k))
    ints = ("patient", "outcome", "kind", "origin_latent", "latent")
    return {k: np.asarray(v, dtype=int if k in ints else float) for k, v in rows.items()}


def observation_data(data: MilestoneData) -> dict[str, np.ndarray]:
    """The ``pm.Data`` values of the observations: a dataset with the same latent-time
    pattern swaps these in (``compiled.with_data``) without rebuilding the model."""
    obs = gap_observations(data)
    return {"obs_kind": obs["kind"], "obs_time_lo": obs["lo"], "obs_time_hi": obs["hi"],
            "obs_origin": obs["origin"]}


def latent_pattern(data: MilestoneData) -> np.ndarray:
    """What of the observations is structure rather than data: the latent cells and the
    cells that start at a latent time."""
    obs = gap_observations(data)
    return np.stack([obs["latent"], obs["origin_latent"]])


def censored_gap_terms(family: str, kind, lo, hi, origin, eta, sigma):
    """Log-likelihood of each gap by its censoring kind (a data array): exact ``log f``,
    right-censored ``log S``, interval-censored ``log(S(L)-S(R))`` (left-censored when
    ``L <= origin``); 0 for ``NONE`` and ``LATENT`` (latent gaps are added separately).

    ``eta`` may carry a trailing axis (quadrature nodes); the data arrays broadcast over it.
    Every branch is evaluated on every cell; the arguments of the branches a cell does not
    take are replaced by safe values first, so their gradients stay finite.
    """
    if eta.ndim == 2:
        kind, lo, hi, origin, sigma = (x[:, None] for x in (kind, lo, hi, origin, sigma))
    log_gap = pt.log(hi - origin)
    gap_lo = lo - origin
    has_lo = pt.eq(kind, INTERVAL) & (gap_lo > 0)
    log_s = families.log_survival(family, log_gap, eta, sigma)
    log_s_lo = pt.switch(has_lo, families.log_survival(
        family, pt.log(pt.switch(has_lo, gap_lo, 1.0)), eta, sigma), 0.0)
    interval = log_s_lo + families.log1mexp(
        pt.switch(pt.eq(kind, INTERVAL), log_s - log_s_lo, -1.0))
    return pt.switch(pt.eq(kind, EXACT), families.log_density(family, log_gap, eta, sigma),
                     pt.switch(pt.eq(kind, RIGHT), log_s,
                               pt.switch(pt.eq(kind, INTERVAL), interval, 0.0)))


# adaptive Gauss-Hermite quadrature of the frailty (``frailty = "integrated"``): Newton steps
# from 0 towards the mode of each patient's log integrand (concave: every term is log-concave
# in the location for these families), each step the best of several multiples of the Newton
# step (a line search evaluated at once, so a step never goes downhill or to a non-finite
# value, and a far mode on the steep side of a Weibull term, where a Newton step covers one
# dispersion, is reached in a few steps); then this many nodes scaled by the curvature at
# the mode. Chosen by measurement: accuracy in tests/unit/test_integrated_frailty.py, cost in
# benchmarks/RESULTS.md
AGQ_NODES = 11
NEWTON_STEPS = 6


def integrated_frailty(gap_loglik, eta_fixed, obs_patient, n: int, sigma_patient):
    r"""Per-patient log-likelihood with the frailty integrated out, and the mode and
    curvature scale of each patient's frailty given their data.

    For patient :math:`i` with gap terms :math:`h_i(u) = \sum_k \ell_{ik}(\eta_{ik} + u)`,
    :math:`g_i(u) = h_i(u) + \log\phi(u; 0, \sigma_{patient})`, mode :math:`\hat u_i` and
    :math:`s_i = (-g_i''(\hat u_i))^{-1/2}`,

    .. math::  \log \int e^{g_i(u)} du \approx \log \sqrt2 s_i
               + \log\sum_j w_j e^{x_j^2} e^{g_i(\hat u_i + \sqrt2 s_i x_j)}

    with Gauss-Hermite nodes :math:`x_j` and weights :math:`w_j` (Liu & Pierce 1994; lme4's
    ``nAGQ``). ``gap_loglik(eta)`` gives the gap terms for ``eta`` of shape (obs,) or
    (obs, nodes).

    The mode is found by ``NEWTON_STEPS`` Newton steps from 0, each moving to the best
    finite point among ``STEP_MULTIPLES`` of the Newton step (0 included: never downhill).
    The curvature is bounded by the prior's, :math:`g_i'' \le -1/\sigma_{patient}^2`, which
    holds exactly for log-concave terms and keeps every step and scale finite where a term's
    second derivative overflows. A node whose term is not a number (both survival
    probabilities of an interval underflow) contributes 0 to the integral.
    """
    inv_var = 1.0 / sigma_patient**2
    multiples = pt.as_tensor(STEP_MULTIPLES)

    def log_integrand(u):                          # g at u of shape (n, k)
        terms = nan_to(gap_loglik(eta_fixed[:, None] + u[obs_patient]), -np.inf)
        return patient_sum(terms, obs_patient, n) - 0.5 * u**2 * inv_var

    def slope_and_curvature(u):                    # g' and g'' (bounded) at u of shape (n,)
        eta = eta_fixed + u[obs_patient]
        d1 = pt.grad(gap_loglik(eta).sum(), eta)
        d2 = pt.grad(d1.sum(), eta)
        slope = patient_sum(d1, obs_patient, n) - u * inv_var
        curvature = pt.minimum(nan_to(patient_sum(d2, obs_patient, n), 0.0), 0.0)
        return slope, curvature - inv_var

    u = pt.zeros(n)
    for _ in range(NEWTON_STEPS):
        slope, curvature = slope_and_curvature(u)
        step = nan_to(-slope / curvature, 0.0)
        candidates = u[:, None] + step[:, None] * multiples[None, :]          # (n, steps)
        values = nan_to(log_integrand(candidates), -np.inf)
        best = pt.argmax(values, axis=1)
        u = candidates[pt.arange(n), best]
    _, curvature = slope_and_curvature(u)
    scale = 1.0 / pt.sqrt(-curvature)
    # the rule's centre and width are where the nodes go, not part of the integral: the
    # sampler's gradient does not follow them through the Newton steps (a far cheaper
    # gradient; the log density itself is exact, and leapfrog steps with any force field
    # stay reversible and volume-preserving, so NUTS still targets the right posterior)
    u, scale = stop_gradient(u), stop_gradient(scale)
    x, w = np.polynomial.hermite.hermgauss(AGQ_NODES)
    nodes = u[:, None] + np.sqrt(2.0) * scale[:, None] * x[None, :]             # (n, Q)
    log_prior_norm = -pt.log(sigma_patient) - 0.5 * np.log(2 * np.pi)
    weighted = log_integrand(nodes) + log_prior_norm + (np.log(w) + x**2)[None, :]
    loglik = pt.logsumexp(weighted, axis=1) + np.log(np.sqrt(2.0)) + pt.log(scale)
    return loglik, u, scale


# "auto": the frailty is centred when the median patient has at least this many milestones
# observed (exactly or in an interval) and the series has at least this many patients
CENTRED_FROM_OBSERVED = 2
CENTRED_FROM_PATIENTS = 100


def frailty_form(data: MilestoneData, spec: ModelSpec) -> str:
    """How the shared frailty is sampled: the spec's choice, or ("auto") centred when the
    median patient has at least ``CENTRED_FROM_OBSERVED`` milestones observed and there
    are at least ``CENTRED_FROM_PATIENTS`` patients, else non-centred. Several observed gaps
    inform each patient's frailty and many patients pin ``sigma_patient``: the non-centred
    form then mixes slowly; with fewer of either, the centred form has a funnel
    (Papaspiliopoulos, Roberts & Skold 2007; Betancourt & Girolami 2015). On the varied
    designs of ``validation/designs/`` the centred form failed at first on every design of
    20 to 58 patients with several milestones observed, and the non-centred one at 206."""
    if spec.frailty != "auto":
        return spec.frailty
    observed = np.isin(data.kind, (EXACT, INTERVAL, LATENT)).sum(axis=1)
    return ("centred" if np.median(observed) >= CENTRED_FROM_OBSERVED
            and data.n_patients >= CENTRED_FROM_PATIENTS else "non_centred")


# where a failed fit's worst parameters (R-hat, bulk and tail ESS) point at the frailty's
# own scale, or the sampler reports divergences or a low E-BFMI: signs of a funnel, which
# the non-centred form removes
FRAILTY_SCALE_PARAMETERS = ("sigma_patient", "frailty")
FUNNEL_GATES = ("divergences", "ebfmi")
# the gates that name their worst parameter (diagnostics: "<gate>_<max|min>_at")
WORST_AT = (("r_hat", "max"), ("ess_bulk", "min"), ("ess_tail", "min"))


def retry_frailty_spec(data: MilestoneData, spec: ModelSpec,
                       gates: dict | None = None) -> ModelSpec | None:
    """The spec the retry ladder tries after a fit with a sampled frailty failed its
    ``gates`` (None when there is no other form): the other of the form used (centred <->
    non-centred), except for a centred frailty on ``CENTRED_FROM_PATIENTS`` patients or more
    whose failed gates' worst parameters are all population effects (intercepts, group and
    covariate effects, cells), not ``sigma_patient`` or a frailty, with no divergence or
    E-BFMI gate failed: that one is hierarchically centred.

    With many patients the centred form's intercepts, group effects and mean frailty are
    strongly correlated, and the population effects mix slowly; the hierarchically centred
    form takes the mean frailty out of that block. Where the frailty's spread mixes slowly,
    the centred form has a funnel, which the hierarchically centred form keeps and the
    non-centred form removes. On the varied designs that reach this step, design 14 failed
    on the intercepts and passes hierarchically centred; designs 23, 26 and 29 failed on
    ``sigma_patient`` and fail hierarchically centred (``benchmarks/RESULTS.md``, "2,500
    patients")."""
    used = dataclasses.replace(spec, frailty=frailty_form(data, spec))
    failed = {f["gate"] for f in (gates or {}).get("failures", [])}
    worst = [str(gates.get(f"{gate}_{end}_at", "")) for gate, end in WORST_AT if gate in failed]
    if (used.frailty == "centred" and data.n_patients >= CENTRED_FROM_PATIENTS
            and len(spec.outcomes) >= 2 and any(worst) and not failed & set(FUNNEL_GATES)
            and not any(name.split("[")[0] in FRAILTY_SCALE_PARAMETERS for name in worst)):
        return dataclasses.replace(used, frailty="hierarchically_centred")
    return used.other_frailty()


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
        obs_kind = pm.Data("obs_kind", obs["kind"], dims="obs")
        obs_hi = pm.Data("obs_time_hi", obs["hi"], dims="obs")
        obs_lo = pm.Data("obs_time_lo", obs["lo"], dims="obs")
        obs_origin = pm.Data("obs_origin", obs["origin"], dims="obs")
        alpha = create_prior_variable(prior_set, "intercept", "intercept", dims="outcome")
        sigma = create_prior_variable(prior_set, "dispersion", "dispersion", dims="outcome")
        base = group_effects(data.design, prior_set, n, spec.cell_deviations)
        # a frailty is identified only by several milestones per patient
        frailty_kind = frailty_form(data, spec) if k_count > 1 else "none"
        location, intercepts, sigma_patient = patient_locations(frailty_kind, prior_set,
                                                                base, alpha)
        eta = location[obs_patient] + intercepts[obs_outcome]
        scale = sigma[obs_outcome]
        origin = obs_origin
        if latent:
            v = pm.Uniform("v_latent", 0.0, 1.0, dims="latent")
            # latent times milestone by milestone, each milestone's cells at once, so a
            # latent time may start at an earlier milestone's latent time (one graph step
            # per milestone, not per cell: the graph and its gradient stay small)
            t_latent = pt.zeros(len(latent))
            origin_of = obs["origin_latent"]
            row_of = np.empty(len(latent), int)
            row_of[obs["latent"][obs["latent"] >= 0]] = np.flatnonzero(obs["latent"] >= 0)
            milestone_of = np.array([k for _, k in latent])
            for k in np.unique(milestone_of):
                cells = np.flatnonzero(milestone_of == k)
                rows = row_of[cells]
                after = origin_of[rows] >= 0
                start = pt.switch(after, t_latent[np.where(after, origin_of[rows], 0)],
                                  obs_origin[rows])
                lo_eff = pt.maximum(obs_lo[rows], start)
                t_latent = pt.set_subtensor(t_latent[cells],
                                            lo_eff + (obs_hi[rows] - lo_eff) * v[cells])
            uses = np.flatnonzero(origin_of >= 0)
            origin = pt.set_subtensor(obs_origin[uses], t_latent[origin_of[uses]])
        idx = np.flatnonzero(obs["kind"] == LATENT)

        def gap_loglik(eta):
            """Every gap's term for locations ``eta`` ((obs,) or (obs, nodes))."""
            terms = censored_gap_terms(family, obs_kind, obs_lo, obs_hi, origin, eta, scale)
            if not idx.size:
                return terms
            o, hi = origin[idx], obs_hi[idx]
            lo_eff = pt.maximum(obs_lo[idx], o)
            t = lo_eff + (hi - lo_eff) * v[obs["latent"][idx]]
            extra = (lambda x: x[:, None]) if eta.ndim == 2 else (lambda x: x)
            return pt.set_subtensor(terms[idx], families.log_density(
                family, extra(pt.log(t - o)), eta[idx], extra(scale[idx]))
                + extra(pt.log(hi - lo_eff)))

        add_patient_likelihood(frailty_kind, gap_loglik, eta, obs_patient, n, sigma_patient)
    return model


def patient_locations(frailty_kind: str, prior_set: PriorSet, fixed, alpha):
    """(each patient's location: ``fixed`` (group and covariate effects) plus the sampled
    frailty; the intercepts ``alpha`` less the part of them the location carries;
    ``sigma_patient``, or None), inside a model context. A patient's linear predictor for
    outcome ``k`` is ``location + intercepts[k]``.

    Hierarchically centred (Gelfand, Sahu & Carlin 1995): the location is sampled around
    ``fixed`` plus the mean intercept, and ``frailty`` is what it adds to them. The joint
    density is the centred form's under a shear of unit Jacobian, so the posterior is the
    same. The group effects and the mean intercept enter the likelihood only through the
    locations, which the data pin when each patient has several milestones observed; the
    correlation of the intercepts, group effects and mean frailty that the centred form
    shows with many patients becomes a linear regression of the locations
    (``benchmarks/RESULTS.md``, "2,500 patients: the frailty hierarchically centred")."""
    if frailty_kind != "hierarchically_centred":
        frailty, sigma_patient = sampled_frailty(frailty_kind, prior_set)
        return fixed + frailty, alpha, sigma_patient
    sigma_patient = create_prior_variable(prior_set, "sigma_patient", "sigma_patient")
    carried = alpha.mean()
    location = pm.Normal("patient_location", fixed + carried, sigma_patient, dims="patient")
    pm.Deterministic("frailty", location - fixed - carried, dims="patient")
    return location, alpha - carried, sigma_patient


def sampled_frailty(frailty_kind: str, prior_set: PriorSet):
    """(the sampled frailty of each patient, or 0; ``sigma_patient``, or None), inside a
    model context; an integrated frailty is added by :func:`add_patient_likelihood`, a
    hierarchically centred one by :func:`patient_locations`."""
    if frailty_kind == "none":
        return 0.0, None
    sigma_patient = create_prior_variable(prior_set, "sigma_patient", "sigma_patient")
    if frailty_kind == "centred":
        return pm.Normal("frailty", 0.0, sigma_patient, dims="patient"), sigma_patient
    if frailty_kind == "non_centred":
        z_patient = pm.Normal("z_patient", 0.0, 1.0, dims="patient")
        return (pm.Deterministic("frailty", sigma_patient * z_patient, dims="patient"),
                sigma_patient)
    return 0.0, sigma_patient


def add_patient_likelihood(frailty_kind: str, gap_loglik, eta, obs_patient, n: int,
                           sigma_patient) -> None:
    """``loglik_patient`` (each patient's log-likelihood: marginal over the frailty when it
    is integrated out, else conditional on it) and the likelihood term, inside a model."""
    if frailty_kind == "integrated":
        per_patient, mode, spread = integrated_frailty(gap_loglik, eta, obs_patient, n,
                                                       sigma_patient)
        pm.Deterministic("frailty_mode", mode, dims="patient")
        pm.Deterministic("frailty_sd", spread, dims="patient")
    else:
        per_patient = patient_sum(gap_loglik(eta), obs_patient, n)
    patient_likelihood(per_patient, n)


def patient_likelihood(per_patient, n: int, constant=None) -> None:
    """``loglik_patient`` and the likelihood term, inside a model: the sum of each patient's
    log-likelihood times ``patient_weight``, data that is 1 for every patient. An exact
    leave-one-out refit (:mod:`jdmbayes.kinds.exact_loo`) sets a patient's weight to 0 and
    samples the same compiled model; ``loglik_patient`` keeps that patient's term, which
    the refit's draws then predict. (1 x a term is the term exactly: a fit with every
    weight 1 gives the numbers it gave without weights.) ``constant`` (per patient, of the
    data only) is added to ``loglik_patient`` and left out of the sampler's log density,
    which it would not change but costs time at every step."""
    pm.Deterministic("loglik_patient", per_patient if constant is None
                     else per_patient + constant, dims="patient")
    weight = pm.Data("patient_weight", np.ones(n), dims="patient")
    pm.Potential("likelihood", (weight * per_patient).sum())
