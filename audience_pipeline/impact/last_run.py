"""The one place `diff` reads the warehouse's last run: its normalized inputs, as-of and tables.

Kept to one function on purpose: when the warehouse gets its single commit point (the
`warehouse/` package), only :func:`read_last_run` changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.ingest import QUARANTINE_COLUMNS, IngestResult
from audience_pipeline.warehouse.snapshot import SnapshotMissing, open_snapshot_waiting


@dataclass(frozen=True)
class LastRun:
    """What the last run computed from, and what it produced that a diff compares with."""

    as_of: datetime
    inputs: IngestResult  # the run's normalized messages (before its as-of cut)
    memberships: pl.DataFrame  # audience_key, level, entity_id
    identities: pl.DataFrame  # profile_id, id_type, id_value


def read_last_run(warehouse: str | Path) -> LastRun:
    """The last committed run of ``warehouse`` (one pinned snapshot, never a mix of two runs).

    Raises:
        FileNotFoundError: no computed warehouse there, or its run kept no inputs.
    """
    try:
        snapshot = open_snapshot_waiting(Path(warehouse))
    except SnapshotMissing as error:
        raise FileNotFoundError(str(error)) from error
    if not snapshot.has_inputs:
        msg = f"{warehouse}: the last run's inputs are not available ({snapshot.inputs_problem})"
        raise FileNotFoundError(msg)
    if snapshot.manifest.layout == "normalized":
        events = snapshot.table("events")
        updates = snapshot.table("trait_updates")
    else:  # Dagster: daily partitions, stacked as its engine stacks them
        from audience_pipeline.warehouse.partitions import combine_partitions

        days = sorted(n.split("/", 1)[1] for n in snapshot.handles if n.startswith("raw_events/"))
        events, updates = combine_partitions(
            [snapshot.table(f"raw_events/{d}") for d in days],
            [snapshot.table(f"raw_trait_updates/{d}") for d in days],
        )
    quarantine = pl.DataFrame(schema=QUARANTINE_COLUMNS)
    return LastRun(
        as_of=snapshot.as_of,
        inputs=IngestResult(events, updates, quarantine, {"messages": events.height}),
        memberships=snapshot.table("memberships", ["audience_key", "level", "entity_id"]),
        identities=snapshot.table("identities", ["profile_id", "id_type", "id_value"]),
    )


__all__ = ["LastRun", "read_last_run"]
