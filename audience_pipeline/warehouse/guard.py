"""The empty-input guard (SPEC section 7): a run that read no event does not replace one that
had events, unless asked to.

Without it, an empty or mistyped events folder (or a landing folder whose files all failed to
read) would exit every member of every audience, and the next sync would push those exits out.
"""

from __future__ import annotations

from pathlib import Path

from audience_pipeline.warehouse.runs import Run


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
    import polars as pl

    return bool(run.scan("identities").select(pl.len()).collect().item() > 0)


def check_not_empty(
    messages: int, previous: Run | None, *, source: str | Path, allow_empty: bool, option: str
) -> None:
    """Raise `EmptyInput` (a one-line message naming the way out) when `messages` is 0 and the
    previous run had messages.

    Args:
        messages: the messages this run read (valid ones; quarantined lines do not count).
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


__all__ = ["EmptyInput", "check_not_empty", "had_messages"]
