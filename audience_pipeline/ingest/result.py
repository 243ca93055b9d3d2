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
            quarantined (quarantine rows), duplicates (dropped copies), files, bytes (on disk).
    """

    events: pl.DataFrame
    trait_updates: pl.DataFrame
    quarantine: pl.DataFrame
    stats: dict[str, int] = field(default_factory=dict)
