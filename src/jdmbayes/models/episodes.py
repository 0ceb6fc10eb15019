r"""Hierarchical AFT model of recurrent episodes of one event (gap times) with a shared
patient frailty.

Model
-----
For patient :math:`i` and episode :math:`j` (at risk from its start :math:`s_{ij}`), the
gap :math:`G_{ij} = T_{ij} - s_{ij}` follows an AFT family
(:mod:`jdmbayes.models.families`):

.. math::

    \log G_{ij} &= \eta_{ij} + \sigma \varepsilon_{ij}, \\
    \eta_{ij} &= \alpha + \gamma_{j} + x^{grp}_i{}^\top \beta_{group} + \sigma_{cell} z_{c(i)}
                 + x^{cov}_i{}^\top \beta_{cov} + \sigma_{patient} u_i, \\
    u_i &\sim \mathcal N(0, 1), \quad \gamma_1 = 0,

with an optional episode-number effect :math:`\gamma_j` (``beta_episode``, spec
``episode_effect = true``: a log time ratio of episode :math:`j` against the first; with
``episode_effect_cap = c``, episodes :math:`j \ge c` share :math:`\gamma_c`) and the
group, cell and covariate effects of :mod:`jdmbayes.models.milestones`. Given the frailty,
episodes are independent, each with its own censoring: exact :math:`\log f`, right-censored
:math:`\log S`, interval-censored :math:`\log(S(L-s)-S(R-s))`. This is the gap-time frailty
model of recurrent events (a parametric form of the conditional gap-time models of Prentice,
Williams & Peterson 1981, with the shared frailty of Hougaard 2000). The frailty is sampled
(``non_centred``, ``centred``) or integrated out by adaptive Gauss-Hermite quadrature
(``integrated``: :func:`jdmbayes.models.milestones.integrated_frailty`); it is identified
only when some patient has two or more episodes, and left out otherwise.

Data
----
:class:`jdmbayes.models.episode_indexing.EpisodeData`.

References
----------
Prentice, Williams & Peterson (1981), *Biometrika* 68:373 (gap-time models);
Hougaard (2000), *Analysis of Multivariate Survival Data*, ch. 7-9;
Cook & Lawless (2007), *The Statistical Analysis of Recurrent Events*, ch. 4.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from jdmbayes.models.episode_indexing import EpisodeData
from jdmbayes.models.milestones import (
    add_patient_likelihood,
    censored_gap_terms,
    group_coords,
    group_effects,
    patient_locations,
)
from jdmbayes.models.priors import create_prior_variable
from jdmbayes.models.spec import ModelSpec, PriorSet


def episode_levels(data: EpisodeData, spec: ModelSpec) -> int:
    """How many episode numbers have their own effect level: up to the largest number seen,
    or to the spec's ``episode_effect_cap`` (later episodes share the cap's effect)."""
    cap = spec.episode_effect_cap or data.max_episode
    return min(cap, data.max_episode)


def episode_level(data: EpisodeData, spec: ModelSpec) -> np.ndarray:
    """(m,) effect level 1, 2, ... of each episode (its number, capped)."""
    return np.minimum(data.episode, episode_levels(data, spec))


def episode_labels(data: EpisodeData, spec: ModelSpec) -> list[str]:
    """Labels of the effect levels 2, 3, ... (``episode 3+`` for a cap that pools later
    episodes)."""
    levels = episode_levels(data, spec)
    return [f"episode {j}" + ("+" if j == levels and data.max_episode > levels else "")
            for j in range(2, levels + 1)]


def has_episode_effect(data: EpisodeData, spec: ModelSpec) -> bool:
    return spec.episode_effect and data.max_episode > 1


def frailty_form(data: EpisodeData, spec: ModelSpec) -> str:
    """The spec's frailty form, or ``none`` when no patient has two episodes."""
    return spec.frailty if (data.episodes_per_patient() > 1).any() else "none"


def observation_data(data: EpisodeData) -> dict[str, np.ndarray]:
    """The ``pm.Data`` values of the episodes (swapped in for simulated datasets)."""
    return {"obs_kind": data.kind, "obs_time_lo": data.lo, "obs_time_hi": data.hi,
            "obs_origin": data.start}


def build_episode_model(data: EpisodeData, spec: ModelSpec, prior_set: PriorSet) -> pm.Model:
    """The PyMC model of ``spec`` on ``data`` (not sampled)."""
    n, m = data.n_patients, len(data.kind)
    coords = {"patient": np.arange(1, n + 1), "outcome": [data.event], "obs": np.arange(m),
              **group_coords(data.design)}
    effect = has_episode_effect(data, spec)
    if effect:
        coords["episode"] = episode_labels(data, spec)
    with pm.Model(coords=coords) as model:
        obs_patient = pm.Data("obs_patient", data.patient, dims="obs")
        obs_kind = pm.Data("obs_kind", data.kind, dims="obs")
        obs_hi = pm.Data("obs_time_hi", data.hi, dims="obs")
        obs_lo = pm.Data("obs_time_lo", data.lo, dims="obs")
        obs_origin = pm.Data("obs_origin", data.start, dims="obs")
        alpha = create_prior_variable(prior_set, "intercept", "intercept", dims="outcome")
        sigma = create_prior_variable(prior_set, "dispersion", "dispersion", dims="outcome")
        base = group_effects(data.design, prior_set, n, spec.cell_deviations)
        frailty_kind = frailty_form(data, spec)
        location, intercepts, sigma_patient = patient_locations(frailty_kind, prior_set,
                                                                base, alpha)
        eta = location[obs_patient] + intercepts[0]
        if effect:
            levels = np.arange(2, episode_levels(data, spec) + 1)
            x_episode = pm.Data("x_episode", (episode_level(data, spec)[:, None]
                                              == levels[None, :]).astype(float),
                                dims=("obs", "episode"))
            beta_episode = create_prior_variable(prior_set, "beta_episode", "beta_episode",
                                                 dims="episode")
            eta = eta + pt.dot(x_episode, beta_episode)
        scale = pt.ones(m) * sigma[0]

        def gap_loglik(location):
            return censored_gap_terms(spec.family, obs_kind, obs_lo, obs_hi, obs_origin,
                                      location, scale)

        add_patient_likelihood(frailty_kind, gap_loglik, eta, obs_patient, n, sigma_patient)
    return model
