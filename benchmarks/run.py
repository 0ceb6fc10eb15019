"""Benchmarks: end-to-end fit.py cold and warm, a prior grid against separate fits, samplers
per model by ESS per second (PyMC's NUTS, nutpie, numpyro, Stan), agreement with Stan, and
scale (25 / 250 / 2,500 synthetic patients).

    python benchmarks/run.py [--quick] [--out benchmarks/RESULTS.md] [--sections ...]

"cold" = a fresh process with empty PyTensor and Numba caches; "warm" = a fresh process with
the caches the cold run left; "in-process" = a second fit of the same model in the same
process (the compiled model is reused). Samplers: nutpie (numba), PyMC's NUTS (C backend),
numpyro (JAX) and Stan (PyStan 3) when installed (``pip install -e ".[bench]"``); a sampler
that is not installed is reported as skipped. Speed is reported as ratios against PyMC's
default sampler measured in the same run. ``--quick`` (under 10 minutes): one model per
section, shorter chains, scale up to 250 patients.
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
STAN_MODELS = ("cat_bm", "cmas", "gc_discontinuation", "rash_milestones")
SAMPLERS = ("pymc", "nutpie", "numpyro", "stan")


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
    """fit.py from a cold cache (a new, empty compile folder) and again warm (a new process,
    the folder the cold run filled), with the summaries compared byte for byte; then Stan
    (PyStan) building and sampling the same models on the same arrays and priors."""
    extra = [] if not quick else ["--model", "gc_discontinuation"]
    # the models the Stan programs cover (ldh's log-normal model has no Stan program)
    stan_models = ["gc_discontinuation"] if quick else list(STAN_MODELS)
    same_models = [a for m in stan_models for a in ("--model", m)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = {k: v for k, v in os.environ.items() if k != "PYTENSOR_FLAGS"}
        env["JDMBAYES_CACHE_DIR"] = str(tmp / "cache")
        cold, code_cold = timed_fit(env, tmp / "cold", extra)
        warm, code_warm = timed_fit(env, tmp / "warm", extra)
        warm_same, code_same = timed_fit(env, tmp / "warm-same", same_models)
        same = ((tmp / "cold" / "summary.csv").read_bytes()
                == (tmp / "warm" / "summary.csv").read_bytes()
                if (tmp / "cold" / "summary.csv").is_file()
                and (tmp / "warm" / "summary.csv").is_file() else None)
    what = "all default models" if not quick else "gc_discontinuation only (--quick)"
    rows = [f"| fit.py, {what}, cold cache | {cold:.1f} s | {code_cold} |",
            f"| fit.py, {what}, warm cache (new process) | {warm:.1f} s | {code_warm} |",
            f"| summary.csv cold = warm, byte for byte | {same} | |"]
    label = ", ".join(stan_models)
    rows.append(f"| fit.py, {label}, warm cache | {warm_same:.1f} s | {code_same} |")
    try:
        stan = stan_end_to_end(stan_models, 1000)
    except ImportError as error:
        return rows + [f"| Stan, {label} | skipped: {error} | |"]
    rows += [f"| Stan (PyStan), {label}: build + sample, 4 x 1000 | {stan:.1f} s | "
             "sampling only: no summaries, figures or report |",
             f"| ratio: fit.py warm / Stan, same models | {warm_same / stan:.2f} | |"]
    return rows


def stan_end_to_end(models: list[str], draws: int) -> float:
    """Wall time of Stan building (httpstan caches programs by their text) and sampling
    each model, one after another."""
    from jdmbayes.data.validate import load_series
    from jdmbayes.kinds.fit import index_model
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    series = load_series(ROOT / "data" / "ding2021")
    start = time.perf_counter()
    for name in models:
        spec = load_model_spec(name)
        stan_fit(spec, index_model(series, spec), load_prior_set(spec.prior_set, spec), draws)
    return time.perf_counter() - start


def grid_rows(quick: bool) -> list[str]:
    """A prior grid in one command (compiled once, hyperparameters swapped in as data)
    against the same fits as separate fit.py runs, each a fresh process, after one untimed
    fit that fills the compile cache (so every timed command finds it warm)."""
    model = "gc_discontinuation" if quick else "rash_milestones"
    priors = ["default", "sceptical"] if quick else ["default", "vague", "sceptical",
                                                    "enthusiastic"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # one untimed fit first, so that no timed command pays for compiling the model or
        # for reading the libraries from a cold file cache
        timed_fit(dict(os.environ), tmp / "warm-up", ["--model", model, "--jobs", "1"])
        seconds_each = []
        for prior in priors:
            seconds, code = timed_fit(dict(os.environ), tmp / prior,
                                      ["--model", model, "--priors", prior, "--jobs", "1"])
            seconds_each.append(seconds)
            rows.append(f"| fit.py --model {model} --priors {prior} (fresh process) | "
                        f"{seconds:.1f} s | {code} |")
        start = time.perf_counter()
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / "sensitivity.py"),
                               "--model", model, "--priors", ",".join(priors), "--out",
                               str(tmp / "grid")], capture_output=True, text=True)
        grid = time.perf_counter() - start
    rows += [f"| sensitivity.py, {len(priors)} prior sets in one grid | {grid:.1f} s | "
             f"{result_text(done)} |",
             f"| ratio: grid / {len(priors)} separate fits | {grid / sum(seconds_each):.2f} | |",
             f"| ratio: grid / one fit ({priors[0]}) | {grid / seconds_each[0]:.2f} | target < 2 |"]
    return rows


def sampler_rows(quick: bool) -> list[str]:

    from jdmbayes.data.validate import load_series
    from jdmbayes.inference.sampling import SamplerSettings, sample_posterior
    from jdmbayes.kinds.fit import structure_key
    from jdmbayes.models.indexing import index_longitudinal, index_milestones
    from jdmbayes.models.longitudinal import build_longitudinal_model
    from jdmbayes.models.milestones import build_milestone_model
    from jdmbayes.models.priors import hyperparameter_values
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    series = load_series(ROOT / "data" / "ding2021")
    draws = 500 if quick else 1000
    rows = []
    for name in ("gc_discontinuation",) if quick else MODELS:
        spec = load_model_spec(name)
        prior_set = load_prior_set("default", spec)
        if spec.kind == "milestones":
            data = index_milestones(series, spec)
            build, arrays = build_milestone_model, {"kind": data.kind}
        else:
            data = index_longitudinal(series, spec)
            build, arrays = build_longitudinal_model, {"value": data.value}
        results = {}
        for sampler in SAMPLERS:
            if sampler == "stan":
                try:
                    idata, compile_s, sample_s = stan_fit(spec, data, prior_set, draws)
                except ImportError as error:
                    rows.append(f"| {name} | stan | skipped: {error} | | | | |")
                    continue
                results["stan"] = sampler_row(rows, name, "stan", idata, compile_s, sample_s)
                continue
            model = build(data, spec, prior_set)
            settings = SamplerSettings(sampler="nutpie" if sampler == "nutpie" else "pymc",
                                       draws=draws, tune=draws)
            start = time.perf_counter()
            if sampler == "numpyro":
                try:
                    import numpyro  # noqa: F401
                except ImportError:
                    rows.append(f"| {name} | numpyro | skipped: not installed | | | | |")
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
            results[sampler] = sampler_row(rows, name, sampler, idata, compile_s, sample_s,
                                           time.perf_counter() - start)
        base = results.get("pymc")
        for sampler in ("nutpie", "numpyro", "stan"):
            if sampler in results and base:
                rows.append(f"| {name} | {sampler} / pymc ESS-per-second ratio | | | "
                            f"{results[sampler][0] / base[0]:.2f} | "
                            f"{results[sampler][1] / base[1]:.2f} | |")
        if "nutpie_reuse" in results:
            rows.append(f"| {name} | nutpie, second fit reusing the compiled model | "
                        f"{results['nutpie_reuse']:.1f} s | | | | |")
    return rows


def peer_versions() -> str:
    from importlib import metadata

    found = []
    for name in ("pymc", "nutpie", "numpyro", "jax", "pystan", "httpstan"):
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def sampler_row(rows: list[str], name: str, sampler: str, idata, compile_s: float,
                sample_s: float, wall: float | None = None) -> float:
    """Append the row of one sampler's fit; return its ESS per second (min bulk ESS over the
    model's parameters) over the wall time including compilation and over sampling alone."""
    import arviz as az

    wall = compile_s + sample_s if wall is None else wall
    posterior = idata["posterior"].to_dataset()
    names = [v for v in posterior.data_vars if not v.startswith("loglik")
             and v not in ("base",)]
    ess = float(np.nanmin(az.ess(posterior[names]).to_array().values))
    divergences = int(idata.sample_stats["diverging"].sum())
    rows.append(f"| {name} | {sampler} | {wall:.1f} s (compile {compile_s:.1f} s, "
                f"sampling {sample_s:.1f} s) | {ess:.0f} | {ess / wall:.1f} | "
                f"{ess / sample_s:.1f} | {divergences} |")
    return ess / wall, ess / sample_s


