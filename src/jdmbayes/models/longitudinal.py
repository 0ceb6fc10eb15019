r"""Hierarchical model of one measure over visits, with change grouped by drug and dose.

Model
-----
For patient :math:`i` at week :math:`t_{ij}` (baseline :math:`t=0` is part of the
trajectory, so a patient with a missing baseline still contributes):

.. math::

    \mu_{ij} &= \alpha + \sigma_{int} u_i + \Delta_i\, h(t_{ij}) + g(t_{ij}), \\
    \Delta_i &= \delta + x^{grp}_i{}^\top\beta_{group} + \sigma_{cell} z_{c(i)}
                + x^{cov}_i{}^\top \beta_{cov} + \sigma_{change} w_i, \\
    w_i &= \rho\, u_i + \sqrt{1-\rho^2}\, v_i, \qquad u_i, v_i, z_c \sim \mathcal N(0,1),

sampled non-centred (:math:`u_i, v_i`), centred (the baseline, then the change given the
baseline), with the baseline centred and the change non-centred (``centred_baseline``:
the baseline, then :math:`v_i`), with each patient's level at the mean of their own
:math:`h` centred and the change given it non-centred (``centred_level``:
:func:`level_and_change`), or integrated out of the likelihood (``integrated``:
exact for a log-normal measure, :func:`gaussian_marginal`; by adaptive Gauss-Hermite
quadrature for a bounded score, below), by spec ``patient_effects``
or from the data (``auto``: :func:`patient_effects_form`); cell deviations are centred or
not by spec,

with the time shape :math:`h` of the spec (``shape``; :math:`g = 0` but for the spline):

* ``plateau`` (default): :math:`h(t) = 1 - e^{-t/\tau}`; :math:`\Delta_i` is the change at
  the plateau, approached with time constant :math:`\tau` (weeks);
* ``linear``: :math:`h(t) = t / T` with :math:`T` the spec's ``final_week``: :math:`\Delta_i`
  is the change by week :math:`T`;
* ``spline``: :math:`h(t) = t/T` and :math:`g(t) = \sum_k \theta_k D_k(t)`, a cubic
  B-spline in time with the spec's interior ``knots`` (as R's ``bs()``), written as its
  departure from the straight line: every :math:`D_k` is 0 at baseline and at week
  :math:`T`, so :math:`\Delta_i` is again the change by week :math:`T`. The smooth
  departure (``spline_coef`` :math:`\theta`) is shared by all patients and groups and
  added to the line, as ``y ~ bs(t) + arm:t + (t | id)`` would be in lme4 (groups and
  patients differ in their slopes; the curve's bend is common).

Patient baseline and change are correlated with :math:`\rho` (spec ``correlation = true``,
the default: :math:`(\rho+1)/2 \sim \mathrm{Beta}(\eta,\eta)`, which is the LKJ(:math:`\eta`)
prior of a 2 x 2 correlation), or independent (:math:`\rho = 0`). With ``random_change =
false`` the term :math:`\sigma_{change} w_i` is left out: with only a baseline and one later
value per patient it cannot be told apart from the residual noise. Likelihoods that respect
the scale:

* ``beta_binomial`` (logit link, bounded count on 0..N):
  :math:`y_{ij}\sim\mathrm{BetaBinomial}(N, p\phi, (1-p)\phi)`, :math:`p=\mathrm{logit}^{-1}\mu`;
* ``censored_normal`` (identity link on :math:`y/N`): :math:`y_{ij}/N` normal with SD
  :math:`\sigma` censored at 0 and 1 (floor and ceiling);
* ``lognormal`` (log link): :math:`\log y_{ij}\sim\mathcal N(\mu_{ij},\sigma)`.

Missing values are left out of the likelihood (they stay in the data with their notes).

Integrated patient effects (log-normal)
---------------------------------------
On the log scale :math:`r_i = \log y_i - \alpha - m_i h_i - g_i` (:math:`m_i` the change
without the patient effect, :math:`h_i, g_i` at the patient's visits) is
:math:`\mathcal N(0,\; \sigma^2 I + Z_i \Sigma Z_i^\top)` with :math:`Z_i = [1, h_i]` and
:math:`\Sigma` the covariance of :math:`(\sigma_{int} u_i, \sigma_{change} w_i)`. With
:math:`G_i = Z_i^\top Z_i`, :math:`k_i = Z_i^\top r_i` and :math:`B_i = \sigma^2 I + G_i
\Sigma` (a 2 x 2 matrix per patient):

.. math::

    \log p(y_i) = -\tfrac12\big[n_i \log(2\pi\sigma^2) + \log\det(B_i/\sigma^2)
    + (r_i^\top r_i - k_i^\top \Sigma B_i^{-1} k_i)/\sigma^2\big] - \textstyle\sum_j
    \log y_{ij},

the marginal likelihood of the linear mixed model on the log scale (Woodbury's identity and
the matrix determinant lemma; Verbeke & Molenberghs 2000, ch. 5). The sampler sees only the
population parameters; each patient's baseline and change are drawn afterwards from their
exact conditional law, normal with mean :math:`\Sigma B_i^{-1} k_i` and covariance
:math:`\sigma^2 \Sigma B_i^{-1}`
(:func:`jdmbayes.estimands.longitudinal.conditional_patient_effects`), and
``loglik_patient`` is the marginal log-likelihood of each patient, as patient-level LOO
needs.

Integrated patient effects (bounded scores, by spec)
---------------------------------------------------
With :math:`\mu_{ij} = c_{ij} + a_{ij} u_i + b_{ij} v_i`, :math:`c_{ij} = \alpha + m_i
h_{ij} + g_{ij}`, :math:`a_{ij} = \sigma_{int} + \sigma_{change}\rho h_{ij}` and
:math:`b_{ij} = \sigma_{change}\sqrt{1-\rho^2} h_{ij}`, each patient's likelihood is
integrated over the standard normal :math:`(u_i, v_i)` by adaptive Gauss-Hermite
quadrature (:func:`jdmbayes.models.quadrature.integrated_patient_effects`: 5 x 5 points
on each patient's Laplace approximation); ``loglik_patient`` is that marginal
log-likelihood. Each patient's baseline and change are drawn afterwards from their
conditional law (Laplace proposals corrected by independence Metropolis-Hastings:
:func:`jdmbayes.estimands.patient_marginal.laplace_corrected_effects`).

Data
----
:class:`jdmbayes.indexing.LongitudinalData`.

References
----------
Verbeke & Molenberghs (2000), *Linear Mixed Models for Longitudinal Data*; Lewandowski,
Kurowicka & Joe (2009), *J Multivariate Anal* 100:1989 (LKJ); Najera-Zuloaga,
Lee & Arostegui (2018), *Stat Methods Med Res* 27:2261 (beta-binomial mixed models for
bounded scores); Lovell et al. (1999) *Arthritis Rheum* 42:2213 (CMAS).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc.distributions.dist_math import normal_lcdf
from scipy.interpolate import BSpline

from jdmbayes.models.indexing import LongitudinalData
from jdmbayes.models.lgamma import gammaln
from jdmbayes.models.milestones import group_coords, group_effects, patient_likelihood
from jdmbayes.models.priors import create_prior_variable
from jdmbayes.models.quadrature import integrated_patient_effects
from jdmbayes.models.spec import ModelSpec, PriorSet


def observation_logp(likelihood: str, value, mu, noise, upper):
    """Elementwise log-likelihood of the observed values (PyTensor): the part that depends
    on the parameters (:func:`observation_kernel`) plus the part that depends on the data
    only (:func:`data_constant`)."""
    return (observation_kernel(likelihood, value, mu, noise, upper)
            + data_constant(likelihood, value, upper))


def observation_kernel(likelihood: str, value, mu, noise, upper):
    """The terms of :func:`observation_logp` that depend on the parameters (PyTensor): what
    the sampler's log density needs. The beta-binomial's is written out: ``pm.logp`` of
    ``pm.BetaBinomial`` evaluates 9 log-gamma functions per value at every step (3 of the
    data only, and log Gamma(a + b), which is the scalar log Gamma(phi) here), this form 4;
    the log density and gradient of a 300-patient score cost 1.5 times less
    (benchmarks/RESULTS.md). The censored normal is written out because ``pm.logp`` of a
    ``pm.Censored`` leaves the random generators of its clipped draw in the graph, which
    nutpie cannot compile."""
    if likelihood == "beta_binomial":
        # a Python number would become a float32 constant
        upper = np.float64(upper)
        noise = np.float64(noise) if isinstance(noise, (int, float)) else noise
        p = pm.math.invlogit(mu)
        a, b = p * noise, (1 - p) * noise
        return (gammaln(value + a) + gammaln(upper - value + b) - gammaln(upper + noise)
                - gammaln(a) - gammaln(b) + gammaln(noise))
    if likelihood == "censored_normal":
        return integrand_logp(likelihood, value, mu, noise, upper)
    if likelihood == "lognormal":
        return pm.logp(pm.LogNormal.dist(mu, noise), value)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def data_constant(likelihood: str, value, upper):
    """The terms of :func:`observation_logp` that depend on the data only (PyTensor): the
    beta-binomial's log binomial coefficient, 0 for the others. Left out of the sampler's
    log density, added to each patient's log-likelihood (``loglik_patient``)."""
    if likelihood == "beta_binomial":
        upper = np.float64(upper)
        return gammaln(upper + 1) - gammaln(value + 1) - gammaln(upper - value + 1)
    return pt.zeros_like(value, dtype="float64")


