"""Benchmarks: end-to-end fit.py cold and warm, a prior grid against separate fits, and
samplers per model by ESS per second.

    python benchmarks/run.py [--quick] [--out benchmarks/RESULTS.md]

"cold" = a fresh process with empty PyTensor and Numba caches; "warm" = a fresh process with
the caches the cold run left; "in-process" = a second fit of the same model in the same
process (the compiled model is reused). Samplers: nutpie (numba), PyMC's NUTS (C backend) and
numpyro (JAX) when installed; a sampler that is not installed is reported as skipped. Speed
is reported as ratios against PyMC's default sampler measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MODELS = ("rash_milestones", "gc_discontinuation", "cmas")


def timed_fit(env: dict, out: Path, extra: list[str]) -> tuple[float, str]:
    """Wall time of one fit.py run and its result ('exit N', with the last error line)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "fit.py"), "--out", str(out),
                           *extra], env=env, capture_output=True, text=True)
    return time.perf_counter() - start, result_text(done)


def result_text(done: subprocess.CompletedProcess) -> str:
    if done.returncode in (0, 3):   # 3: written, a diagnostic gate failed
        return f"exit {done.returncode}"
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    return f"exit {done.returncode}: {lines[-1][:200] if lines else 'no message'}"


def end_to_end(quick: bool) -> list[str]:
    extra = [] if not quick else ["--model", "gc_discontinuation"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, PYTENSOR_FLAGS=f"compiledir={tmp / 'pytensor'}",
                   NUMBA_CACHE_DIR=str(tmp / "numba"))
        cold, code_cold = timed_fit(env, tmp / "cold", extra)
        warm, code_warm = timed_fit(env, tmp / "warm", extra)
    what = "all default models" if not quick else "gc_discontinuation only (--quick)"
    return [f"| fit.py, {what}, cold | {cold:.1f} s | {code_cold} |",
            f"| fit.py, {what}, warm | {warm:.1f} s | {code_warm} |"]


def grid_rows(quick: bool) -> list[str]:
    """A prior grid in one command (compiled once, hyperparameters swapped in as data)
    against the same fits as separate fit.py runs, each a fresh process that compiles."""
    model = "gc_discontinuation" if quick else "rash_milestones"
    priors = ["default", "sceptical"] if quick else ["default", "vague", "sceptical",
                                                    "enthusiastic"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        separate = 0.0
        for prior in priors:
            seconds, code = timed_fit(dict(os.environ), tmp / prior,
                                      ["--model", model, "--priors", prior, "--jobs", "1"])
            separate += seconds
            rows.append(f"| fit.py --model {model} --priors {prior} (fresh process) | "
                        f"{seconds:.1f} s | {code} |")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "sensitivity.py"),
                               "--model", model, "--priors", ",".join(priors), "--out",
                               str(tmp / "grid")], capture_output=True, text=True)
        grid = time.perf_counter() - start
    rows += [f"| sensitivity.py, {len(priors)} prior sets in one grid | {grid:.1f} s | "
             f"{result_text(done)} |",
             f"| ratio: grid / {len(priors)} separate fits | {grid / separate:.2f} | |"]
    return rows


def sampler_rows(quick: bool) -> list[str]:
    import arviz as az

    from jdmbayes.indexing import index_longitudinal, index_milestones
    from jdmbayes.longitudinal_model import build_longitudinal_model
    from jdmbayes.milestone_model import build_milestone_model
    from jdmbayes.pipeline import structure_key
    from jdmbayes.priors import hyperparameter_values
    from jdmbayes.sampling import SamplerSettings, sample_posterior
    from jdmbayes.spec import load_model_spec, load_prior_set
    from jdmbayes.validate import load_series

    series = load_series(ROOT / "data" / "ding2021")
    draws = 500 if quick else 1000
    rows = []
    for name in MODELS[:1] if quick else MODELS:
        spec = load_model_spec(name)
        prior_set = load_prior_set("default", spec)
        if spec.kind == "milestones":
            data = index_milestones(series, spec)
            build, arrays = build_milestone_model, {"kind": data.kind}
        else:
            data = index_longitudinal(series, spec)
            build, arrays = build_longitudinal_model, {"value": data.value}
        results = {}
        for sampler in ("pymc", "nutpie", "numpyro"):
            model = build(data, spec, prior_set)
            settings = SamplerSettings(sampler="nutpie" if sampler == "nutpie" else "pymc",
                                       draws=draws, tune=draws)
            start = time.perf_counter()
            if sampler == "numpyro":
                try:
                    import numpyro  # noqa: F401
                except ImportError:
                    rows.append(f"| {name} | numpyro | skipped: not installed | | | |")
                    continue
                import pymc as pm

                with model:
                    idata = pm.sample(draws=draws, tune=draws, chains=4, random_seed=1,
                                      target_accept=0.99, nuts_sampler="numpyro",
                                      progressbar=False)
                compile_s, sample_s = float("nan"), time.perf_counter() - start
            else:
                key = structure_key(spec, prior_set, {**arrays, "bench": np.array([0])})
                result = sample_posterior(model, settings, key, hyperparameter_values(prior_set))
                idata, compile_s, sample_s = (result.idata, result.compile_seconds,
                                              result.sample_seconds)
                again = sample_posterior(model, settings, key, hyperparameter_values(prior_set))
                results[f"{sampler}_reuse"] = again.compile_seconds + again.sample_seconds
            wall = time.perf_counter() - start
            names = [v for v in idata.posterior.data_vars if not v.startswith("loglik")]
            ess = float(np.nanmin(az.ess(idata.posterior[names]).to_array().values))
            divergences = int(idata.sample_stats["diverging"].sum())
            results[sampler] = ess / wall
            rows.append(f"| {name} | {sampler} | {wall:.1f} s (compile {compile_s:.1f} s, "
                        f"sampling {sample_s:.1f} s) | "
                        f"{ess:.0f} | {ess / wall:.1f} | {divergences} |")
        base = results.get("pymc")
        for sampler in ("nutpie", "numpyro"):
            if sampler in results and base:
                rows.append(f"| {name} | {sampler} / pymc ESS-per-second ratio | | | "
                            f"{results[sampler] / base:.2f} | |")
        if "nutpie_reuse" in results:
            rows.append(f"| {name} | nutpie, second fit reusing the compiled model | "
                        f"{results['nutpie_reuse']:.1f} s | | | |")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model, shorter chains")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--sections", default="end_to_end,grid,samplers",
                        help="comma-separated sections to run; the others are kept as they "
                        "are in --out")
    args = parser.parse_args()
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, Python "
               f"{platform.python_version()}, {platform.platform()}")
    table = ["| run | wall time | result |", "|---|---|---|"]
    sections = {
        "end_to_end": ("## End to end", lambda: table + end_to_end(args.quick)),
        "grid": ("## Prior sensitivity grid", lambda: table + grid_rows(args.quick)),
        "samplers": ("## Samplers per model (4 chains, equal draws)", lambda: [
            "| model | sampler | wall time | min ESS (bulk) | ESS per second | divergences |",
            "|---|---|---|---|---|---|", *sampler_rows(args.quick)]),
    }
    wanted = args.sections.split(",")
    old = args.out.read_text() if args.out.is_file() else ""
    lines = ["# Benchmark results", "", f"Machine: {machine}.", ""]
    for name, (heading, run) in sections.items():
        if name in wanted:
            body = run()
        elif heading in old:
            body = old.split(heading + "\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
        else:
            continue
        lines += [heading, "", *body, ""]
    text = "\n".join(lines)
    print(text)
    args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
