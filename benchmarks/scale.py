"""Scale benchmark: synthetic series of 25, 250 and 2,500 patients, three ordered milestones
and ten visits each, fitted with the package's own models (compile + tune + sample).

Patients are assigned a drug (2) and starting dose (2) at random; follow-up is uniform on
24-72 weeks; visits at weeks 0, 1, 2, 4, 8, 12, 24, 36, 48 and 60 within follow-up (every
patient has at least 7; ten when followed past week 60). Milestones are simulated from the
milestone model at known values and observed as the bundled series observes them (the
first two exactly, resolution between visits, right-censored at follow-up:
:mod:`jdmbayes.estimands.simulate`); CMAS-like scores (0..52, beta-binomial) at every visit.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd

VISITS = np.array([0, 1, 2, 4, 8, 12, 24, 36, 48, 60], dtype=float)
TRUTH = {"intercept": np.array([0.4, 0.8, 2.6]), "dispersion": np.array([0.5, 0.45, 0.8]),
         "beta_group": np.array([-0.1, -0.15]), "sigma_patient": 0.5,
         "cell_deviation": np.array([0.15, -0.1, -0.05, 0.1])}


def synthetic(n: int, seed: int):
    """(MilestoneData, LongitudinalData) of ``n`` synthetic patients."""
    from jdmbayes.estimands.simulate import simulate_longitudinal, simulate_milestones
    from jdmbayes.models.indexing import (
        INTERVAL,
        NONE,
        LongitudinalData,
        MilestoneData,
        build_group_design,
    )
    from jdmbayes.models.spec import load_model_spec

    rng = np.random.default_rng(seed)
    subjects = pd.DataFrame({"subject_id": [f"S{i:05d}" for i in range(n)],
                             "drug": rng.choice(["ruxolitinib", "tofacitinib"], n),
                             "dose_start_mg_bid": rng.choice([2.5, 5.0], n),
                             "followup_wk": np.round(rng.uniform(24, 72, n), 1)})
    followup = subjects["followup_wk"].to_numpy(float)
    rash = load_model_spec("rash_milestones")
    design = build_group_design(subjects, rash, "<synthetic>")
    k_count = len(rash.outcomes)
    template = np.zeros((n, k_count), int)
    template[0, k_count - 1] = INTERVAL       # resolution is observed between visits
    skeleton = MilestoneData(subjects["subject_id"].tolist(), tuple(rash.outcomes),
                             template, np.ones((n, k_count)), np.zeros((n, k_count)), followup,
                             design)
    visits = [np.unique(np.append(VISITS[VISITS <= end], end)) for end in followup]
    truth = {**TRUTH, "frailty": rng.normal(0, TRUTH["sigma_patient"], n)}
    milestones = simulate_milestones(skeleton, visits, rash.family, truth, rng)
    assert not (milestones.kind == NONE).all()

    cmas = load_model_spec("cmas")
    patient = np.concatenate([np.full(int((VISITS <= end).sum()), i)
                              for i, end in enumerate(followup)])
    week = np.concatenate([VISITS[VISITS <= end] for end in followup])
    skeleton = LongitudinalData(subjects["subject_id"].tolist(), "cmas", patient, week,
                                np.zeros(len(week)), pd.DataFrame(), followup,
                                build_group_design(subjects, cmas, "<synthetic>"))
    group = skeleton.design.cell_effects[skeleton.design.patient_cell] @ np.array([0.2, 0.1])
    values = {"baseline": 0.3 + 0.8 * rng.standard_normal(n),
              "patient_change": 1.0 + group + 0.5 * rng.standard_normal(n),
              "tau_weeks": 6.0, "noise": 40.0}
    scores = simulate_longitudinal(skeleton, cmas, values, rng)
    return milestones, scores


def _spec(kind: str, frailty: str, cells: str):
    from jdmbayes.models.spec import load_model_spec

    spec = replace(load_model_spec("rash_milestones" if kind == "milestones" else "cmas"),
                   cell_deviations=cells)
    return replace(spec, frailty=frailty) if kind == "milestones" else spec


def gates(posterior) -> dict:
    """Min bulk and tail ESS and max R-hat over every parameter (patients included) of a
    posterior Dataset, and the parameter with the lowest bulk ESS."""
    import arviz as az

    names = [v for v in posterior.data_vars if not v.startswith("loglik")]
    ess_by = az.ess(posterior[names], method="bulk")
    worst = min(names, key=lambda v: float(np.nanmin(ess_by[v].values)))
    return {"min_ess_bulk": float(np.nanmin(ess_by.to_array().values)),
            "min_ess_tail": float(np.nanmin(az.ess(posterior[names], method="tail")
                                            .to_array().values)),
            "max_rhat": float(np.nanmax(az.rhat(posterior[names]).to_array().values)),
            "lowest_ess": worst,
            "parameters": int(sum(posterior[v].size // (posterior.sizes["chain"]
                                                        * posterior.sizes["draw"])
                                  for v in names))}


def stan_fit(data, frailty: str, cells: str, settings) -> dict:
    """The same milestone model in Stan (``stan_programs/milestones.stan``, a centred
    frailty as a Stan user writes it), same data and priors, ``settings``' chains, draws,
    target acceptance and seed, warm-up as long as the draws (Stan's default length):
    build + sampling wall time and the same gates. Raises ImportError where PyStan cannot
    run."""
    from stan_peer import milestone_data, sample_stan

    from jdmbayes.models.spec import load_prior_set

    spec = _spec("milestones", frailty, cells)
    tree, build_s, sample_s = sample_stan(
        "milestones", milestone_data(data, spec, load_prior_set("default", spec)),
        settings.chains, settings.draws, settings.seed, delta=settings.target_accept)
    posterior = tree["posterior"].to_dataset()
    return {"wall_s": build_s + sample_s, "compile_s": build_s, "sample_s": sample_s,
            "divergences": int(tree["sample_stats"]["diverging"].sum()),
            # base: a transformed parameter (linear predictor), not a parameter
            **gates(posterior.drop_vars([v for v in posterior.data_vars
                                         if v == "base" or posterior[v].size == 0]))}


def fit_once(kind: str, data, frailty: str, cells: str, settings) -> dict:
    """Build, compile and sample in this process; wall time from build to draws."""
    from jdmbayes.inference.sampling import sample_posterior
    from jdmbayes.models.longitudinal import build_longitudinal_model
    from jdmbayes.models.milestones import build_milestone_model
    from jdmbayes.models.priors import hyperparameter_values
    from jdmbayes.models.spec import load_prior_set

    spec = _spec(kind, frailty, cells)
    prior_set = load_prior_set("default", spec)
    start = time.perf_counter()
    build = build_milestone_model if kind == "milestones" else build_longitudinal_model
    model = build(data, spec, prior_set)
    result = sample_posterior(model, settings, f"scale-{kind}-{frailty}-{cells}-{data.n_patients}-"
                              f"{time.perf_counter()}", hyperparameter_values(prior_set))
    wall = time.perf_counter() - start
    posterior = result.idata["posterior"].to_dataset()
    return {"wall_s": wall, "compile_s": result.compile_seconds,
            "sample_s": result.sample_seconds,
            "divergences": int(result.idata.sample_stats["diverging"].sum()),
            # the sampled locations are the frailties shifted: the gates read the frailties
            **gates(posterior.drop_vars([v for v in posterior.data_vars
                                         if v == "patient_location"]))}
