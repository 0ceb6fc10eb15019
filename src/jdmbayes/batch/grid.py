"""Prior sensitivity grid: every model under every named prior set, then which conclusions
hold under all of them.

The folder ``<out>/`` is built up as fits finish (so an interrupted grid can resume):
``grid.json`` (the grid's configuration; a rerun must match it), ``fits/<model>/<prior>/``
(each an ordinary run folder, written atomically), and at the end ``sensitivity.csv``
(unrounded), ``psense.csv``, ``summary.md``, ``summary.html`` and ``plots/``.

Robustness rule (stated in the summary): the reference is the ``default`` prior set (else the
first one named). A contrast's conclusion is whether its credible interval excludes the null
(1 for time ratios, 0 for differences) and on which side; it holds if that conclusion is the
same under every prior set. Any other estimand holds if its posterior median under every
other prior set lies inside the reference credible interval. Fits that failed a diagnostic
gate are shown but not used for the verdict.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pandas as pd

from jdmbayes.batch.fits import FitJob, run_saved
from jdmbayes.errors import InputError, Problem
from jdmbayes.estimands.names import describe, is_key, null_value, without_repeated_time_ratios
from jdmbayes.results.runfolder import write_text_atomic

REFERENCE = "default"


def grid_config(series, specs, prior_sets: dict, settings, ci_prob, ci_kind) -> dict:
    """What the grid's results depend on; a resumed grid must have the same."""
    def digest(path):
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()

    return {"data_sha256": series.sha256, "models": [s.name for s in specs],
            "model_files": {s.name: digest(s.path) for s in specs},
            "prior_sets": [p.name for p in next(iter(prior_sets.values()))],
            "prior_files": {p.name: digest(p.path) for ps in prior_sets.values() for p in ps},
            "sampler": settings.as_dict(), "ci_prob": ci_prob, "ci_kind": ci_kind}


def prepare_folder(out: Path, config: dict, overwrite: bool) -> bool:
    """Create ``out`` or check it belongs to this grid; True when resuming."""
    marker = out / "grid.json"
    if out.exists():
        if marker.is_file() and json.loads(marker.read_text())["config"] == config:
            return True
        if not overwrite:
            old = json.loads(marker.read_text())["config"] if marker.is_file() else {}
            differs = sorted(k for k in set(config) | set(old) if config.get(k) != old.get(k))
            raise InputError([Problem(str(out), "output_exists", "folder exists and holds a "
                                      "different grid (differs in: " + ", ".join(differs)
                                      + "); pass --overwrite to replace it or choose --out")])
        import shutil

        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_text_atomic(marker, json.dumps({"config": config}, indent=2))
    return False


def grid_jobs(data: str, specs, prior_sets: dict, settings, ci_prob, ci_kind,
              out: Path, workers: int = 1) -> list[list[FitJob]]:
    """Groups of fits, each run one after another by one worker: one group per model and
    prior family signature (a group compiles once and swaps hyperparameters in as data),
    the largest groups split in two until every one of ``workers`` has a group (a split
    group loads the machine code the other compiled from the disk cache)."""
    groups: dict[tuple[str, str], list[FitJob]] = {}
    for spec in specs:
        for prior_set in prior_sets[spec.name]:
            job = FitJob(data, str(spec.path), str(prior_set.path), settings, ci_prob, ci_kind,
                         str(out / "fits" / spec.name / prior_set.name), spec=spec,
                         prior_set=prior_set)
            groups.setdefault((spec.name, prior_set.family_signature()), []).append(job)
    tasks = list(groups.values())
    while len(tasks) < workers:
        largest = max(tasks, key=len)
        if len(largest) < 2:
            break
        tasks.remove(largest)
        tasks += [largest[0::2], largest[1::2]]
    return tasks


def run_grid(groups, manifest_extra: dict, client) -> tuple[list[dict], float]:
    start = time.perf_counter()
    statuses = run_saved(groups, manifest_extra, client)
    return statuses, time.perf_counter() - start


