"""The results writer: a run folder's files from fitted models (machine-readable and people's).

``<run>/manifest.json``, ``summary.csv`` (unrounded), ``diagnostics.json``, ``summary.md``,
the report (``report.html``, ``summary.tex``, ``grant.md``, ``plots/``) and, per model,
``<run>/<model>/posterior.nc`` (InferenceData with the manifest in its attrs) plus the
posterior predictive check and power-scaling tables.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from jdmbayes.cachedir import compile_folder
from jdmbayes.console import CapturedLog
from jdmbayes.data.io import series_provenance
from jdmbayes.inference.draws import from_groups, group_dataset, group_names
from jdmbayes.inference.fitted import ModelResult, excluded_reasons
from jdmbayes.inference.summarise import summary_table
from jdmbayes.results.comparison import write_comparison
from jdmbayes.results.formatting import summary_markdown
from jdmbayes.results.report import write_report
from jdmbayes.results.runfolder import log_text, write_json
from jdmbayes.results.storage import storage_description, stored_groups
from jdmbayes.versions import __version__, package_versions

IDENTIFYING_GROUPS = ("observed_data", "constant_data")
PATIENT_LEVEL_TABLES = ("ppc_trajectories",)   # one row per patient visit


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def data_provenance(data_folder: str, series) -> dict:
    """Where the data came from: folder, each table's file and SHA-256, reconstructed or not."""
    return {"folder": str(Path(data_folder).resolve()),
            "tables": {k: {"file": Path(p).name, "sha256": series.sha256[k]}
                       for k, p in series.paths.items()},
            **series_provenance(data_folder)}


def run_manifest(data_folder: str, series, results: list[ModelResult], settings, ci_prob: float,
                 ci_kind: str, command: list[str], started: str, shareable: bool = False,
                 extra: dict | None = None, all_draws: bool = False) -> dict:
    """Provenance of a run: data (path, hashes, reconstructed or not), each model's spec,
    prior set and timings, seed, sampler settings, interval kind and level, versions."""
    verdict = "pass" if all(r.diagnostics["verdict"] == "pass" for r in results) else "fail"
    return {
        "jdmbayes": __version__, "started": started, "finished": now(), "command": command,
        "data": data_provenance(data_folder, series),
        "models": {r.name: {"spec_file": str(r.spec.path), "spec": r.spec.raw,
                            "prior_set": r.prior_set.name, "prior_file": str(r.prior_set.path),
                            "prior_description": r.prior_set.description,
                            "priors": r.prior_set.as_dicts(),
                            **({"prior_scaling": r.prior_set.scaling}
                               if r.prior_set.scaling else {}),
                            "timings": r.timings, "sampler": r.settings,
                            "attempts": r.attempts,
                            "notes": r.notes, "verdict": r.diagnostics["verdict"],
                            "rows": r.row_counts, "excluded": excluded_reasons(r.excluded),
                            "covariates": r.covariates,
                            "n_patients": int(r.idata.log_likelihood.sizes["patient"])}
                   for r in results},
        "seed": settings.seed, "sampler": settings.as_dict(), "ci_prob": ci_prob,
        "ci_kind": ci_kind, "shareable": shareable,
        "posterior_storage": storage_description(all_draws), "versions": package_versions(),
        "compile_cache": compile_folder(),
        "diagnostics_verdict": verdict, **(extra or {}),
    }


def excluded_table(results: list[ModelResult], shareable: bool = False) -> pd.DataFrame:
    """``excluded.csv``: every series row a model left out (model, table, row, subject_id,
    reason); without the subject identifiers when ``shareable``."""
    frames = [r.excluded.assign(model=r.name) for r in results if r.excluded is not None]
    columns = ["model", "table", "row", "subject_id", "reason"]
    table = (pd.concat(frames, ignore_index=True)[columns] if frames
             else pd.DataFrame(columns=columns))
    return table.drop(columns="subject_id") if shareable else table


def write_results(folder: Path, results: list[ModelResult], manifest: dict,
                  shareable: bool = False, allow_failed: bool = False,
                  log: list[str] | None = None, comparison: pd.DataFrame | None = None,
                  echo: bool = False) -> None:
    """Every file of a run folder into ``folder``; ``log.txt`` holds ``log`` (the command's
    own captured lines), each model's warnings and log lines, and those raised while these
    files are written (say a value beyond float32 in ``posterior.nc``), written last; they
    reach the console too only with ``echo``. ``posterior.nc`` keeps what the manifest's
    ``posterior_storage`` says (:mod:`jdmbayes.results.storage`)."""
    with CapturedLog(echo=echo) as writing:
        write_files(folder, results, manifest, shareable, allow_failed, comparison)
    lines = list(log or [])
    for result in results:
        lines += [f"[{result.name}] {line}" for line in result.log]
    lines += [f"[writing] {line}" for line in writing.lines]
    (folder / "log.txt").write_text(log_text(lines))


def write_files(folder: Path, results: list[ModelResult], manifest: dict, shareable: bool,
                allow_failed: bool, comparison: pd.DataFrame | None) -> None:
    """Every file of :func:`write_results` but ``log.txt``."""
    summary = summary_table([row for r in results for row in r.summary_rows])
    excluded_table(results, shareable).to_csv(folder / "excluded.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False, float_format="%.17g")
    diagnostics = {r.name: r.diagnostics for r in results}
    write_json(folder / "diagnostics.json", diagnostics)
    write_json(folder / "manifest.json", manifest)
    (folder / "summary.md").write_text(summary_markdown(summary, diagnostics, manifest))
    if comparison is not None:
        write_comparison(folder, comparison)
    write_report(folder, results, summary, diagnostics, manifest, allow_failed, comparison)
    for result in results:
        model_folder = folder / result.name
        model_folder.mkdir()
        keep = [g for g in group_names(result.idata) if not g.startswith("warmup")
                and not (shareable and g in IDENTIFYING_GROUPS)]
        text = json.dumps({**manifest, "model": result.name}, default=str)
        groups = stored_groups({g: group_dataset(result.idata, g) for g in keep},
                               manifest["posterior_storage"]["all_draws"])
        for dataset in groups.values():
            dataset.attrs["jdmbayes_manifest"] = text
        from_groups(groups).to_netcdf(str(model_folder / "posterior.nc"), engine="h5netcdf")
        for name, table in result.tables.items():
            if shareable and name in PATIENT_LEVEL_TABLES:
                continue
            table.to_csv(model_folder / f"{name}.csv", index=False, float_format="%.17g")

