"""Robustness and cost of the longitudinal defaults on real-sized simulated series (issue 18).

Writes two series of ``--patients`` patients (two randomised arms, irregular visits, about 6
values each over 1-3 years): a positive marker (log-normal, linear change) and a bounded
score 0-52 (beta-binomial, plateau change), each with correlated patient baseline and change,
then runs the documented command (``scripts/fit.py``, default settings) on each at the given
seeds, in new processes, and reports per run the verdict, max R-hat, min bulk ESS, wall
time, retry attempts, peak memory (the largest resident set of any process of the fit:
``resource`` in a wrapper process) and run-folder size.

    python benchmarks/longitudinal_series.py --patients 300 --seeds 20211028,1,2,3,4,5 \
        [--patient-effects auto|centred|non_centred|integrated] [--score-seeds S|none] \
        [--stan] --out /tmp/longitudinal-bench

With ``--stan``, Stan (``stan_programs/marker.stan`` and ``score.stan``, PyStan) fits each
series after jdmbayes in the same run, on the same data and resolved priors.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SPEC = """[model]
name = "{name}"
kind = "longitudinal"
measure = "{measure}"
likelihood = "{likelihood}"
{upper}
shape = "{shape}"
final_week = 104
patient_effects = "{effects}"
grouping = ["arm"]
contrasts = [["arm", "active", "placebo"]]
priors = "{priors}"
"""


def example_generator():
    """``simulate(n, seed)`` of docs/example-trajectories/make_series.py (the marker)."""
    import importlib.util

    path = ROOT / "docs" / "example-trajectories" / "make_series.py"
    spec = importlib.util.spec_from_file_location("make_series", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.simulate


def write_series(folder: Path, n: int, seed: int, later_visits: tuple[int, int] = (4, 7)
                 ) -> None:
    """Both measures for ``n`` patients in one series folder: the worked example's marker
    (log-normal, linear change, dose 0 for the control arm) and, at the same visits, a score
    0-52 (beta-binomial, plateau change with time constant 12 weeks, correlation 0.4)."""
    subjects, marker = example_generator()(n, seed, later_visits)
    rng = np.random.default_rng([seed, 1])
    arm = dict(zip(subjects["subject_id"], subjects["arm"]))
    scores = []
    for sid, weeks in marker.groupby("subject_id", sort=False)["week"]:
        u = rng.standard_normal()
        w = 0.4 * u + np.sqrt(1 - 0.16) * rng.standard_normal()
        base, change = 0.5 + 0.8 * u, 0.6 + 0.4 * (arm[sid] == "active") + 0.5 * w
        p = 1 / (1 + np.exp(-(base + change * (1 - np.exp(-weeks.to_numpy() / 12)))))
        values = rng.binomial(52, rng.beta(p * 30, (1 - p) * 30))
        scores.append(pd.DataFrame({"subject_id": sid, "measure": "score",
                                    "week": weeks.to_numpy(), "value": values}))
    folder.mkdir(parents=True, exist_ok=True)
    subjects.to_csv(folder / "subjects.csv", index=False)
    pd.concat([marker, *scores]).to_csv(folder / "measurements.csv", index=False)


def write_specs(folder: Path, effects: str) -> list[Path]:
    paths = []
    for name, measure, likelihood, upper, shape, priors in (
            ("marker", "marker", "lognormal", "", "linear", "default"),
            ("score", "score", "beta_binomial", "upper = 52", "plateau", "default")):
        path = folder / f"{name}.toml"
        path.write_text(SPEC.format(name=name, measure=measure, likelihood=likelihood,
                                    upper=upper, shape=shape, effects=effects, priors=priors))
        paths.append(path)
    return paths


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# runs the command in a process of its own and prints the largest resident set of any
# process under it (the fit's main process or its Dask worker), in kB
PEAK = ("import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
        "sys.exit(code)")


def run(spec: Path, data: Path, seed: int, out: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable,
                           str(ROOT / "scripts" / "fit.py"), "--model",
                           str(spec), "--data", str(data), "--seed", str(seed), "--out",
                           str(out), "--overwrite"], capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.strip().splitlines()[-1])
    diagnostics = json.loads((out / "diagnostics.json").read_text())[spec.stem] \
        if (out / "diagnostics.json").exists() else {}
    return {"model": spec.stem, "seed": seed, "exit": done.returncode,
            "verdict": diagnostics.get("verdict"), "r_hat_max": diagnostics.get("r_hat_max"),
            "ess_bulk_min": diagnostics.get("ess_bulk_min"),
            "divergences": diagnostics.get("divergences"), "seconds": round(seconds, 1),
            "attempts": len(json.loads((out / "manifest.json").read_text())["models"][
                spec.stem].get("attempts", [])) if (out / "manifest.json").exists() else None,
            "peak_rss_mb": round(peak / 1024), "folder_mb":
            round(folder_size(out) / 1e6, 1) if out.exists() else None}


STAN_PARAMETERS = ("intercept", "sigma_intercept", "change", "beta_group", "sigma_change",
                   "rho_baseline_change", "noise")


def stan_peer(spec_path: Path, data: Path, seed: int, run_folder: Path) -> dict:
    """Stan (``stan_programs/marker.stan`` or ``score.stan``, by the spec's name: the patient
    effects sampled, non-centred) on the same series, spec and resolved priors, 4 x 1000
    draws after 1000 warm-up, target acceptance 0.99 as jdmbayes: wall time (build +
    sample), gates over the population parameters, and each posterior mean's distance from
    jdmbayes' in posterior SDs."""
    import arviz as az

    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.registry import kind_of
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from stan_peer import marker_data, sample_stan, score_data

    spec = load_model_spec(str(spec_path))
    kind = kind_of(spec)
    indexed = kind.index(load_series(data), spec)
    prior_set = kind.resolve_priors(indexed, spec, load_prior_set(spec.prior_set, spec))
    started = time.perf_counter()
    program = spec_path.stem    # "marker" or "score"
    stan_data = (marker_data if program == "marker" else score_data)(indexed, spec, prior_set)
    tree, build_s, sample_s = sample_stan(program, stan_data, 4, 1000, seed)
    seconds = time.perf_counter() - started
    # a plateau's time constant is a population parameter too
    names = [*STAN_PARAMETERS, *(["tau_weeks"] if "tau_weeks" in tree.posterior else [])]
    posterior = tree.posterior.to_dataset()[names]
    summary = az.summary(posterior, kind="diagnostics")
    ours = pd.read_csv(run_folder / "summary.csv").groupby("quantity").first()
    stan_means = {name: float(posterior[name].mean()) for name in names}
    z = {name: abs(stan_means[name] - ours.at[name, "mean"]) / ours.at[name, "sd"]
         for name in names}
    return {"model": f"{program} (Stan)", "seed": seed, "seconds": round(seconds, 1),
            "build_s": round(build_s, 1), "sample_s": round(sample_s, 1),
            "r_hat_max": float(summary["r_hat"].max()),
            "ess_bulk_min": float(summary["ess_bulk"].min()),
            "ess_tail_min": float(summary["ess_tail"].min()),
            "divergences": int(tree.sample_stats["diverging"].sum()),
            "max_abs_z_mean": round(max(z.values()), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=300)
    parser.add_argument("--seeds", default="20211028,1,2,3,4,5")
    parser.add_argument("--patient-effects", default="auto")
    parser.add_argument("--series-seed", type=int, default=3)
    parser.add_argument("--out", default="/tmp/longitudinal-bench")
    parser.add_argument("--score-seeds", help="seeds for the bounded score (default: --seeds); "
                        "'none' leaves the score out")
    parser.add_argument("--later-visits", default="4,7",
                        help="visits after baseline per patient, drawn as integers(low, high): "
                        "4,7 gives about 6 values each, 6,9 about 8")
    parser.add_argument("--stan", action="store_true",
                        help="after each run, Stan on the same series (pystan)")
    parser.add_argument("--stan-seeds", help="with --stan, only these seeds")
    args = parser.parse_args()
    out = Path(args.out)
    data = out / "series"
    low, high = (int(v) for v in args.later_visits.split(","))
    write_series(data, args.patients, args.series_seed, (low, high))
    specs = write_specs(out, args.patient_effects)
    rows = []
    for spec in specs:
        seeds = args.score_seeds if spec.stem == "score" and args.score_seeds else args.seeds
        if seeds == "none":
            continue
        for seed in (int(s) for s in seeds.split(",")):
            folder = out / f"run-{spec.stem}-{seed}"
            rows.append(run(spec, data, seed, folder))
            print(json.dumps(rows[-1]), flush=True)
            stan_seeds = args.stan_seeds.split(",") if args.stan_seeds else [str(seed)]
            if args.stan and str(seed) in stan_seeds:
                rows.append(stan_peer(spec, data, seed, folder))
                rows[-1]["ess_per_s_ratio_jdmbayes_over_stan"] = round(
                    (rows[-2]["ess_bulk_min"] / rows[-2]["seconds"])
                    / (rows[-1]["ess_bulk_min"] / rows[-1]["seconds"]), 2)
                print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    table.to_csv(out / f"results-{args.patient_effects}.csv", index=False)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
