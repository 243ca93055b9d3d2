"""Validation problems, each pointing at a file, a definition key, a field and the offending text."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Issue:
    file: str
    key: str | None
    field: str | None
    message: str
    text: str | None = None

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.file, self.key, self.field) if part)
        text = f": {self.text!r}" if self.text is not None else ""
        return f"{where}: {self.message}{text}"


class DefinitionsError(ValueError):
    """Raised when definitions do not validate; carries every issue at once."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        lines = "\n".join(f"  {issue}" for issue in issues)
        super().__init__(f"{len(issues)} problem(s) in definitions:\n{lines}")
