"""Today's (before issue 15's streaming) Segment warehouse reader, frozen as the reference the
streaming one must equal: whole tables loaded, rows sorted in Python, one message per row by
`segment_warehouse.to_message`, one JSON-lines file per table."""

# ruff: noqa
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import orjson

from audience_pipeline.ingest.segment_warehouse import _extra, to_message
from audience_pipeline.segment_tables import CALL_TABLES, slug


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
