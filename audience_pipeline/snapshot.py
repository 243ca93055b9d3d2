"""Kept for callers of earlier versions: see `audience_pipeline.warehouse.snapshot`."""

from __future__ import annotations

from audience_pipeline.warehouse.snapshot import (
    SERVED_TABLES,
    Snapshot,
    SnapshotChanged,
    SnapshotMissing,
    open_snapshot,
    open_snapshot_waiting,
)

__all__ = [
    "SERVED_TABLES",
    "Snapshot",
    "SnapshotChanged",
    "SnapshotMissing",
    "open_snapshot",
    "open_snapshot_waiting",
]
