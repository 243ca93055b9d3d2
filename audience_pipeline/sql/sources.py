"""Where the DuckDB engine reads a run's normalized messages from: Polars frames it is handed, or
the normalized Parquet files themselves (a run's `_normalized/` folder), scanned by DuckDB so that
the messages never sit in the process as frames and DuckDB can spill under its memory limit.

Both give the same relations: ``_ap_messages`` (messages cut at as-of: the base columns and the
stored path columns asked for), ``_ap_updates`` (one kind's trait updates) and ``_id_input`` (the
columns identity resolution reads, cut at as-of).
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

from audience_pipeline.sql.identity_graph import INPUT as IDENTITY_INPUT
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

    def create_identity_input(self, con: duckdb.DuckDBPyConnection) -> None: ...

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

    def create_identity_input(self, con: duckdb.DuckDBPyConnection) -> None:
        con.register(IDENTITY_INPUT, self.messages.select(IDENTITY_COLUMNS).to_arrow())

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

    def create_identity_input(self, con: duckdb.DuckDBPyConnection) -> None:
        # DuckDB reads the identifier columns itself: no message enters this process.
        query = exp.select(*IDENTITY_COLUMNS).from_(read_parquet(str(self.events)))
        query = query.where(exp.column("timestamp") <= self._cut())
        con.execute(create_as(IDENTITY_INPUT, query, view=True).sql("duckdb"))

    def _cut(self) -> exp.Expr:
        """The as-of as a TIMESTAMPTZ literal."""
        return exp.Cast(
            this=exp.Literal.string(self.as_of.isoformat()), to=exp.DataType.build("TIMESTAMPTZ")
        )

    def path_columns(self) -> list[str]:
        return [c for c in pl.read_parquet_schema(self.events) if is_path_column(c)]

    def create_messages(self, con: duckdb.DuckDBPyConnection, paths: Sequence[str]) -> None:
        query = (
            exp.select(*BASE_COLUMNS, *(exp.column(c, quoted=True) for c in paths))
            .from_(read_parquet(str(self.events)))
            .where(exp.column("timestamp") <= self._cut())
        )
        con.execute(create_as(MESSAGES, query, view=True).sql("duckdb"))

    def create_updates(self, con: duckdb.DuckDBPyConnection, kind: str) -> None:
        query = (
            exp.select(*UPDATE_COLUMNS)
            .from_(read_parquet(str(self.trait_updates)))
            .where(exp.column("kind").eq(exp.Literal.string(kind)))
        )
        con.execute(create_as(UPDATES, query, view=True).sql("duckdb"))
