"""Normalized tables on disk: events.parquet, trait_updates.parquet, quarantine.parquet."""

from __future__ import annotations

from pathlib import Path

import orjson
import polars as pl

from audience_pipeline.ingest.result import IngestResult
from audience_pipeline.ingest.schema import (
    EVENTS_COLUMNS,
    QUARANTINE_COLUMNS,
    TRAIT_UPDATES_COLUMNS,
)

EVENTS_FILE = "events.parquet"
TRAIT_UPDATES_FILE = "trait_updates.parquet"
QUARANTINE_FILE = "quarantine.parquet"
_STATS_KEY = "audience_pipeline.ingest_stats"  # Parquet key-value metadata of events.parquet


def stats_metadata(stats: dict[str, int]) -> dict[str, str]:
    """The Parquet key-value metadata of events.parquet that carries the run's stats."""
    return {_STATS_KEY: orjson.dumps(stats).decode()}


def write_normalized(result: IngestResult, directory: Path) -> None:
    """Write the three tables as zstd Parquet into ``directory`` (created if missing)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    result.events.write_parquet(
        directory / EVENTS_FILE, compression="zstd", metadata=stats_metadata(result.stats)
    )
    result.trait_updates.write_parquet(directory / TRAIT_UPDATES_FILE, compression="zstd")
    result.quarantine.write_parquet(directory / QUARANTINE_FILE, compression="zstd")


def _read(path: Path, columns: dict[str, pl.DataType]) -> pl.DataFrame:
    frame = pl.read_parquet(path)
    extra = [name for name in frame.columns if name not in columns]  # flattened p.* / c.* columns
    return frame.select(*[pl.col(name).cast(dtype) for name, dtype in columns.items()], *extra)


def read_normalized(directory: Path) -> IngestResult:
    """Read tables written by :func:`write_normalized`.

    Raises:
        FileNotFoundError: one of the three files is missing.
    """
    directory = Path(directory)
    events = _read(directory / EVENTS_FILE, EVENTS_COLUMNS)
    trait_updates = _read(directory / TRAIT_UPDATES_FILE, TRAIT_UPDATES_COLUMNS)
    quarantine = _read(directory / QUARANTINE_FILE, QUARANTINE_COLUMNS)
    stored = pl.read_parquet_metadata(directory / EVENTS_FILE).get(_STATS_KEY)
    if stored is not None:
        stats = {str(key): int(value) for key, value in orjson.loads(stored).items()}
    else:  # written by something else: what the tables themselves tell
        stats = {"messages": events.height, "quarantined": quarantine.height}
    return IngestResult(events, trait_updates, quarantine, stats)
