"""Write the simulated two-arm series of this folder (not patient records).

150 patients randomised 1:1 to ``placebo`` or ``active`` (dose 0 or 10 mg), a positive
laboratory marker measured at baseline and at about 5 irregular visits over 1-3 years.
Truth (log scale; T = 104 weeks, the reference week of the specs):

    log y_ij = b_i + D_i t_ij / T + 0.2 e_ij,
    b_i = 4.6 + 0.4 u_i,   D_i = 0.30 - 0.35 (active) + 0.25 w_i,
    corr(u_i, w_i) = 0.4,

a linear trend with correlated patient baseline and change. Run from this folder:
``python make_series.py``.
"""

import numpy as np
import pandas as pd

TRUTH = {"intercept": 4.6, "sigma_intercept": 0.4, "change": 0.30, "beta_group": -0.35,
         "sigma_change": 0.25, "rho_baseline_change": 0.4, "noise": 0.2}
REFERENCE_WEEK = 104.0


def simulate(n: int = 150, seed: int = 20261202, later_visits: tuple[int, int] = (4, 7)):
    """``n`` patients; each has a baseline and ``later_visits`` (low, high: drawn as
    ``integers(low, high)``) irregular visits after it."""
    rng = np.random.default_rng(seed)
    subjects, rows = [], []
    for i in range(n):
        sid = f"T{i + 1:03d}"
        active = i % 2 == 1
        followup = float(np.round(rng.uniform(52, 156), 1))
        u = rng.standard_normal()
        w = TRUTH["rho_baseline_change"] * u + np.sqrt(
            1 - TRUTH["rho_baseline_change"] ** 2) * rng.standard_normal()
        baseline = TRUTH["intercept"] + TRUTH["sigma_intercept"] * u
        change = TRUTH["change"] + TRUTH["beta_group"] * active + TRUTH["sigma_change"] * w
        later = rng.integers(*later_visits)
        weeks = np.r_[0.0, np.sort(np.round(rng.uniform(4, followup, later), 1))]
        for week in np.unique(weeks):
            value = np.exp(baseline + change * week / REFERENCE_WEEK
                           + TRUTH["noise"] * rng.standard_normal())
            rows.append({"subject_id": sid, "measure": "marker", "week": week,
                         "value": round(float(value), 2)})
        subjects.append({"subject_id": sid, "followup_wk": followup,
                         "arm": "active" if active else "placebo",
                         "dose_mg": 10.0 if active else 0.0})
    return pd.DataFrame(subjects), pd.DataFrame(rows)


if __name__ == "__main__":
    subjects, measurements = simulate()
    subjects.to_csv("subjects.csv", index=False)
    measurements.to_csv("measurements.csv", index=False)