def integrand_logp(likelihood: str, value, mu, noise, upper):
    """Elementwise log-likelihood of bounded-score values written directly in ``mu``
    (PyTensor), so its derivatives in ``mu`` exist for the quadrature's Newton steps; equal
    to :func:`observation_logp` (tests/unit/test_integrated_effects.py)."""
    if likelihood == "beta_binomial":
        return observation_logp(likelihood, value, mu, noise, upper)
    if likelihood == "censored_normal":
        upper = np.float64(upper)   # a Python number would become a float32 constant
        # interior values are densities of y/N (Jacobian 1/N); the floor and ceiling are
        # probability masses and take no Jacobian
        y = value / upper
        interior = -0.5 * ((y - mu) / noise) ** 2 - pt.log(noise) - 0.5 * np.log(2 * np.pi)
        return pt.switch(value <= 0, normal_lcdf(mu, noise, 0.0),
                         pt.switch(value >= upper, normal_lcdf(-mu, noise, -1.0),
                                   interior - np.log(upper)))
    raise ValueError(f"no integrated form for likelihood {likelihood!r}")


SPLINE_GRID = 400   # points on which the spline's departure basis is orthonormalised


@dataclass(frozen=True)
class TimeShape:
    """The time shape :math:`h(t)` of a spec on a series: its kind, the reference week
    :math:`T` and, for a spline, the knots and the time domain of the basis."""

    kind: str
    reference: float
    knots: tuple[float, ...] = ()
    upper: float = 1.0

    def departure_basis(self, week) -> np.ndarray:
        """(len(week), q) spline departures from the straight line, 0 at weeks 0 and T,
        orthonormal on a grid over [0, upper] (RMS 1 per column); weeks beyond the domain
        keep the value at its end."""
        week = np.clip(np.atleast_1d(np.asarray(week, float)), 0.0, self.upper)
        return self._raw(week) @ self._orthonormal

    @cached_property
    def _orthonormal(self) -> np.ndarray:
        """(p, q) map from the raw departures to orthonormal columns on the grid (computed
        once per shape: the estimands evaluate the basis week by week)."""
        grid = np.linspace(0.0, self.upper, SPLINE_GRID)
        _, singular, vt = np.linalg.svd(self._raw(grid), full_matrices=False)
        rank = int((singular > 1e-8 * singular[0]).sum())
        return vt[:rank].T * (np.sqrt(SPLINE_GRID) / singular[:rank])

    def _raw(self, week: np.ndarray) -> np.ndarray:
        inner = [k for k in self.knots if 0.0 < k < self.upper]
        knots = np.r_[[0.0] * 4, inner, [self.upper] * 4]

        def basis(t):
            return BSpline.design_matrix(t, knots, 3).toarray()

        at0, at_ref = basis(np.array([0.0])), basis(np.array([min(self.reference,
                                                                   self.upper)]))
        return basis(week) - at0 - (at_ref - at0) * (week[:, None] / self.reference)

    @property
    def n_coef(self) -> int:
        return self.departure_basis(np.array([0.0])).shape[1] if self.kind == "spline" else 0

    def values(self, week, post: dict) -> np.ndarray:
        """(S, len(week)) h at ``week`` for each posterior draw in ``post`` (NumPy): the
        multiplier of each patient's change."""
        week = np.atleast_1d(np.asarray(week, float))
        if self.kind == "plateau":
            return 1 - np.exp(-week[None, :] / post["tau_weeks"][:, None])
        return np.broadcast_to(week[None, :] / self.reference,
                               (post["intercept"].shape[0], week.size))

    def offset(self, week, post: dict) -> np.ndarray:
        """(S, len(week)) the spline's smooth departure from the line, added to every
        patient's trajectory (0 for the other shapes)."""
        week = np.atleast_1d(np.asarray(week, float))
        if self.kind != "spline":
            return np.zeros((post["intercept"].shape[0], week.size))
        return post["spline_coef"] @ self.departure_basis(week).T

    def mean(self, baseline, change, week, post: dict) -> np.ndarray:
        """Link-scale mean baseline + change h(week) + the spline's departure, with
        ``baseline`` and ``change`` broadcasting against (S, len(week)): one week for many
        patients, or each observation at its own week."""
        week = np.atleast_1d(np.asarray(week, float))
        return baseline + change * self.values(week, post) + self.offset(week, post)