def stan_fit(spec, data, prior_set, draws: int, seed: int = 1):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import stan_peer

    stan_peer.import_stan()   # ImportError (not installed, or cannot run): reported as skipped

    if spec.kind == "milestones":
        return stan_peer.sample_stan("milestones", stan_peer.milestone_data(data, spec,
                                                                            prior_set),
                                     4, draws, seed)
    return stan_peer.sample_stan("longitudinal", stan_peer.longitudinal_data(data, spec,
                                                                             prior_set),
                                 4, draws, seed)


def mcse_mean(draws: np.ndarray) -> float:
    """Monte Carlo standard error of the mean of (chain, draw) draws (ArviZ)."""
    import arviz as az

    return float(az.mcse(az.convert_to_dataset(draws), method="mean")["x"])


AGREEMENT = ("intercept", "dispersion", "beta_group", "sigma_cell", "sigma_patient")


def agreement_rows(quick: bool) -> list[str]:
    """nutpie and Stan on the same milestone model, data and priors: posterior means and SDs
    compared within their Monte Carlo errors (z = difference / combined MCSE)."""
    from scipy import stats

    from jdmbayes.data.validate import load_series
    from jdmbayes.inference.sampling import SamplerSettings, sample_posterior
    from jdmbayes.models.indexing import index_milestones
    from jdmbayes.models.milestones import build_milestone_model
    from jdmbayes.models.priors import hyperparameter_values
    from jdmbayes.models.spec import load_model_spec, load_prior_set

    name = "gc_discontinuation" if quick else "rash_milestones"
    spec = load_model_spec(name)
    prior_set = load_prior_set("default", spec)
    data = index_milestones(load_series(ROOT / "data" / "ding2021"), spec)
    ours = sample_posterior(build_milestone_model(data, spec, prior_set),
                            SamplerSettings(seed=11), f"agreement-{name}",
                            hyperparameter_values(prior_set)).idata.posterior
    try:
        theirs = stan_fit(spec, data, prior_set, 1000, seed=12)[0].posterior
    except ImportError as error:
        return [f"| skipped: {error} | | | | | |"]
    rows, worst = [], 0.0
    for variable in AGREEMENT:
        if variable not in ours:
            continue
        a = ours[variable].values.reshape(*ours[variable].shape[:2], -1)
        b = theirs[variable].values.reshape(*theirs[variable].shape[:2], -1)
        for j in range(a.shape[-1]):
            label = variable + (f"[{j}]" if a.shape[-1] > 1 else "")
            stats_ = []
            for draws in (a[..., j], b[..., j]):      # (chain, draw)
                sd = float(draws.std())
                # MCSE of the SD by the delta method on the squared deviations (ArviZ
                # 0.23's method="sd" fails on NumPy 2 scalars)
                stats_.append((float(draws.mean()), sd, mcse_mean(draws),
                               mcse_mean((draws - draws.mean()) ** 2) / (2 * sd)))
            (ma, sa, ea, esa), (mb, sb, eb, esb) = stats_
            z_mean = (ma - mb) / np.hypot(ea, eb)
            z_sd = (sa - sb) / np.hypot(esa, esb)
            worst = max(worst, abs(z_mean), abs(z_sd))
            rows.append(f"| {name} | {label} | {ma:.4f} / {mb:.4f} | {z_mean:+.2f} | "
                        f"{sa:.4f} / {sb:.4f} | {z_sd:+.2f} |")
    limit = float(stats.norm.isf(0.025 / (2 * len(rows))))
    rows.append(f"| {name} | largest \\|z\\| over {2 * len(rows)} comparisons | | "
                f"{worst:.2f} | limit {limit:.2f} (Bonferroni, 5%) | "
                f"{'agree' if worst < limit else 'DISAGREE'} |")
    return rows


