"""Problems found in a cohort: each names its file, row and column."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from hccprog.errors import InputError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Issue:
    """One problem. ``row`` counts as a spreadsheet does: the header is row 1, so the first
    patient is row 2 (for ``cohort.yaml``, ``row`` is the line number)."""

    severity: Severity
    code: str
    file: str
    message: str
    row: int | None = None
    column: str | None = None

    def location(self) -> str:
        parts = [self.file]
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.severity}: {self.location()}: {self.message} [{self.code}]"


@dataclass
class Report:
    """All issues of one load, in the order found."""

    issues: list[Issue] = field(default_factory=list)

    def error(self, code: str, file: str, message: str, row: int | None = None,
              column: str | None = None) -> None:
        self.issues.append(Issue("error", code, file, message, row, column))

    def warning(self, code: str, file: str, message: str, row: int | None = None,
                column: str | None = None) -> None:
        self.issues.append(Issue("warning", code, file, message, row, column))

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self) -> set[str]:
        return {i.code for i in self.issues}

    def to_dicts(self) -> list[dict]:
        return [asdict(i) for i in self.issues]


class CohortError(InputError):
    """Raised by :func:`hccprog.cohort.load_cohort` (``strict=True``) when errors were found."""

    def __init__(self, report: Report):
        self.report = report
        lines = [str(i) for i in report.errors]
        super().__init__(f"{len(lines)} error(s) in the cohort:\n" + "\n".join(lines))
