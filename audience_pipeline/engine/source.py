"""The normalized events as a lazy scan, for `compute` to read only what each stage needs."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from audience_pipeline.ingest.schema import EVENTS_COLUMNS
from audience_pipeline.ingest.storage import EVENTS_FILE


def scan_events(normalized: Path) -> pl.LazyFrame:
    """The events of a normalized folder (or its events.parquet), typed as the engine reads them.

    Nothing is read here: `compute` collects the thin message columns first, then streams the
    events' property columns into its buckets.
    """
    path = Path(normalized)
    if path.is_dir():
        path = path / EVENTS_FILE
    scan = pl.scan_parquet(path)
    present = scan.collect_schema()
    return scan.with_columns(pl.col(c).cast(t) for c, t in EVENTS_COLUMNS.items() if c in present)


__all__ = ["scan_events"]