# "auto": centred patient baselines from this many values per patient (median) on
CENTRED_FROM_VALUES = 5


# NUTS' target acceptance of a first attempt whose patient effects are sampled through each
# patient's level (centred_level: auto's form for a bounded score whose median patient has
# five or more values, where the data pin each patient's level, so no patient effect sits
# in a funnel): a quarter of the leapfrog steps of the default target (0.99) on the
# 300-patient score. The population spreads can still put the sampler in a funnel (varied
# design 14: divergences in the cell deviations at this target), so a failed gate is
# followed by the same fit at the default target (jdmbayes.kinds.fit.first_settings);
# benchmarks/RESULTS.md, "0.9 first where a patient's level is sampled"
LEVEL_TARGET_ACCEPT = 0.9
# tuning steps of that first attempt: nutpie's own default. On the 2,000-patient score a
# tuning draw after the 100th costs as many leapfrog steps as a kept one, and 300 steps cut
# sampling by a third with more effective draws; on small series the short attempt fails
# more often (5 of the 20 varied score designs, 25 to 71 patients, where 1,000 steps had
# passed), and the fit that follows a failed gate tunes as the settings say;
# benchmarks/RESULTS.md, "300 tuning steps first where a patient's level is sampled"
LEVEL_TUNE = 300


def patient_effects_form(data: LongitudinalData, spec: ModelSpec) -> str:
    """How patient baselines and changes are sampled: the spec's choice, or ("auto")
    integrated out for a log-normal measure (exact: :func:`gaussian_marginal`); otherwise
    each patient's level at the mean of their own h(t) centred and the change given it
    non-centred (``centred_level``) when the median patient has at least
    ``CENTRED_FROM_VALUES`` values, both non-centred when fewer.
    An effect the data pin down mixes slowly non-centred, one they leave loose has a funnel
    centred (Papaspiliopoulos, Roberts & Skold 2007; Betancourt & Girolami 2015). Every
    value informs the patient's level; a change is seen only through the values' spread in
    time, so it is often loose where the level is pinned (on a bounded score at 300 and 73
    patients with about 6 values each, the fully centred form failed R-hat where the
    baseline centred alone passed). The level is taken where the values are, as centring
    time does in a linear mixed model: with the baseline centred instead, the 300-patient
    score's baselines and changes had posterior correlations of -0.71 (median patient), and
    sampling took twice the leapfrog steps (``benchmarks/RESULTS.md``, "A patient's level
    where their values are"). A bounded score's effects integrated
    out by quadrature (by spec only) cost more per evaluation than their fewer leapfrog steps
    save, at 10 and at 300 patients (same file)."""
    if spec.patient_effects != "auto":
        return spec.patient_effects
    if spec.likelihood == "lognormal":
        return "integrated"
    return ("centred_level" if np.median(values_per_patient(data)) >= CENTRED_FROM_VALUES
            else "non_centred")


