"""Ingestion: Segment/RudderStack messages (JSON lines, gzip, Parquet) -> normalized tables.

SPEC sections 1 and 5a: unusable lines are quarantined with a reason, identifiers are extracted
and normalized per ``space.yaml``, copies of a messageId are dropped, and properties/context are
kept as tagged JSON text (:mod:`audience_pipeline.values`).
"""

from __future__ import annotations

from audience_pipeline.ingest.result import IngestResult, accounting
from audience_pipeline.ingest.run import ingest, ingest_to_parquet
from audience_pipeline.ingest.schema import (
    EVENTS_COLUMNS,
    EVENTS_SCHEMA,
    QUARANTINE_COLUMNS,
    TRAIT_UPDATES_COLUMNS,
)
from audience_pipeline.ingest.storage import read_normalized, write_normalized

__all__ = [
    "EVENTS_COLUMNS",
    "EVENTS_SCHEMA",
    "QUARANTINE_COLUMNS",
    "TRAIT_UPDATES_COLUMNS",
    "IngestResult",
    "accounting",
    "ingest",
    "ingest_to_parquet",
    "read_normalized",
    "write_normalized",
]
