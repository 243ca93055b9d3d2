"""Dagster's daily partitions of raw events and trait updates: pinned into a run, stacked as one
ingest (the engine, explain, the API and `diff` all stack them the same way)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from audience_pipeline.ingest.dedupe import drop_duplicates
from audience_pipeline.ingest.flatten import add_flat_columns
from audience_pipeline.ingest.schema import EVENTS_COLUMNS, TRAIT_UPDATES_COLUMNS
from audience_pipeline.warehouse.files import link_or_copy
from audience_pipeline.warehouse.layout import INPUTS, PARTITIONED_INPUTS

if TYPE_CHECKING:
    from audience_pipeline.warehouse.writer import RunWriter


def combine_partitions(
    events: list[pl.DataFrame], trait_updates: list[pl.DataFrame]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stack per-partition ingests (in partition order) as one ingest of all their files.

    Each part numbers its lines from 0; parts are shifted so that seq keeps read order, then
    copies of a messageId across parts are dropped (SPEC 5a) and the flat columns rebuilt.
    """
    shifted_events, shifted_updates = [], []
    offset = 0
    for part_events, part_updates in zip(events, trait_updates, strict=True):
        shift = pl.col("seq") + offset
        shifted_events.append(part_events.select(list(EVENTS_COLUMNS)).with_columns(shift))
        shifted_updates.append(part_updates.select(list(TRAIT_UPDATES_COLUMNS)).with_columns(shift))
        if part_events.height:
            offset += int(part_events["seq"].max()) + 1  # type: ignore[arg-type]
    if not shifted_events:
        all_events = pl.DataFrame(schema=EVENTS_COLUMNS)
        all_updates = pl.DataFrame(schema=TRAIT_UPDATES_COLUMNS)
    else:
        all_events = pl.concat(shifted_events).cast(EVENTS_COLUMNS)  # type: ignore[arg-type]
        all_updates = pl.concat(shifted_updates).cast(TRAIT_UPDATES_COLUMNS)  # type: ignore[arg-type]
    all_events, all_updates, _ = drop_duplicates(all_events, all_updates)
    return add_flat_columns(all_events.sort("seq")), all_updates


def pin_partitions(warehouse: Path, writer: RunWriter) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hard-link today's daily partitions of raw events and trait updates into the run (its
    inputs, immune to later ingests) and stack them as one ingest."""
    stacked: dict[str, list[pl.DataFrame]] = {}
    for table in PARTITIONED_INPUTS:
        stacked[table] = []
        for path in sorted((warehouse / table).glob("*.parquet")):
            pinned = writer.folder / INPUTS / table / path.name
            link_or_copy(path, pinned)
            stacked[table].append(pl.read_parquet(pinned))
    return combine_partitions(stacked["raw_events"], stacked["raw_trait_updates"])


def quarantined_reasons(warehouse: Path) -> pl.LazyFrame:
    """The quarantined lines of every daily partition (reason only)."""
    paths = sorted((warehouse / "quarantine").glob("*.parquet"))
    if not paths:
        return pl.LazyFrame(schema={"reason": pl.String})
    return pl.scan_parquet(paths).select("reason")


__all__ = ["combine_partitions", "pin_partitions", "quarantined_reasons"]
