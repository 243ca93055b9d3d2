"""Events from Segment's (or RudderStack's) warehouse schema, in DuckDB or PostgreSQL.

Segment loads each call type into its own table (``tracks``, ``identifies``, ``groups``,
``pages``, ``screens``, ``aliases``) with flattened columns: ``context_page_url``,
``context_traits_email``, one column per trait on identifies/groups, one per property on pages
and screens, and one table per track event (named by the event's slug, e.g.
``order_completed``) holding that event's property columns. Each row is turned back into the
message it came from and goes through the same normalization as files (`ingest`), so quarantine,
dedupe, identifiers and tagging are exactly those of the file path.

Flattening loses where the underscores were: ``context_<group>_<rest>`` becomes
``context.<group>.<rest>`` for Segment's context groups (page, traits, device, location,
campaign, library, os, app, screen, network, referrer), ``context_<rest>`` stays a top-level
context key; property and trait columns keep their column name as the key.
"""

from __future__ import annotations

import datetime as dt
import decimal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl

from audience_pipeline.ingest import IngestResult, ingest
from audience_pipeline.segment_tables import CALL_TABLES, CONTEXT_GROUPS, NAMED, STANDARD, slug
from audience_pipeline.spec.models import SpaceConfig


def _json_value(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime):
        return _iso(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _iso(value: dt.datetime) -> str:
    # A naive warehouse timestamp is UTC (SPEC 1: no offset means UTC).
    return value.isoformat()


def _context(row: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for column, value in row.items():
        if not column.startswith("context_") or value is None:
            continue
        rest = column[len("context_") :]
        group = next((g for g in CONTEXT_GROUPS if rest.startswith(g + "_")), None)
        if group is None:
            context[rest] = _json_value(value)
        else:
            context.setdefault(group, {})[rest[len(group) + 1 :]] = _json_value(value)
    return context


def _extra(row: dict[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {
        k: _json_value(v)
        for k, v in row.items()
        if k not in STANDARD and k not in skip and not k.startswith("context_") and v is not None
    }


def to_message(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """One warehouse row -> the Segment message it was loaded from."""
    call = {"identifies": "identify", "groups": "group", "aliases": "alias", "tracks": "track",
            "pages": "page", "screens": "screen"}.get(table, "track")  # fmt: skip
    message: dict[str, Any] = {"type": call}
    for column, field in (("id", "messageId"), ("message_id", "messageId"),
                          ("user_id", "userId"), ("anonymous_id", "anonymousId")):  # fmt: skip
        if row.get(column) is not None and field not in message:
            message[field] = _json_value(row[column])
    for column, field in (("timestamp", "timestamp"), ("received_at", "receivedAt"),
                          ("sent_at", "sentAt")):  # fmt: skip
        if row.get(column) is not None:
            message[field] = _json_value(row[column])
    context = _context(row)
    if context:
        message["context"] = context
    if call == "identify":
        message["traits"] = _extra(row)
    elif call == "group":
        message["groupId"] = _json_value(row.get("group_id"))
        message["traits"] = _extra(row)
    elif call == "alias":
        message["previousId"] = _json_value(row.get("previous_id"))
    elif call in ("page", "screen"):
        if row.get("name") is not None:
            message["name"] = row["name"]
        message["properties"] = _extra(row, NAMED)
    else:
        message["event"] = row.get("event_text") or row.get("event")
        message["properties"] = _extra(row)
    return message


class _Source:
    """Rows of a schema's tables through DuckDB or psycopg (PostgreSQL)."""

    def __init__(self, connection_or_dsn: Any, schema: str) -> None:
        self.schema = schema
        self.owned: Any = None
        if isinstance(connection_or_dsn, str) and connection_or_dsn.startswith(
            ("postgres://", "postgresql://", "host=", "dbname=")
        ):
            import psycopg

            self.owned = psycopg.connect(connection_or_dsn)
            self.kind = "postgres"
            self.con: Any = self.owned
        elif isinstance(connection_or_dsn, duckdb.DuckDBPyConnection):
            self.kind, self.con = "duckdb", connection_or_dsn
        elif isinstance(connection_or_dsn, str):
            self.owned = duckdb.connect(connection_or_dsn, read_only=True)
            self.kind, self.con = "duckdb", self.owned
        else:  # a psycopg connection
            self.kind, self.con = "postgres", connection_or_dsn

    def tables(self) -> set[str]:
        query = "SELECT table_name FROM information_schema.tables WHERE table_schema = ?"
        return {name for (name,) in self._fetch(query, (self.schema,))[1]}

    def rows(self, table: str) -> Iterator[dict[str, Any]]:
        quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (self.schema, table))
        columns, rows = self._fetch(f"SELECT * FROM {quoted}", ())  # noqa: S608
        order = [c for c in ("timestamp", "received_at", "id") if c in columns]
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        records.sort(key=lambda r: tuple(_sort_key(r.get(c)) for c in order))
        yield from records

    def _fetch(
        self, query: str, params: tuple[Any, ...]
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        if self.kind == "postgres":
            query = query.replace("?", "%s")
            with self.con.cursor() as cursor:
                cursor.execute(query, params)
                columns = [d.name for d in cursor.description or []]
                return columns, list(cursor.fetchall())
        result = self.con.execute(query, list(params))
        columns = [d[0] for d in result.description]
        return columns, result.fetchall()

    def close(self) -> None:
        if self.owned is not None:
            self.owned.close()


def _sort_key(value: Any) -> tuple[int, str]:
    if value is None:
        return (1, "")
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (0, value.isoformat() if isinstance(value, dt.datetime) else str(value))


def read_segment_warehouse(
    connection_or_dsn: Any, schema: str, *, space: SpaceConfig | None = None
) -> IngestResult:
    """Read Segment warehouse tables into the normalized events frame.

    Args:
        connection_or_dsn: a DuckDB connection or database path, a PostgreSQL DSN
            (``postgresql://...`` or ``host=... dbname=...``) or a psycopg connection.
        schema: the source's schema (Segment: one schema per source).
        space: identifier rules; default: SPEC's example space.

    Returns:
        The same result as `ingest` on the equivalent message files; ``source`` is
        ``warehouse:<schema>.<table>``.
    """
    space = space or SpaceConfig()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sources = write_message_files(connection_or_dsn, schema, folder)
        result = ingest(folder, space, workers=1)
    renamed = {"source": pl.col("source").replace(sources)}
    return IngestResult(
        events=result.events.with_columns(**renamed),
        trait_updates=result.trait_updates,
        quarantine=result.quarantine.with_columns(**renamed),
        stats=result.stats,
    )


def write_message_files(connection_or_dsn: Any, schema: str, folder: Path) -> dict[str, str]:
    """Segment's call tables as message files in `folder` (one JSON-lines file per table, in
    the order `ingest` reads them); returns each file's path -> ``warehouse:<schema>.<table>``,
    the source name its rows carry. Every engine that reads Segment's tables as messages goes
    through here, so they see the same messages."""
    source = _Source(connection_or_dsn, schema)
    sources: dict[str, str] = {}
    try:
        tables = source.tables()
        for index, table in enumerate(t for t in CALL_TABLES if t in tables):
            messages = [to_message(table, row) for row in source.rows(table)]
            if table == "tracks":
                messages = _with_event_properties(source, tables, messages)
            path = folder / f"{index}_{table}.jsonl"
            path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
            sources[str(path)] = f"warehouse:{schema}.{table}"
    finally:
        source.close()
    return sources


def _with_event_properties(source: _Source, tables: set[str],
                           messages: list[dict[str, Any]]) -> list[dict[str, Any]]:  # fmt: skip
    """Tracks carry no properties: take them from each event's own table, by message id."""
    properties: dict[str, dict[str, Any]] = {}
    for table in sorted({slug(str(m.get("event") or "")) for m in messages}):
        if not table or table not in tables or table in CALL_TABLES:
            continue
        for row in source.rows(table):
            if row.get("id") is not None:
                properties[str(row["id"])] = _extra(row)
    for message in messages:
        found = properties.get(str(message.get("messageId")))
        if found:
            message["properties"] = {**message.get("properties", {}), **found}
    return messages
