"""Speed of `jdmbayes plan` on the two bundled designs (issue 14), written as a section of
benchmarks/RESULTS.md.

    python benchmarks/plan_speed.py [--trials 1000] [--out /tmp/plan-bench]

Fits rash_milestones and cmas on the bundled series (default settings) for the design
priors, then times each plan end to end in a new process (`jdmbayes plan DESIGN --from RUN
--trials N --jobs 2`). The peer, measured in the same run: full MCMC (nutpie, 4 x 1000) of
the same simulated trials with the same compiled model, against the fast analysis, per trial
and in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Planning: two designs (issue 14)"


def run(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def per_trial(design_name: str, run_folder: Path, n: int, count: int) -> dict:
    from jdmbayes.planning.assurance import Chunk, analysis_prior_set, simulate_and_analyse
    from jdmbayes.planning.design import load_design
    from jdmbayes.planning.design_prior import design_prior_from_run

    design = load_design(design_name)
    prior = design_prior_from_run(design, run_folder)
    prior_set = analysis_prior_set(design)
    simulate_and_analyse(design, prior, prior_set, Chunk(0, n, 9000, 1), 1, "both")  # compile
    out = {}
    for method in ("fast", "mcmc"):
        start = time.perf_counter()
        simulate_and_analyse(design, prior, prior_set, Chunk(0, n, 0, count), 1, method)
        out[method] = (time.perf_counter() - start) / count
    return out


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--peer-trials", type=int, default=20)
    parser.add_argument("--out", default="/tmp/jdmbayes-plan-bench")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fit_s = run([sys.executable, "scripts/fit.py", "--model", "rash_milestones", "--model",
                 "cmas", "--out", str(out / "run")])
    rows = []
    for design, n in (("two_arm_resolution", 30), ("single_arm_cmas", 20)):
        wall = run([sys.executable, "scripts/plan.py", design, "--from", str(out / "run"),
                    "--out", str(out / design), "--trials", str(args.trials), "--jobs", "2"])
        manifest = json.loads((out / design / "manifest.json").read_text())
        trials = sum(1 for _ in open(out / design / "trials.csv")) - 1
        peer = per_trial(design, out / "run", n, args.peer_trials)
        rows.append((design, wall, trials, manifest["analysis"]["method"], n, peer))
    lines = [SECTION, "",
             f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
             f"{platform.python_version()}. "
             f"Design priors from `scripts/fit.py --model rash_milestones --model cmas` "
             f"(default settings; {fit_s:.1f} s). Each plan in a new process, `--trials "
             f"{args.trials} --jobs 2` (every sample size and scenario: design prior, null "
             "and each fixed effect).", "",
             "| design | wall time | trials analysed | analysis | per trial, fast | per trial, "
             "MCMC (peer) | ratio MCMC / fast |", "|---|---|---|---|---|---|---|"]
    total = 0.0
    for design, wall, trials, method, n, peer in rows:
        total += wall
        lines.append(f"| {design} | {wall:.1f} s | {trials} | {method} | "
                     f"{1000 * peer['fast']:.0f} ms (n = {n} per arm) | "
                     f"{1000 * peer['mcmc']:.0f} ms | {peer['mcmc'] / peer['fast']:.1f} |")
    lines += ["", f"Both designs: {total:.1f} s (target: under 600 s for 5 sizes x 1,000 "
              "trials each). Per-trial times are one process, "
              f"{args.peer_trials} design-prior trials, the same compiled model for both "
              "methods.", ""]
    results = ROOT / "benchmarks" / "RESULTS.md"
    text = results.read_text()
    section = "\n".join(lines)
    if SECTION in text:
        text = re.sub(re.escape(SECTION) + r".*?(?=\n## |\Z)", section.rstrip() + "\n",
                      text, flags=re.S)
    else:
        marker = "## How these were measured"
        text = text.replace(marker, section + "\n" + marker)
    results.write_text(text)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