def collect(out: Path, specs, prior_names: list[str]) -> dict[str, pd.DataFrame]:
    """The grid's long tables from the fit folders: key estimands, diagnostics, psense."""
    estimands, diagnostics, psense = [], [], []
    for spec in specs:
        for name in prior_names:
            folder = out / "fits" / spec.name / name
            summary = pd.read_csv(folder / "summary.csv", keep_default_na=False,
                                  na_values=["NaN", "nan"], float_precision="round_trip")
            key = summary[[is_key(o, q, g) for o, q, g in
                           zip(summary["outcome"], summary["quantity"], summary["group"])]]
            key = without_repeated_time_ratios(key, spec.outcomes)
            estimands.append(key.assign(prior_set=name))
            d = json.loads((folder / "diagnostics.json").read_text())[spec.name]
            manifest = json.loads((folder / "manifest.json").read_text())
            diagnostics.append({"model": spec.name, "prior_set": name, "verdict": d["verdict"],
                                "r_hat_max": d["r_hat_max"], "ess_bulk_min": d["ess_bulk_min"],
                                "ess_tail_min": d["ess_tail_min"],
                                "divergences": d["divergences"],
                                "failures": "; ".join(f["problem"] for f in d["failures"]),
                                **manifest["models"][spec.name]["timings"]})
            table = pd.read_csv(folder / spec.name / "psense.csv", keep_default_na=False,
                                na_values=["NaN", "nan"])
            psense.append(table.assign(prior_set=name))
    return {"estimands": pd.concat(estimands, ignore_index=True),
            "diagnostics": pd.DataFrame(diagnostics),
            "psense": pd.concat(psense, ignore_index=True)}


def conclusion(quantity: str, low: float, high: float) -> str:
    null = null_value(quantity)
    if null is None:
        return ""
    if low > null:
        return f"above {null:g}"
    if high < null:
        return f"below {null:g}"
    return f"includes {null:g}"


def robustness(estimands: pd.DataFrame, diagnostics: pd.DataFrame,
               prior_names: list[str]) -> pd.DataFrame:
    """One row per key estimand: the verdict, and the prior sets that moved it."""
    reference = REFERENCE if REFERENCE in prior_names else prior_names[0]
    passed = {(r.model, r.prior_set) for r in diagnostics.itertuples() if r.verdict == "pass"}
    rows = []
    for (model, outcome, quantity, group), part in estimands.groupby(
            ["model", "outcome", "quantity", "group"], sort=False):
        by_prior = part.set_index("prior_set")
        usable = [p for p in prior_names if (model, p) in passed]
        row = {"model": model, "outcome": outcome, "quantity": quantity, "group": group,
               "estimand": describe(outcome, quantity, group), "reference": reference,
               "used": ",".join(usable),
               "excluded_failed_gates": ",".join(p for p in prior_names if p not in usable)}
        if reference not in usable or len(usable) < 2:
            rows.append({**row, "verdict": "undetermined", "moved_by": "",
                         "rule": "reference fit failed a gate or fewer than two fits passed"})
            continue
        ref = by_prior.loc[reference]
        if null_value(quantity) is not None:
            conclusions = {p: conclusion(quantity, by_prior.loc[p, "ci_low"],
                                         by_prior.loc[p, "ci_high"]) for p in usable}
            moved = [p for p in usable if conclusions[p] != conclusions[reference]]
            rule = f"interval {conclusions[reference]} under {reference}"
        else:
            moved = [p for p in usable if not ref["ci_low"] <= by_prior.loc[p, "median"]
                     <= ref["ci_high"]]
            rule = f"median inside the {reference} interval"
        rows.append({**row, "verdict": "robust" if not moved else "prior-sensitive",
                     "moved_by": ",".join(moved), "rule": rule})
    return pd.DataFrame(rows)


def speed(statuses: list[dict], wall_seconds: float) -> dict:
    """How much the grid saved by compiling once per model and prior family."""
    fitted = [s for s in statuses if s["status"] == "fitted"]
    cold = [s["seconds"] for s in fitted if not s.get("reused_compiled")]
    warm = [s["seconds"] for s in fitted if s.get("reused_compiled")]
    result = {"wall_seconds": wall_seconds, "fits": len(statuses), "fitted": len(fitted),
              "reused_from_disk": len(statuses) - len(fitted), "compiles": len(cold),
              "cold_fit_seconds": cold, "warm_fit_seconds": warm}
    if cold and fitted:
        # the cost of the fitted ones against fitting each of them cold
        mean_cold = sum(cold) / len(cold)
        result["ratio_to_cold_fits"] = sum(s["seconds"] for s in fitted) / (
            mean_cold * len(fitted))
    return result
