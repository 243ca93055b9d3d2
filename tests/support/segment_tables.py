"""Segment-spec event files -> Segment's warehouse tables, as Segment's loader would write them.

One table per call type (identifies, groups, aliases, tracks, pages, screens) and one per track
event (by slug); nested objects flattened with underscores (``context_device_type``,
``address_city``); arrays as JSON text; a column holding mixed JSON types is text. Lines that are
not messages Segment would load (not JSON, unknown type, unreadable timestamp) are left out.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import polars as pl

from audience_pipeline.segment_tables import STANDARD, slug

TABLES = {"identify": "identifies", "group": "groups", "alias": "aliases", "track": "tracks",
          "page": "pages", "screen": "screens"}  # fmt: skip


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return parsed.replace(tzinfo=None)


def _flatten(value: dict[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for key, item in value.items():
        name = f"{prefix}{key}".lower()
        if isinstance(item, dict):
            _flatten(item, name + "_", out)
        elif isinstance(item, list):
            out[name] = orjson.dumps(item).decode()
        elif item is not None:
            out[name] = item


def _rows(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind = message.get("type")
    if kind not in TABLES:
        return []
    timestamp = _time(message.get("timestamp"))
    if message.get("timestamp") is not None and timestamp is None:
        return []
    row: dict[str, Any] = {
        "id": message.get("messageId"),
        "user_id": message.get("userId"),
        "anonymous_id": message.get("anonymousId"),
        "timestamp": timestamp,
        "received_at": _time(message.get("receivedAt")),
    }
    row = {k: (str(v) if k in ("id", "user_id", "anonymous_id") and v is not None else v)
           for k, v in row.items()}  # fmt: skip
    if isinstance(message.get("context"), dict):
        _flatten(message["context"], "context_", row)
    extra: dict[str, Any] = {}
    if kind in ("identify", "group") and isinstance(message.get("traits"), dict):
        _flatten(message["traits"], "", extra)
    if kind in ("track", "page", "screen") and isinstance(message.get("properties"), dict):
        _flatten(message["properties"], "", extra)
    extra = {k: v for k, v in extra.items() if k not in STANDARD and not k.startswith("context_")}
    if kind == "group":
        row["group_id"] = None if message.get("groupId") is None else str(message["groupId"])
    if kind == "alias":
        row["previous_id"] = message.get("previousId")
    if kind in ("page", "screen"):
        row["name"] = message.get("name")
        extra.pop("name", None)
    if kind != "track":
        return [(TABLES[kind], {**row, **extra})]
    event = message.get("event")
    row["event_text"] = event if isinstance(event, str) else None
    row["event"] = slug(event) if isinstance(event, str) else None
    rows = [("tracks", row)]
    if isinstance(event, str) and slug(event):
        rows.append((slug(event), {**row, **extra}))
    return rows


def _frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {}
    for index, row in enumerate(rows):
        for key in row:
            columns.setdefault(key, [None] * index)
        for key, values in columns.items():
            values.append(row.get(key))
    series = []
    for name, values in columns.items():
        kinds = {type(v) for v in values if v is not None}
        if kinds <= {int} or kinds <= {float, int} or kinds <= {bool} or kinds <= {datetime}:
            dtype = {frozenset({int}): pl.Int64, frozenset({bool}): pl.Boolean,
                     frozenset({datetime}): pl.Datetime("us")}.get(frozenset(kinds), pl.Float64)  # fmt: skip
            if not kinds:
                dtype = pl.Datetime("us") if name in ("timestamp", "received_at") else pl.String
            series.append(pl.Series(name, values, dtype=dtype, strict=False))
        else:
            text = [None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode()
                    for v in values]  # fmt: skip
            series.append(pl.Series(name, text, dtype=pl.String))
    return pl.DataFrame(series)


def segment_frames(events: Path) -> dict[str, pl.DataFrame]:
    """Segment's tables of the messages in `events` (a folder of .jsonl files), by name."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(events.rglob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(message, dict):
                for table, row in _rows(message):
                    tables.setdefault(table, []).append(row)
    return {table: _frame(rows) for table, rows in tables.items()}


def load_segment_tables(con: duckdb.DuckDBPyConnection, schema: str, events: Path) -> set[str]:
    """Create `schema` in `con` with the Segment tables of the messages in `events`."""
    con.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    frames = segment_frames(events)
    for table, frame in frames.items():
        con.register("_rows", frame.to_arrow())
        con.execute(f'CREATE TABLE "{schema}"."{table}" AS SELECT * FROM _rows')
        con.unregister("_rows")
    return set(frames)