def values_per_patient(data: LongitudinalData) -> np.ndarray:
    """(n,) how many values each patient has: the sum ``n`` of :func:`gaussian_marginal`."""
    return np.bincount(data.patient, minlength=data.n_patients).astype(float)


def gaussian_marginal(sums: dict, var_int, cov, var_change, noise_var) -> dict:
    r"""Per-patient quantities of the marginal log-scale likelihood (module docstring) from
    the patient sums ``n`` (values), ``h``, ``hh``, ``r``, ``hr``, ``rr`` and the
    covariance :math:`\Sigma = [[var\_int, cov], [cov, var\_change]]`: ``logdet``
    :math:`\log\det(B_i/\sigma^2)` and the entries ``p11, p12, p22`` of :math:`\Sigma
    B_i^{-1}`. Plain arithmetic, so the same code serves the PyTensor model and the NumPy
    draws of the patient effects (``log`` is the only function, passed as ``sums['log']``)."""
    n, h, hh = sums["n"], sums["h"], sums["hh"]
    b11 = noise_var + n * var_int + h * cov
    b12 = n * cov + h * var_change
    b21 = h * var_int + hh * cov
    b22 = noise_var + h * cov + hh * var_change
    det = b11 * b22 - b12 * b21
    return {"logdet": sums["log"](det / noise_var**2),
            "p11": (var_int * b22 - cov * b21) / det,
            "p12": (cov * b11 - var_int * b12) / det,
            "p22": (var_change * b11 - cov * b12) / det}


