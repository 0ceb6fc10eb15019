"""Read a series folder: its tables (CSV or Parquet, same stem), as raw text columns.

``subjects`` is required; ``events`` and ``measurements`` are read when present (a header-only
file is an empty table), and a model that needs one says so before sampling.

Reading does no type conversion: :mod:`jdmbayes.data.validate` converts and checks every cell so
that all problems are reported at once. The SHA-256 of each file travels with the series
into the run manifest.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from jdmbayes.errors import Problem

TABLES = ("subjects", "events", "measurements")
# a series needs subjects; events and measurements only when a model reads them
OPTIONAL_TABLES = ("events", "measurements")
FORMATS = (".csv", ".parquet")


@dataclass
class RawSeries:
    """The three tables as text (``""`` for a blank cell), with file paths and hashes."""

    folder: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _find_table(folder: Path, stem: str) -> tuple[Path | None, list[Problem]]:
    found = [folder / f"{stem}{ext}" for ext in FORMATS if (folder / f"{stem}{ext}").is_file()]
    if not found:
        wanted = " or ".join(f"{stem}{ext}" for ext in FORMATS)
        return None, [Problem(str(folder / f"{stem}.csv"), "missing_file",
                              f"table '{stem}' not found: expected {wanted} in {folder}")]
    if len(found) > 1:
        return None, [Problem(str(found[0]), "ambiguous_file",
                              f"both {found[0].name} and {found[1].name} exist; keep one")]
    return found[0], []


def _read_csv(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return None, [Problem(str(path), "not_utf8",
                              f"file is not UTF-8 (invalid byte at line {line}); "
                              "save it as UTF-8")]
    if not text.strip():
        return None, [Problem(str(path), "empty_file", "file is empty: a header row is required")]
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            skipinitialspace=True)
    except pd.errors.ParserError as err:
        return None, [Problem(str(path), "csv_syntax", f"cannot parse CSV: {err}")]
    return frame, []


def _read_parquet(path: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:
        return None, [Problem(str(path), "parquet_syntax", f"cannot read Parquet: {err}")]
    text = frame.astype(object).where(frame.notna(), "")
    return text.map(lambda v: v if isinstance(v, str) else repr(v) if isinstance(v, float)
                    else str(v)), []


def read_series(folder: str | Path) -> tuple[RawSeries, list[Problem]]:
    """Read the three tables of ``folder``; return them as text with any reading problems."""
    folder = Path(folder)
    series = RawSeries(folder=folder)
    problems: list[Problem] = []
    if not folder.is_dir():
        return series, [Problem(str(folder), "missing_folder", "series folder does not exist")]
    for stem in TABLES:
        path, found_problems = _find_table(folder, stem)
        if path is None and stem in OPTIONAL_TABLES and found_problems[0].rule == "missing_file":
            continue
        problems += found_problems
        if path is None:
            continue
        reader = _read_csv if path.suffix == ".csv" else _read_parquet
        frame, read_problems = reader(path)
        problems += read_problems
        if frame is None:
            continue
        if frame.empty and stem not in OPTIONAL_TABLES:
            problems.append(Problem(str(path), "empty_file",
                                    "file has a header but no data rows"))
            continue
        frame.columns = [str(c).strip() for c in frame.columns]
        series.tables[stem] = frame.map(lambda v: v.strip() if isinstance(v, str) else v)
        series.paths[stem] = path
        series.sha256[stem] = sha256_of(path)
    return series, problems


def series_provenance(folder: str | Path) -> dict:
    """What ``series.toml`` says of a series folder (the bundled one is reconstructed);
    a folder without it is a user-supplied series."""
    info = series_description(folder)
    if info:
        return {"reconstructed": bool(info.get("reconstructed", False)),
                "provenance": info.get("provenance", ""),
                "description": str(info.get("description", "")),
                "randomised": info.get("randomised"),
                # the level of a grouping column that is an untreated or placebo control arm
                "control": str(info["control"]) if info.get("control") else None,
                "time_unit": str(info.get("time_unit", "weeks"))}
    return {"reconstructed": False, "provenance": "user-supplied series", "description": "",
            "randomised": None, "control": None, "time_unit": "weeks"}


def series_description(folder: str | Path) -> dict:
    """The [series] table of ``series.toml`` (empty when the folder has none)."""
    marker = Path(folder) / "series.toml"
    if not marker.is_file():
        return {}
    with open(marker, "rb") as handle:
        return tomllib.load(handle).get("series", {})
