"""Reverse ETL: audience memberships to webhooks, Segment, PostgreSQL and files; CSV export."""

from __future__ import annotations

from audience_pipeline.destinations.config import Destination, get_destination, load_destinations
from audience_pipeline.destinations.export import ExportSummary, export
from audience_pipeline.destinations.sync import SyncReport, is_due, sync, sync_all

__all__ = [
    "Destination",
    "ExportSummary",
    "SyncReport",
    "export",
    "get_destination",
    "is_due",
    "load_destinations",
    "sync",
    "sync_all",
]
