"""The results writer: a run folder's files from fitted models (machine-readable and people's).

``<run>/manifest.json``, ``summary.csv`` (unrounded), ``diagnostics.json``, ``summary.md``
and, per model, ``<run>/<model>/posterior.nc`` (InferenceData with the manifest in its attrs)
plus the posterior predictive check tables.
"""

from __future__ import annotations

import json
from pathlib import Path

import arviz as az

from .formatting import summary_markdown
from .pipeline import ModelResult
from .runfolder import write_json
from .summarise import summary_table

IDENTIFYING_GROUPS = ("observed_data", "constant_data")
PATIENT_LEVEL_TABLES = ("ppc_trajectories",)   # one row per patient visit


def write_results(folder: Path, results: list[ModelResult], manifest: dict,
                  shareable: bool = False) -> None:
    summary = summary_table([row for r in results for row in r.summary_rows])
    summary.to_csv(folder / "summary.csv", index=False, float_format="%.17g")
    diagnostics = {r.name: r.diagnostics for r in results}
    write_json(folder / "diagnostics.json", diagnostics)
    write_json(folder / "manifest.json", manifest)
    (folder / "summary.md").write_text(summary_markdown(summary, diagnostics, manifest))
    for result in results:
        model_folder = folder / result.name
        model_folder.mkdir()
        keep = [g for g in result.idata.groups() if not g.startswith("warmup")
                and not (shareable and g in IDENTIFYING_GROUPS)]
        idata = az.InferenceData(**{g: getattr(result.idata, g).copy() for g in keep})
        text = json.dumps({**manifest, "model": result.name}, default=str)
        for group in idata.groups():
            getattr(idata, group).attrs["jdmbayes_manifest"] = text
        idata.to_netcdf(str(model_folder / "posterior.nc"))
        for name, table in result.tables.items():
            if shareable and name in PATIENT_LEVEL_TABLES:
                continue
            table.to_csv(model_folder / f"{name}.csv", index=False, float_format="%.17g")

