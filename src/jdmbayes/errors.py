"""Errors that the command line turns into clear messages and exit codes."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_DIAGNOSTICS_FAILED = 3


@dataclass(frozen=True)
class Problem:
    """One violated rule, located as precisely as the input allows.

    ``row`` is the 1-based data row (the header is not counted; in a CSV file the row is on
    line ``row + 1``).
    """

    file: str
    rule: str
    message: str
    row: int | None = None
    column: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        return f"{where}: [{self.rule}] {self.message}"


class InputError(Exception):
    """Bad input (data, spec, prior file or command-line usage): exit code 2, nothing written."""

    def __init__(self, problems: list[Problem] | str):
        if isinstance(problems, str):
            problems = [Problem(file="-", rule="usage", message=problems)]
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