def gaussian_loglik(sums: dict, parts: dict, noise_var, log_values):
    """(n,) marginal log-likelihood of each patient's values (module docstring)."""
    r, hr = sums["r"], sums["hr"]
    quad = parts["p11"] * r**2 + 2 * parts["p12"] * r * hr + parts["p22"] * hr**2
    return (-0.5 * (sums["n"] * sums["log"](2 * np.pi * noise_var) + parts["logdet"]
                    + (sums["rr"] - quad) / noise_var) - log_values)


def time_shape(data: LongitudinalData, spec: ModelSpec) -> TimeShape:
    """The spec's time shape on this series (the spline's domain covers every visit and the
    longest follow-up)."""
    upper = float(max(data.week.max(initial=0.0), data.followup.max(initial=0.0),
                      spec.final_week))
    return TimeShape(spec.shape, float(spec.final_week), tuple(spec.knots), upper)


def build_longitudinal_model(data: LongitudinalData, spec: ModelSpec,
                             prior_set: PriorSet) -> pm.Model:
    """The PyMC model of ``spec`` on ``data`` (not sampled)."""
    n = data.n_patients
    shape = time_shape(data, spec)
    coords = {"patient": np.arange(1, n + 1), "obs": np.arange(len(data.value)),
              **group_coords(data.design)}
    if shape.kind == "spline":
        coords["spline_basis"] = np.arange(1, shape.n_coef + 1)
    if patient_effects_form(data, spec) == "integrated":
        return build_integrated_model(data, spec, prior_set, shape, coords)
    with pm.Model(coords=coords) as model:
        patient = pm.Data("obs_patient", data.patient, dims="obs")
        week = pm.Data("obs_week", data.week, dims="obs")
        value = pm.Data("obs_value", data.value, dims="obs")
        alpha = create_prior_variable(prior_set, "intercept", "intercept")
        sigma_intercept = create_prior_variable(prior_set, "sigma_intercept", "sigma_intercept")
        form = patient_effects_form(data, spec)
        if form == "centred_level" and not spec.random_change:
            form = "centred_baseline"     # no change effect: the level is the baseline
        centred = form == "centred"
        if form == "centred_level":
            baseline = None               # built below from the level and the change
        elif form in ("centred", "centred_baseline"):
            baseline = pm.Normal("baseline", alpha, sigma_intercept, dims="patient")
            u = (baseline - alpha) / sigma_intercept
        else:
            u = pm.Normal("z_intercept", 0.0, 1.0, dims="patient")
            baseline = pm.Deterministic("baseline", alpha + sigma_intercept * u,
                                        dims="patient")
        delta = create_prior_variable(prior_set, "change", "change")
        change = delta + group_effects(data.design, prior_set, n, spec.cell_deviations)
        if form == "centred_level":
            # the level is taken at the mean of each patient's h: h is needed first
            h, offset = time_terms(shape, week, data, prior_set)
        if spec.random_change:
            sigma_change = create_prior_variable(prior_set, "sigma_change", "sigma_change")
            rho = 0.0
            if spec.correlation:
                lkj = create_prior_variable(prior_set, "lkj_corr", "lkj_corr")
                rho = pm.Deterministic("rho_baseline_change", 2.0 * lkj - 1.0)
            if form == "centred_level":
                baseline, change = level_and_change(
                    alpha, sigma_intercept, change, sigma_change, rho,
                    mean_per_patient(h, patient, data))
            elif centred:
                # change given baseline: the conditional of the bivariate normal
                change = pm.Normal("patient_change", change + sigma_change * rho * u,
                                   sigma_change * pt.sqrt(1.0 - rho**2), dims="patient")
            else:
                w = pm.Normal("z_change", 0.0, 1.0, dims="patient")
                if spec.correlation:
                    w = rho * u + pt.sqrt(1.0 - rho**2) * w
                change = change + sigma_change * w
        if not (centred and spec.random_change):
            change = pm.Deterministic("patient_change", change, dims="patient")
        if form != "centred_level":
            h, offset = time_terms(shape, week, data, prior_set)
        noise = create_prior_variable(prior_set, "noise", "noise")
        mu = baseline[patient] + change[patient] * h + offset
        upper = spec.upper or 1.0
        terms = observation_kernel(spec.likelihood, value, mu, noise, upper)
        constant = data_constant(spec.likelihood, value, upper)

        def per_patient(x):
            return pt.inc_subtensor(pt.zeros(n)[patient], x)

        patient_likelihood(per_patient(terms), n, constant=per_patient(constant))
    return model


