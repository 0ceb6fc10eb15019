"""Write a run folder atomically: it appears complete, or not at all.

Everything is written into a hidden sibling folder which is renamed into place at the end;
an exception or Ctrl-C removes it. An existing folder is replaced only with ``overwrite``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from jdmbayes.errors import InputError, Problem


class RunFolder:
    """``with RunFolder(out, overwrite) as tmp: ... write into tmp ...`` then it is ``out``."""

    def __init__(self, out: str | Path, overwrite: bool = False):
        self.out = Path(out)
        self.overwrite = overwrite
        self.tmp = self.out.parent / f".{self.out.name}.partial-{os.getpid()}"

    def check(self) -> None:
        """Refuse early (before any fitting) when the folder exists and may not be replaced."""
        if self.out.exists() and not self.overwrite:
            raise InputError([Problem(str(self.out), "output_exists", "output folder already "
                                      "exists; pass --overwrite to replace it")])

    def __enter__(self) -> Path:
        self.check()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        old = self.out.parent / f".{self.out.name}.replaced-{os.getpid()}"
        if self.out.exists():
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        shutil.rmtree(old, ignore_errors=True)
        return False


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def log_text(lines) -> str:
    """Captured log lines as the text of a ``log.txt``: one per line, each ended."""
    return "".join(f"{line}\n" for line in lines)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and rename it into place: complete or absent."""
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
