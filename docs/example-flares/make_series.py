"""Write the simulated flare series of this folder (not patient records).

Each patient is at risk of a flare from week 0; a flare is followed by 2-6 weeks of
treatment during which the patient is not at risk, and the next episode starts when it
ends (``start_wk``). Every flare within follow-up is recorded; the episode open at the end
of follow-up is censored there (a patient still being treated then has no open episode).
Truth (gap from an episode's start, weeks):

    log gap = 3.0 + 0.5 (arm B) - 0.3 (sex M) - 0.35 (episode 2 or later) + 0.5 u + 0.6 e,

u ~ N(0, 1) a patient frailty and e a minimum-Gumbel error (Weibull gaps, shape 1/0.6).
Run from this folder: ``python make_series.py``.
"""

import numpy as np
import pandas as pd

TRUTH = {"intercept": 3.0, "arm[B]": 0.5, "sex[M]": -0.3, "episode 2+": -0.35,
         "sigma_patient": 0.5, "dispersion": 0.6}


def simulate(n: int = 60, seed: int = 20261202):
    rng = np.random.default_rng(seed)
    subjects, events = [], []
    for i in range(n):
        sid = f"F{i + 1:02d}"
        arm = "B" if i % 2 else "A"
        sex = "M" if rng.random() < 0.45 else "F"
        followup = float(np.round(rng.uniform(26, 78), 1))
        frailty = TRUTH["sigma_patient"] * rng.standard_normal()
        start = 0.0
        for episode in range(1, 100):
            eta = (TRUTH["intercept"] + TRUTH["arm[B]"] * (arm == "B")
                   + TRUTH["sex[M]"] * (sex == "M") + frailty
                   + TRUTH["episode 2+"] * (episode > 1))
            gap = np.exp(eta + TRUTH["dispersion"] * np.log(rng.exponential()))
            end = round(start + gap, 1)
            row = {"subject_id": sid, "event": "flare", "episode": episode,
                   "start_wk": start}
            if end >= followup:
                events.append({**row, "time_wk": followup, "censored": 1})
                break
            end = max(end, round(start + 0.1, 1))
            events.append({**row, "time_wk": end, "censored": 0})
            start = round(end + rng.uniform(2, 6), 1)
            if start >= followup:
                break
        subjects.append({"subject_id": sid, "followup_wk": followup, "arm": arm, "sex": sex})
    return pd.DataFrame(subjects), pd.DataFrame(events)


if __name__ == "__main__":
    subjects, events = simulate()
    subjects.to_csv("subjects.csv", index=False)
    events.to_csv("events.csv", index=False)
