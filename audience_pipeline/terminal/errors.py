"""A user's mistake becomes one line naming the option, file or field, and an exit code.

Exit codes (unchanged from the first CLI): 1 for invalid definitions, a run refused by the
empty-input guard and unexpected failures, 2 for bad options, files and queries. `--debug` prints the traceback as well.
"""

from __future__ import annotations

import duckdb

from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.warehouse import EmptyInput

INVALID_DEFINITIONS = 1
UNEXPECTED = 1
REFUSED = 1
BAD_INPUT = 2


def describe(error: BaseException) -> tuple[str, int]:
    """The message to print for `error` and the exit code; never a traceback."""
    if isinstance(error, DefinitionsError):
        return str(error), INVALID_DEFINITIONS  # one line per problem, each naming file and field
    if isinstance(error, EmptyInput):
        return f"error: {error}", REFUSED  # SPEC 7: the empty-input guard exits 1
    if isinstance(error, OSError) and error.filename is not None:
        reason = (error.strerror or str(error)).lower()
        return f"error: {error.filename}: {reason}", BAD_INPUT
    if isinstance(error, duckdb.Error):
        return f"error: sql: {_first_paragraph(str(error))}", BAD_INPUT
    if isinstance(error, ValueError | FileNotFoundError):
        return f"error: {_first_paragraph(str(error))}", BAD_INPUT
    name = type(error).__name__
    text = _first_paragraph(str(error))
    return (
        f"error: unexpected {name}: {text} (rerun with --debug for the traceback)",
        UNEXPECTED,
    )


def _first_paragraph(text: str) -> str:
    """DuckDB and others add a caret drawing after a blank line; keep the sentence before it."""
    head = text.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in head.splitlines() if line.strip())


__all__ = ["BAD_INPUT", "INVALID_DEFINITIONS", "UNEXPECTED", "describe"]
