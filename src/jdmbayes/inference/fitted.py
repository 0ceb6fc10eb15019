"""What one fitted model is: its draws, diagnostics, summary rows, tables and notes.

The type sits below the code that makes it (:mod:`jdmbayes.kinds`) and the code that writes it
(:mod:`jdmbayes.results.writer`), so neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import xarray as xr

from jdmbayes.models.spec import ModelSpec, PriorSet


@dataclass
class ModelResult:
    name: str
    spec: ModelSpec
    prior_set: PriorSet
    idata: xr.DataTree
    summary_rows: list[dict]
    diagnostics: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)   # name -> PNG, once rendered
    log: list[str] = field(default_factory=list)   # warnings and log lines of the fit
    # what the model's kind shows (declared by its registration, :mod:`jdmbayes.kinds`)
    key_parameters: tuple[str, ...] = ()
    figure_names: tuple[str, ...] = ()
    # rows of the series the model left out (table, row, subject_id, reason) and, per table
    # it reads, {rows, used, excluded}
    excluded: pd.DataFrame | None = None
    row_counts: dict = field(default_factory=dict)
    # model covariate column -> how it was made from the series (kind, centre, sd, levels)
    covariates: dict = field(default_factory=dict)
    # the settings the reported draws were sampled with, and every attempt of the retry
    # ladder (one entry when the first fit passed or no retry was allowed)
    settings: dict = field(default_factory=dict)
    attempts: list[dict] = field(default_factory=list)

    def rows_note(self) -> str:
        return rows_sentence(self.row_counts, excluded_reasons(self.excluded))


def rows_sentence(row_counts: dict, reasons: dict[str, int]) -> str:
    """'Rows used: ...' in words, with the excluded rows counted by reason."""
    used = "; ".join(f"{c['used']} of {c['rows']} {table} rows"
                     for table, c in row_counts.items())
    if not reasons:
        return f"Rows used: {used}; none excluded."
    return (f"Rows used: {used}; {sum(reasons.values())} excluded (each listed in "
            "excluded.csv) - " + ", ".join(f"{reason}: {n}" for reason, n in reasons.items())
            + ".")


def excluded_reasons(excluded: pd.DataFrame | None) -> dict[str, int]:
    """reason (without its details in brackets) -> rows, most frequent first."""
    if excluded is None or excluded.empty:
        return {}
    heads = excluded["reason"].str.split(" (", n=1, regex=False).str[0]
    return {str(k): int(v) for k, v in heads.value_counts().items()}