def mean_per_patient(x, patient, data: LongitudinalData):
    """(n,) each patient's mean of ``x`` (one entry per value) over their values."""
    count = np.maximum(values_per_patient(data), 1.0)
    return pt.inc_subtensor(pt.zeros(data.n_patients)[patient], x) / count


def level_and_change(alpha, sigma_intercept, fixed_change, sigma_change, rho, h_mean):
    """Baselines and changes sampled through each patient's level at the mean of their
    own :math:`h`, :math:`a_i = b_i + \\bar h_i \\Delta_i` (``centred_level``).

    :math:`(a_i, \\Delta_i)` is the linear image of the bivariate normal
    :math:`(b_i, \\Delta_i)` under a shear of unit determinant, so it is bivariate normal:
    :math:`a_i \\sim \\mathcal N(\\alpha + \\bar h_i m_i, s_i^2)` with
    :math:`s_i^2 = \\sigma_{int}^2 + 2\\bar h_i\\rho\\sigma_{int}\\sigma_{change}
    + \\bar h_i^2\\sigma_{change}^2`, sampled centred, and :math:`\\Delta_i` given
    :math:`a_i` is normal with mean :math:`m_i + c_i (a_i - \\alpha - \\bar h_i m_i)/s_i^2`,
    :math:`c_i = \\rho\\sigma_{int}\\sigma_{change} + \\bar h_i\\sigma_{change}^2`, and SD
    :math:`\\sigma_{int}\\sigma_{change}\\sqrt{1-\\rho^2}/s_i`, sampled non-centred
    (``z_change``). The model is unchanged; only the coordinates differ. The data pin a
    patient's level where their values are and leave that patient's baseline and change
    negatively correlated with each other; taken at the level, as centring time does in a
    linear mixed model, the two sampled effects are nearly independent.
    """
    s_b, s_d = sigma_intercept, sigma_change
    mean_level = alpha + h_mean * fixed_change
    var_level = s_b**2 + 2 * h_mean * rho * s_b * s_d + h_mean**2 * s_d**2
    level = pm.Normal("level", mean_level, pt.sqrt(var_level), dims="patient")
    cov = rho * s_b * s_d + h_mean * s_d**2
    v = pm.Normal("z_change", 0.0, 1.0, dims="patient")
    change = (fixed_change + cov / var_level * (level - mean_level)
              + s_b * s_d * pt.sqrt(1.0 - rho**2) / pt.sqrt(var_level) * v)
    baseline = pm.Deterministic("baseline", level - h_mean * change, dims="patient")
    return baseline, change


