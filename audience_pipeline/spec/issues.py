"""Validation problems, each pointing at a file, a definition key, a field and the offending text."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError
from pydantic_core import PydanticCustomError


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


# --- pydantic models -> issues -------------------------------------------------------------------

# The error type of a problem raised by our own validators (`problem`): its context carries the
# message users see and the offending text, so the issue reads as hand-written checks read.
PROBLEM = "definition_problem"


def problem(message: str, *offending: object, field: str | None = None) -> PydanticCustomError:
    """A validation error for a pydantic validator to raise: `message` as users read it, the
    offending value if one is given (shown as its text, quoted; ``problem(m, None)`` shows
    'None') and, when it is not where the validator stands, the `field` to name (dotted, from
    the definition's top)."""
    text = str(offending[0]) if offending else None
    context = {"message": message, "text": text, "field": field}
    return PydanticCustomError(PROBLEM, "{message}", context)


def issues_of(error: ValidationError, file: str, key: str | None) -> list[Issue]:
    """Every error of a pydantic validation as an issue naming the file, the definition key,
    the field (`audiences[0].send`, `identifiers.email`) and the offending text. The one place
    pydantic's errors become what users read."""
    issues: list[Issue] = []
    for detail in error.errors(include_url=False):
        where = field_path(detail["loc"])
        context = detail.get("ctx") or {}
        if detail["type"] == PROBLEM:
            field = context.get("field") or where
            issues.append(Issue(file, key, field, context["message"], context.get("text")))
        elif detail["type"] == "extra_forbidden":
            issues.append(Issue(file, key, where, "unknown field"))
        else:  # pydantic's own wording, for checks no validator of ours words
            issues.append(Issue(file, key, where, detail["msg"], str(detail.get("input"))))
    return issues


def field_path(loc: tuple[int | str, ...]) -> str | None:
    """A pydantic location as a field: ``('audiences', 0, 'send')`` -> ``audiences[0].send``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or None
