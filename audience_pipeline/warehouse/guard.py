"""The empty-input guard (SPEC section 7): a run that read no event does not replace one that
had events, unless asked to.

Without it, an empty or mistyped events folder (or a landing folder whose files all failed to
read) would exit every member of every audience, and the next sync would push those exits out.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from audience_pipeline.warehouse.runs import Run


def lines_read(messages: int, quarantine: pl.DataFrame | pl.LazyFrame) -> int:
    """Input lines a run read: its valid messages and its quarantined lines, not counting the
    rows that only say a file could not be read (SPEC section 6: bad lines never change the
    exit status, so a run of bad lines is not an empty run)."""
    from audience_pipeline.ingest.reader import UNREADABLE_FILE

    bad = (
        quarantine.lazy()
        .filter(~pl.col("reason").str.starts_with(UNREADABLE_FILE))
        .select(pl.len())
        .collect()
        .item()
    )
    return messages + int(bad)


class EmptyInput(Exception):
    """The run read no message while the warehouse's last run had some."""


def had_messages(run: Run | None) -> bool:
    """Whether a committed run read messages (older runs: whether they found profiles)."""
    if run is None:
        return False
    if run.messages is not None:
        return run.messages > 0
    if not run.has("identities"):
        return False
    return bool(run.scan("identities").select(pl.len()).collect().item() > 0)


def check_not_empty(
    messages: int, previous: Run | None, *, source: str | Path, allow_empty: bool, option: str
) -> None:
    """Raise `EmptyInput` (a one-line message naming the way out) when `messages` is 0 and the
    previous run had messages.

    Args:
        messages: the input lines this run read (see `lines_read`).
        previous: the warehouse's committed run.
        source: where the events were read (named in the message).
        allow_empty: the user's override.
        option: the override's spelling for the message (`--allow-empty`, a setting).
    """
    if messages > 0 or allow_empty or not had_messages(previous):
        return
    assert previous is not None
    when = previous.as_of.isoformat() if previous.as_of else "the last run"
    msg = (
        f"{source}: no event read (no event file, or none readable); refusing to replace the "
        f"run as of {when} in {previous.warehouse}, which had events (every member would exit). "
        f"Use {option} to write an empty run anyway"
    )
    raise EmptyInput(msg)


__all__ = ["EmptyInput", "check_not_empty", "had_messages", "lines_read"]
