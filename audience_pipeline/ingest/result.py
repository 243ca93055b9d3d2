"""The outcome of an ingestion run."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class IngestResult:
    """Normalized events, trait updates and quarantined lines of one ingestion run.

    Attributes:
        events: one row per usable message after dedupe, sorted by ``seq``
            (columns: ``schema.EVENTS_COLUMNS``).
        trait_updates: custom (identify) and account (group) traits as long rows
            (``schema.TRAIT_UPDATES_COLUMNS``).
        quarantine: unusable lines with raw text, source, line and reason.
        stats: lines_read (non-blank lines and Parquet rows), messages (events rows),
            quarantined (quarantine rows), duplicates (dropped copies), files, bytes (on disk),
            blank_lines (skipped, in no table), unreadable_files (one quarantine row each, at
            line 0, counted in no line). Every line is accounted for (:func:`accounting`):
            lines_read + unreadable_files == messages + duplicates + quarantined.
    """

    events: pl.DataFrame
    trait_updates: pl.DataFrame
    quarantine: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)


def accounting(stats: dict[str, int]) -> str:
    """One line saying where every input line went (the conservation count of a run).

    Blank lines are counted apart (they are in no table); an unreadable file is one quarantine
    row that stands for no line. Stats of older runs without these keys read as zero.
    """
    lines = stats.get("lines_read", 0)
    unreadable = stats.get("unreadable_files", 0)
    kept, dups, quarantined = (stats.get(k, 0) for k in ("messages", "duplicates", "quarantined"))
    balance = "=" if lines + unreadable == kept + dups + quarantined else "!="
    text = (
        f"lines in: {lines} {balance} kept {kept} + duplicates {dups} + quarantined {quarantined}"
    )
    if unreadable:
        text += f" - unreadable files {unreadable}"
    return text + f" (blank lines skipped: {stats.get('blank_lines', 0)})"
