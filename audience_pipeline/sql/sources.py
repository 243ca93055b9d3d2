"""Where the DuckDB engine reads a run's normalized messages from: Polars frames it is handed, or
the normalized Parquet files themselves (a run's `_normalized/` folder), scanned by DuckDB so that
the messages never sit in the process as frames and DuckDB can spill under its memory limit.

Both give the same relations: ``_ap_messages`` (messages cut at as-of: the base columns and the
stored path columns asked for) and ``_ap_updates`` (one kind's trait updates), and the identity
input as a Polars frame (the columns identity resolution reads, cut at as-of).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

import duckdb
import polars as pl
from sqlglot import exp

from audience_pipeline.sql.statements import create_as, read_parquet
from audience_pipeline.warehouse.layout import NORMALIZED_INPUTS

IDENTITY_COLUMNS = ("seq", "message_id", "type", "timestamp", "ids", "previous_id")
BASE_COLUMNS = (
    "seq", "message_id", "type", "event", "timestamp", "group_id", "properties", "context",
)  # fmt: skip
UPDATE_COLUMNS = ("seq", "key", "value", "tagged")
MESSAGES = "_ap_messages"
UPDATES = "_ap_updates"


def is_path_column(name: str) -> bool:
    """A stored property or context path column (``p.plan``, ``c.page.url``)."""
    return name.startswith(("p.", "c."))


class MessageSource(Protocol):
    """The normalized messages and trait updates of one run, as of one moment."""

    def identity_messages(self) -> pl.DataFrame: ...

    def path_columns(self) -> list[str]: ...

    def create_messages(self, con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> None: ...

    def create_updates(self, con: duckdb.DuckDBPyConnection, kind: str) -> None: ...


@dataclass(frozen=True)
class FrameSource:
    """Frames handed over by the caller; DuckDB scans them in place (registered Arrow)."""

    messages: pl.DataFrame  # cut at as-of
    trait_updates: pl.DataFrame

    @classmethod
    def cut(cls, events: pl.DataFrame, trait_updates: pl.DataFrame, as_of: datetime) -> FrameSource:
        return cls(events.filter(pl.col("timestamp") <= as_of), trait_updates)

    def identity_messages(self) -> pl.DataFrame:
        return self.messages.select(IDENTITY_COLUMNS)

    def path_columns(self) -> list[str]:
        return [c for c in self.messages.columns if is_path_column(c)]

    def create_messages(self, con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> None:
        # A registered Arrow table is scanned in place: no copy of the events' JSON text.
        con.register(MESSAGES, self.messages.select(*BASE_COLUMNS, *paths).to_arrow())

    def create_updates(self, con: duckdb.DuckDBPyConnection, kind: str) -> None:
        updates = self.trait_updates.filter(pl.col("kind") == kind).select(UPDATE_COLUMNS)
        con.register(UPDATES, updates.to_arrow())


@dataclass(frozen=True)
class ParquetSource:
    """The normalized Parquet files; DuckDB reads them itself (views over read_parquet)."""

    events: Path
    trait_updates: Path
    as_of: datetime

    @classmethod
    def in_folder(cls, folder: Path, as_of: datetime) -> ParquetSource | None:
        """The normalized tables of `folder` (a run's `_normalized/`), or None if either is
        missing."""
        events = Path(folder) / Path(NORMALIZED_INPUTS["events"]).name
        updates = Path(folder) / Path(NORMALIZED_INPUTS["trait_updates"]).name
        if events.is_file() and updates.is_file():
            return cls(events, updates, as_of)
        return None

    def identity_messages(self) -> pl.DataFrame:
        # Only the identifier columns are read: the JSON text never enters this process.
        return (
            pl.scan_parquet(self.events)
            .filter(pl.col("timestamp") <= self.as_of)
            .select(IDENTITY_COLUMNS)
            .collect()
        )

    def path_columns(self) -> list[str]:
        return [c for c in pl.read_parquet_schema(self.events) if is_path_column(c)]

    def create_messages(self, con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> None:
        cut = exp.Cast(
            this=exp.Literal.string(self.as_of.isoformat()),
            to=exp.DataType.build("TIMESTAMPTZ"),
        )
        query = (
            exp.select(*BASE_COLUMNS, *(exp.column(c, quoted=True) for c in paths))
            .from_(read_parquet(str(self.events)))
            .where(exp.column("timestamp") <= cut)
        )
        con.execute(create_as(MESSAGES, query, view=True).sql("duckdb"))

    def create_updates(self, con: duckdb.DuckDBPyConnection, kind: str) -> None:
        query = (
            exp.select(*UPDATE_COLUMNS)
            .from_(read_parquet(str(self.trait_updates)))
            .where(exp.column("kind").eq(exp.Literal.string(kind)))
        )
        con.execute(create_as(UPDATES, query, view=True).sql("duckdb"))
