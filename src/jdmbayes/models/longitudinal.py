r"""Hierarchical model of one measure over visits, with change grouped by drug and dose.

Model
-----
For patient :math:`i` at week :math:`t_{ij}` (baseline :math:`t=0` is part of the
trajectory, so a patient with a missing baseline still contributes):

.. math::

    \mu_{ij} &= \alpha + \sigma_{int} u_i + \Delta_i\, h(t_{ij}),\qquad
    h(t) = 1 - e^{-t/\tau}, \\
    \Delta_i &= \delta + x^{grp}_i{}^\top\beta_{group} + \sigma_{cell} z_{c(i)}
                + x^{cov}_i{}^\top \beta_{cov} + \sigma_{change} w_i, \\
    u_i, w_i, z_c &\sim \mathcal N(0,1) \quad\text{(non-centred; cells centred by spec)},

:math:`\Delta_i` is the patient's change from baseline at the plateau, approached with time
constant :math:`\tau` (weeks). With ``random_change = false`` in the spec the term
:math:`\sigma_{change} w_i` is left out: with only a baseline and one later value per patient
it cannot be told apart from the residual noise. Likelihoods that respect the scale:

* ``beta_binomial`` (logit link, bounded count on 0..N):
  :math:`y_{ij}\sim\mathrm{BetaBinomial}(N, p\phi, (1-p)\phi)`, :math:`p=\mathrm{logit}^{-1}\mu`;
* ``censored_normal`` (identity link on :math:`y/N`): :math:`y_{ij}/N` normal with SD
  :math:`\sigma` censored at 0 and 1 (floor and ceiling);
* ``lognormal`` (log link): :math:`\log y_{ij}\sim\mathcal N(\mu_{ij},\sigma)`.

Missing values are left out of the likelihood (they stay in the data with their notes).

Data
----
:class:`jdmbayes.indexing.LongitudinalData`.

References
----------
Verbeke & Molenberghs (2000), *Linear Mixed Models for Longitudinal Data*; Najera-Zuloaga,
Lee & Arostegui (2018), *Stat Methods Med Res* 27:2261 (beta-binomial mixed models for
bounded scores); Lovell et al. (1999) *Arthritis Rheum* 42:2213 (CMAS).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from jdmbayes.models.indexing import LongitudinalData
from jdmbayes.models.milestones import group_coords, group_effects
from jdmbayes.models.priors import create_prior_variable
from jdmbayes.models.spec import ModelSpec, PriorSet


def observation_logp(likelihood: str, value, mu, noise, upper):
    """Elementwise log-likelihood of the observed values (PyTensor)."""
    if likelihood == "beta_binomial":
        p = pm.math.invlogit(mu)
        dist = pm.BetaBinomial.dist(n=int(upper), alpha=p * noise, beta=(1 - p) * noise)
        return pm.logp(dist, value)
    if likelihood == "censored_normal":
        dist = pm.Censored.dist(pm.Normal.dist(mu, noise), lower=0.0, upper=1.0)
        # interior values are densities of y/N (Jacobian 1/N); the floor and ceiling are
        # probability masses and take no Jacobian
        interior = (value > 0) & (value < upper)
        return pm.logp(dist, value / upper) - pt.switch(interior, np.log(upper), 0.0)
    if likelihood == "lognormal":
        return pm.logp(pm.LogNormal.dist(mu, noise), value)
    raise ValueError(f"unknown likelihood {likelihood!r}")


def build_longitudinal_model(data: LongitudinalData, spec: ModelSpec,
                             prior_set: PriorSet) -> pm.Model:
    """The PyMC model of ``spec`` on ``data`` (not sampled)."""
    n = data.n_patients
    coords = {"patient": np.arange(1, n + 1), "obs": np.arange(len(data.value)),
              **group_coords(data.design)}
    with pm.Model(coords=coords) as model:
        patient = pm.Data("obs_patient", data.patient, dims="obs")
        week = pm.Data("obs_week", data.week, dims="obs")
        value = pm.Data("obs_value", data.value, dims="obs")
        alpha = create_prior_variable(prior_set, "intercept", "intercept")
        sigma_intercept = create_prior_variable(prior_set, "sigma_intercept", "sigma_intercept")
        u = pm.Normal("z_intercept", 0.0, 1.0, dims="patient")
        baseline = pm.Deterministic("baseline", alpha + sigma_intercept * u, dims="patient")
        delta = create_prior_variable(prior_set, "change", "change")
        change = delta + group_effects(data.design, prior_set, n, spec.cell_deviations)
        if spec.random_change:
            sigma_change = create_prior_variable(prior_set, "sigma_change", "sigma_change")
            w = pm.Normal("z_change", 0.0, 1.0, dims="patient")
            change = change + sigma_change * w
        change = pm.Deterministic("patient_change", change, dims="patient")
        tau = create_prior_variable(prior_set, "tau_weeks", "tau_weeks")
        noise = create_prior_variable(prior_set, "noise", "noise")
        mu = baseline[patient] + change[patient] * (1 - pt.exp(-week / tau))
        terms = observation_logp(spec.likelihood, value, mu, noise, spec.upper or 1.0)
        per_patient = pt.inc_subtensor(pt.zeros(n)[patient], terms)
        per_patient = pm.Deterministic("loglik_patient", per_patient, dims="patient")
        pm.Potential("likelihood", per_patient.sum())
    return model