def scale_rows(quick: bool) -> list[str]:
    """Synthetic series of 25 / 250 / 2,500 patients (benchmarks/scale.py): the package's
    default parameterisation and sampler settings against the one chosen for many
    patients, compile + tune + sample in this process; Stan on the same data and model,
    with the chosen settings, right after (ESS per second, bulk, over every parameter)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import scale

    from jdmbayes.inference.sampling import SamplerSettings

    # chosen on four synthetic series and sampler seeds of 2,500 patients (RESULTS.md)
    chosen = SamplerSettings(draws=1000, tune=200, target_accept=0.8, seed=3)
    configurations = {
        "milestones, spec defaults (rash: centred frailty, non-centred cells, diag mass "
        "matrix, 4 x 1000 draws, target 0.99)":
            ("milestones", "centred", "non_centred", SamplerSettings(seed=3)),
        "milestones, chosen for scale (hierarchically centred frailty, interaction cells, "
        "diag mass matrix, 4 x 1000 draws after 200, target 0.8)":
            ("milestones", "hierarchically_centred", "interaction", chosen),
        "CMAS, up to 10 visits, non-centred patient effects, interaction cells, low-rank "
        "mass matrix, 4 x 600 draws after 300, target 0.8":
            ("longitudinal", "", "interaction",
             SamplerSettings(draws=600, tune=300, target_accept=0.8, seed=3,
                             mass_matrix="low_rank")),
    }
    rows = []
    for n in (25, 250) if quick else (25, 250, 2500):
        milestones, scores = scale.synthetic(n, seed=n)
        for label, (kind, frailty, cells, settings) in configurations.items():
            if n == 2500 and ("spec defaults" in label or kind == "longitudinal"):
                rows.append(f"| {n} | {label} | | not run at 2,500 (" + (
                    "had not finished in 10 minutes in an earlier run" if kind == "milestones"
                    else "the scale target is the milestone model's") + ") | | | | |")
                continue
            result = scale.fit_once(kind, milestones if kind == "milestones" else scores,
                                    frailty, cells, settings)
            rows.append(scale_row(n, label, result))
            if "chosen for scale" in label:
                rows.append(stan_scale_row(scale, n, milestones, frailty, cells, settings,
                                           result))
    return rows


def scale_row(n: int, label: str, result: dict) -> str:
    target = ("meets" if result["wall_s"] < 60 and min(result["min_ess_bulk"],
                                                       result["min_ess_tail"]) >= 400
              and result["max_rhat"] <= 1.01 and result["divergences"] == 0 else "misses")
    return (f"| {n} | {label} | {result['parameters']} | {result['wall_s']:.1f} s "
            f"(compile {result['compile_s']:.1f}, sampling {result['sample_s']:.1f}) | "
            f"{result['min_ess_bulk']:.0f} / {result['min_ess_tail']:.0f} "
            f"({result['lowest_ess']}) | {result['max_rhat']:.4f} | "
            f"{result['divergences']} | {target} |")


def stan_scale_row(scale, n: int, milestones, frailty: str, cells: str, settings,
                   ours: dict) -> str:
    label = ("same model in Stan (PyStan; centred frailty, interaction cells, 4 x 1000 "
             "draws after 1000, target 0.8)")
    try:
        result = scale.stan_fit(milestones, frailty, cells, settings)
    except ImportError as error:
        return f"| {n} | {label} | | skipped: {error} | | | | |"
    ratio = (ours["min_ess_bulk"] / ours["wall_s"]) / (result["min_ess_bulk"] / result["wall_s"])
    return scale_row(n, label, result).rsplit("|", 2)[0] + (
        f"| jdmbayes / Stan, bulk ESS per second of wall time: {ratio:.1f} |")


MEASURED_HEADING = "## How these were measured"


def previous_sections(text: str) -> dict[str, list[str]]:
    """Each ``## `` section of an earlier RESULTS.md: heading -> its body's lines, whole
    (every paragraph, blank lines inside kept, the blank lines around it dropped)."""
    found, heading = {}, None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line
            found[heading] = []
        elif heading is not None:
            found[heading].append(line)
    return {h: "\n".join(body).strip("\n").splitlines() for h, body in found.items()}


def results_text(machine: str, sections: dict, bodies: dict, kept: dict) -> str:
    """The run's sections (``bodies``, by name), then the sections this script does not
    write (``kept``: heading -> lines, measured by other scripts and kept as they were)."""
    lines = ["# Benchmark results", "", f"Machine: {machine}.", ""]
    for name, (heading, _) in sections.items():
        if name in bodies:
            lines += [heading, "", *bodies[name], ""]
    for heading, body in kept.items():
        lines += [heading, "", *body, ""]
    lines += [MEASURED_HEADING, "",
              "- Every number above comes from one run of this script on the machine named at "
              "the top; sections not rerun (`--sections`) are kept from the earlier run.",
              f"- Peers: {peer_versions()}. PyMC's NUTS, nutpie and numpyro sample the same "
              "PyMC model; Stan samples `benchmarks/stan_programs/*.stan`, the same models written "
              "independently on the same arrays and priors (`benchmarks/stan_peer.py`).",
              "- ESS per second = min bulk ESS over the model's parameters / wall time "
              "including compilation; ratios are against PyMC's NUTS in the same run.",
              "- Scale: `benchmarks/scale.py` (synthetic series, known values); wall time is "
              "build + compile + tune + sample in the benchmark process.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one model, shorter chains")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--sections", default="end_to_end,grid,samplers,agreement,scale",
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
            "| model | sampler | wall time | min ESS (bulk) | ESS per second (incl. compile) "
            "| ESS per second (sampling) | divergences |",
            "|---|---|---|---|---|---|---|", *sampler_rows(args.quick)]),
        "agreement": ("## Agreement with Stan (same model, data and priors)", lambda: [
            "| model | parameter | mean nutpie / Stan | z (mean) | SD nutpie / Stan | z (SD) |",
            "|---|---|---|---|---|---|", *agreement_rows(args.quick)]),
        "scale": ("## Scale (synthetic series; target at 2,500: under 60 s, min bulk ESS "
                  ">= 400, R-hat <= 1.01)", lambda: [
            "| patients | model and configuration | parameters | wall time | min ESS bulk / "
            "tail (lowest bulk) | max R-hat | divergences | target |",
            "|---|---|---|---|---|---|---|---|", *scale_rows(args.quick)]),
    }
    wanted = args.sections.split(",")
    old = previous_sections(args.out.read_text() if args.out.is_file() else "")
    bodies = {name: old[heading] for name, (heading, _) in sections.items()
              if name not in wanted and heading in old}
    ours = {heading for heading, _ in sections.values()} | {MEASURED_HEADING}
    kept = {heading: body for heading, body in old.items() if heading not in ours}
    for name, (_, run) in sections.items():
        if name in wanted:
            bodies[name] = run()
            # saved after every section, so a failure later keeps what was measured
            args.out.write_text(results_text(machine, sections, bodies, kept) + "\n")
    print(results_text(machine, sections, bodies, kept))
    return 0


if __name__ == "__main__":
    sys.exit(main())