def time_terms(shape: TimeShape, week, data: LongitudinalData, prior_set: PriorSet):
    """h(t) and the spline's departure g(t) at every value's week, inside a model (their
    parameters are created here)."""
    if shape.kind == "plateau":
        tau = create_prior_variable(prior_set, "tau_weeks", "tau_weeks")
        h = 1 - pt.exp(-week / tau)
    else:
        h = week / shape.reference
    offset = 0.0
    if shape.kind == "spline":
        basis = pm.Data("obs_spline_basis", shape.departure_basis(data.week),
                        dims=("obs", "spline_basis"))
        theta = create_prior_variable(prior_set, "spline_coef", "spline_coef",
                                      dims="spline_basis")
        offset = pt.dot(basis, theta)
    return h, offset


def build_integrated_model(data: LongitudinalData, spec: ModelSpec, prior_set: PriorSet,
                           shape: TimeShape, coords: dict) -> pm.Model:
    """The model with each patient's baseline and change integrated out of the likelihood
    (module docstring): the same parameters but the patient effects, the same priors.
    Exact for a log-normal measure; by adaptive Gauss-Hermite quadrature otherwise, which
    also records each patient's ``effect_mode`` and ``effect_chol`` (the Laplace
    approximation of the standardised effects given the data) for drawing them afterwards."""
    n = data.n_patients
    if spec.likelihood != "lognormal":
        coords = {**coords, "standard_effect": ["u", "v"],
                  "chol_entry": ["l11", "l21", "l22"]}
    with pm.Model(coords=coords) as model:
        patient = pm.Data("obs_patient", data.patient, dims="obs")
        week = pm.Data("obs_week", data.week, dims="obs")
        value = pm.Data("obs_value", data.value, dims="obs")
        alpha = create_prior_variable(prior_set, "intercept", "intercept")
        sigma_intercept = create_prior_variable(prior_set, "sigma_intercept", "sigma_intercept")
        delta = create_prior_variable(prior_set, "change", "change")
        change = delta + group_effects(data.design, prior_set, n, spec.cell_deviations)
        sigma_change, rho = 0.0, 0.0
        if spec.random_change:
            sigma_change = create_prior_variable(prior_set, "sigma_change", "sigma_change")
            if spec.correlation:
                lkj = create_prior_variable(prior_set, "lkj_corr", "lkj_corr")
                rho = pm.Deterministic("rho_baseline_change", 2.0 * lkj - 1.0)
        h, offset = time_terms(shape, week, data, prior_set)
        noise = create_prior_variable(prior_set, "noise", "noise")
        if spec.likelihood == "lognormal":
            loglik = lognormal_marginal(data, patient, value, alpha, change, h, offset,
                                        sigma_intercept, sigma_change, rho, noise)
        else:
            upper = spec.upper or 1.0

            def value_loglik(mu):
                return integrand_logp(spec.likelihood,
                                        value if mu.ndim == 1 else value[:, None], mu,
                                        noise, upper)

            loglik, mode, chol = integrated_patient_effects(
                value_loglik, alpha + change[patient] * h + offset,
                sigma_intercept + sigma_change * rho * h,
                sigma_change * pt.sqrt(1.0 - rho**2) * h, patient, n)
            pm.Deterministic("effect_mode", mode, dims=("patient", "standard_effect"))
            pm.Deterministic("effect_chol", chol, dims=("patient", "chol_entry"))
        patient_likelihood(loglik, n)
    return model


def lognormal_marginal(data: LongitudinalData, patient, value, alpha, change, h, offset,
                       sigma_intercept, sigma_change, rho, noise):
    """(n,) each patient's exact marginal log-likelihood of a log-normal measure (module
    docstring), inside a model."""
    n = data.n_patients
    count = pm.Data("patient_values", values_per_patient(data), dims="patient")
    log_value = pt.log(value)
    resid = log_value - alpha - change[patient] * h - offset

    def per_patient(x):
        return pt.inc_subtensor(pt.zeros(n)[patient], x)

    sums = {"n": count, "h": per_patient(h), "hh": per_patient(h * h),
            "r": per_patient(resid), "hr": per_patient(h * resid),
            "rr": per_patient(resid * resid), "log": pt.log}
    noise_var = noise**2
    parts = gaussian_marginal(sums, sigma_intercept**2, rho * sigma_intercept * sigma_change,
                              sigma_change**2, noise_var)
    return gaussian_loglik(sums, parts, noise_var, per_patient(log_value))
