"""Events from Segment's (or RudderStack's) warehouse schema, in DuckDB or PostgreSQL.

Segment loads each call type into its own table (``tracks``, ``identifies``, ``groups``,
``pages``, ``screens``, ``aliases``) with flattened columns: ``context_page_url``,
``context_traits_email``, one column per trait on identifies/groups, one per property on pages
and screens, and one table per track event (named by the event's slug, e.g.
``order_completed``) holding that event's property columns. Each row is turned back into the
message it came from and goes through the same normalization as files (`ingest`), so quarantine,
dedupe, identifiers and tagging are exactly those of the file path.

Tables stream: DuckDB sorts each table and writes its message lines in SQL
(:mod:`.warehouse_sql`), a batch at a time, into one JSON-lines file per call table, which the
file ingestion then reads (two reader processes). The functions below (`to_message`) are the
reference rules: rows and tables SQL does not write exactly go through them, and the SQL is
tested equal to them byte for byte.

Flattening loses where the underscores were: ``context_<group>_<rest>`` becomes
``context.<group>.<rest>`` for Segment's context groups (page, traits, device, location,
campaign, library, os, app, screen, network, referrer), ``context_<rest>`` stays a top-level
context key; property and trait columns keep their column name as the key.
"""

from __future__ import annotations

import datetime as dt
import decimal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from audience_pipeline.ingest.progress import Pace, Progress, ProgressCallback, log_progress
from audience_pipeline.ingest.result import IngestResult
from audience_pipeline.ingest.run import ingest
from audience_pipeline.ingest.warehouse_source import BATCH_ROWS, Warehouse
from audience_pipeline.ingest.warehouse_sql import Plan, literal
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


# (tables done, tables, rows done, rows) while tables become message files.
TableProgress = Callable[[int, int, int, int], None]


def read_segment_warehouse(
    connection_or_dsn: Any,
    schema: str,
    *,
    space: SpaceConfig | None = None,
    progress: ProgressCallback | None = None,
) -> IngestResult:
    """Read Segment warehouse tables into the normalized events frame.

    Args:
        connection_or_dsn: a DuckDB connection or database path, a PostgreSQL DSN
            (``postgresql://...`` or ``host=... dbname=...``) or a psycopg connection.
        schema: the source's schema (Segment: one schema per source).
        space: identifier rules; default: SPEC's example space.
        progress: hears of the tables' rows turned into messages (stage "export": tables,
            rows, rows/s), then of the ingestion of those messages, as `ingest` reports it;
            default: INFO lines on the ``audience_pipeline.ingest`` logger (a bar on the CLI).

    Returns:
        The same result as `ingest` on the equivalent message files; ``source`` is
        ``warehouse:<schema>.<table>``.
    """
    space = space or SpaceConfig()
    report = progress or log_progress
    started = time.perf_counter()

    pace = Pace()

    def exported(tables_done: int, tables: int, rows_done: int, rows: int) -> None:
        if tables_done == tables or pace.due(rows_done, rows):
            seconds = time.perf_counter() - started
            report(Progress("export", tables_done, tables, 0, 0, seconds, rows_done, rows))

    with tempfile.TemporaryDirectory(prefix="audience-pipeline-warehouse-") as tmp:
        folder = Path(tmp)
        sources = write_message_files(connection_or_dsn, schema, folder, progress=exported)
        result = ingest(sorted(folder.glob("*.jsonl")), space, progress=report)
    renamed = {"source": pl.col("source").replace(sources)}
    return IngestResult(
        events=result.events.with_columns(**renamed),
        trait_updates=result.trait_updates,
        quarantine=result.quarantine.with_columns(**renamed),
        stats=result.stats,
    )


def write_message_files(
    connection_or_dsn: Any, schema: str, folder: Path, *, progress: TableProgress | None = None
) -> dict[str, str]:
    """Segment's call tables as message files in `folder` (one JSON-lines file per table, in
    the order `ingest` reads them); returns each file's path -> ``warehouse:<schema>.<table>``,
    the source name its rows carry. Every engine that reads Segment's tables as messages goes
    through here, so they see the same messages.

    Streams: a batch of rows at a time (DuckDB sorts and joins, spilling to a scratch folder),
    so memory does not grow with the tables, except for a table only the Python rules read
    whose sort columns are of other types (it is loaded whole, as before)."""
    sources: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="audience-pipeline-scratch-") as scratch,
        Warehouse(connection_or_dsn, schema, Path(scratch)) as warehouse,
    ):
        tables = warehouse.tables()
        calls = [t for t in CALL_TABLES if t in tables]
        totals = [warehouse.count(t) for t in calls]
        done = 0
        for index, table in enumerate(calls):
            if progress:
                progress(index, len(calls), done, sum(totals))
            path = folder / f"{index}_{table}.jsonl"
            with path.open("wb") as out:
                for rows, chunk in _table_lines(warehouse, table, tables):
                    out.write(chunk)
                    done += rows
                    if progress:
                        progress(index, len(calls), done, sum(totals))
            sources[str(path)] = f"warehouse:{schema}.{table}"
        if progress:
            progress(len(calls), len(calls), done, sum(totals))
    return sources


def _table_lines(warehouse: Warehouse, table: str, tables: set[str]) -> Iterator[tuple[int, bytes]]:
    """(rows, their message lines) of one call table, a batch at a time, in the reference's
    order."""
    plan = warehouse.plan(table)
    fast = plan is not None and plan.supported(warehouse.utc) and plan.id_types_ok()
    picked = None
    if table == "tracks":
        picked = _event_properties(warehouse, tables, plan if fast else None)
    if fast and plan is not None:
        yield from _sql_lines(warehouse, plan, picked)
    else:
        yield from _python_lines(warehouse, table, picked)


def _python_lines(
    warehouse: Warehouse, table: str, picked: str | None
) -> Iterator[tuple[int, bytes]]:
    """The reference rules, row by row (tables SQL does not write exactly)."""
    found: dict[str, Any] = {}
    if picked is not None:  # tracks the rules read: the event tables' properties by message id
        rows = warehouse.lookup.execute(f"SELECT key, text FROM {picked}").fetchall()  # noqa: S608
        found = {key: text for key, text in rows}
    for records in warehouse.python_rows(table):
        lines = []
        for row in records:
            message = to_message(table, row)
            if picked is not None:
                _merge(message, found.get(str(message.get("messageId"))))
            lines.append(orjson.dumps(message) + b"\n")
        yield len(records), b"".join(lines)


def _merge(message: dict[str, Any], text: str | None) -> None:
    """A track's properties with its event table's (the reference's ``_with_event_properties``)."""
    properties = orjson.loads(text) if text else None
    if properties:
        message["properties"] = {**message.get("properties", {}), **properties}


def _sql_lines(warehouse: Warehouse, plan: Plan, picked: str | None) -> Iterator[tuple[int, bytes]]:
    """Lines written by DuckDB; rows it cannot write exactly come back by rowid and go
    through the reference rules."""
    query = _lines_query(warehouse.ref(plan.table), plan, picked)
    result = warehouse.con.execute(query)
    while rows := result.fetchmany(BATCH_ROWS):
        odd = [rowid for line, rowid, _ in rows if line is None]
        originals = warehouse.rows_by_rowid(plan.table, odd) if odd else {}
        lines = []
        for line, rowid, found in rows:
            if line is None:
                message = to_message(plan.table, originals[rowid])
                if picked is not None:
                    _merge(message, found)
                line = orjson.dumps(message).decode()
            lines.append(line)
        lines.append("")
        yield len(rows), "\n".join(lines).encode()


def _lines_query(ref: str, plan: Plan, picked: str | None) -> str:
    """(line, rowid, event properties) per row in the reference's order: the line when SQL
    wrote it exactly, else NULL with the row's rowid (and the properties its event table has
    for it, for a track)."""
    found, join = "NULL", ""
    call = plan.call
    if call == "track" and picked is not None:
        found = "p.text"
        join = f" LEFT JOIN {picked} p ON p.key = {plan.message_id_key_sql('t')}"
    extras = plan.extras_sql("t")
    if call == "track":
        # Both own and event properties: the merge is left to Python (a NULL line).
        properties = (f"CASE WHEN {found} IS NULL OR {found} = '{{}}' THEN {extras} "
                      f"WHEN {extras} = '{{}}' THEN {found} END")  # fmt: skip
        tail = f"""',"properties":' || {properties} || '}}'"""
    elif call in ("page", "screen"):
        tail = f"""',"properties":' || {extras} || '}}'"""
    else:
        tail = "'}'"
    # DuckDB escapes control characters as \u000B, orjson as \u000b: such lines go to Python.
    escape = literal("\\u00")
    inner = (
        f"SELECT {plan.head_sql('t')} || {tail} AS __ap_line, t.rowid AS __ap_rowid, "
        f"{found} AS __ap_found, {plan.odd_sql('t')} AS __ap_odd "
        f"FROM {ref} t{join} ORDER BY {plan.order_sql('t')}"
    )
    odd = f"(__ap_odd OR __ap_line IS NULL OR contains(__ap_line, {escape}))"
    return (
        f"SELECT CASE WHEN NOT {odd} THEN __ap_line END, CASE WHEN {odd} THEN __ap_rowid END, "  # noqa: S608
        f"CASE WHEN {odd} THEN __ap_found END FROM ({inner})"
    )


def _event_properties(warehouse: Warehouse, tables: set[str], tracks: Plan | None) -> str | None:
    """The event tables' properties by message id, as a scratch table (key, text): for each id
    the last row of the last table (in name order) that has it, as the reference's dict keeps.
    None when no track names an event table."""
    names = _event_names(warehouse, tracks)
    loaded = sorted({slug(str(n or "")) for n in names})
    loaded = [t for t in loaded if t and t in tables and t not in CALL_TABLES]
    if not loaded:
        return None
    props = f"{warehouse.scratch}.props"
    warehouse.con.execute(f"CREATE OR REPLACE TABLE {props} "
                          "(key VARCHAR, tidx INTEGER, seq BIGINT, text VARCHAR, rid BIGINT)")  # fmt: skip
    for index, table in enumerate(loaded):
        _add_properties(warehouse, props, index, table)
    picked = f"{warehouse.scratch}.picked"
    warehouse.con.execute(
        f"CREATE OR REPLACE TABLE {picked} AS SELECT key, text FROM {props} "  # noqa: S608
        "QUALIFY row_number() OVER (PARTITION BY key ORDER BY tidx DESC, seq DESC) = 1"
    )
    return picked


def _event_names(warehouse: Warehouse, tracks: Plan | None) -> set[Any]:
    """The event names of the tracks (``event_text or event``)."""
    if tracks is not None:
        query = f"SELECT DISTINCT {tracks.event_name_sql('t')} FROM {warehouse.ref('tracks')} t"  # noqa: S608
        return {row[0] for row in warehouse.lookup.execute(query).fetchall()}
    names: set[Any] = set()
    for records in warehouse.python_rows("tracks"):
        names.update(row.get("event_text") or row.get("event") for row in records)
    return names


def _add_properties(warehouse: Warehouse, props: str, index: int, table: str) -> None:
    """One event table's rows (with an id) into `props`: key, table index, row order, the
    properties object's text."""
    plan = warehouse.plan(table)
    if plan is not None and plan.supported(warehouse.utc) and plan.id_types_ok():
        if plan.column("id") is None:
            return
        text = plan.extras_sql("e")
        escape = literal("\\u00")
        warehouse.con.execute(
            f"INSERT INTO {props} SELECT CAST(e.id AS VARCHAR), {index}, "  # noqa: S608
            f"row_number() OVER (ORDER BY {plan.order_sql('e')}), "
            f"CASE WHEN NOT (({plan.odd_sql('e')}) OR contains({text}, {escape})) THEN {text} END, "
            f"e.rowid FROM {warehouse.ref(table)} e WHERE e.id IS NOT NULL"
        )
        odd = warehouse.lookup.execute(
            f"SELECT rid FROM {props} WHERE tidx = ? AND text IS NULL",
            [index],  # noqa: S608
        ).fetchall()
        rowids = [row[0] for row in odd]
        for start in range(0, len(rowids), BATCH_ROWS):
            rows = warehouse.rows_by_rowid(table, rowids[start : start + BATCH_ROWS])
            fixed = pl.DataFrame(
                {
                    "rid": list(rows),
                    "text": [orjson.dumps(_extra(r)).decode() for r in rows.values()],
                },
                schema={"rid": pl.Int64, "text": pl.String},
            )
            warehouse.con.register("_ap_fixed", fixed.to_arrow())
            warehouse.con.execute(
                f"UPDATE {props} SET text = f.text FROM _ap_fixed f "  # noqa: S608
                f"WHERE {props}.tidx = {index} AND {props}.rid = f.rid"
            )
            warehouse.con.unregister("_ap_fixed")
        return
    seq = 0
    for records in warehouse.python_rows(table):
        keys, texts, seqs = [], [], []
        for row in records:
            seq += 1
            if row.get("id") is not None:
                keys.append(str(row["id"]))
                texts.append(orjson.dumps(_extra(row)).decode())
                seqs.append(seq)
        frame = pl.DataFrame({"key": keys, "seq": seqs, "text": texts},
                             schema={"key": pl.String, "seq": pl.Int64, "text": pl.String})  # fmt: skip
        warehouse.con.register("_ap_rows", frame.to_arrow())
        warehouse.con.execute(
            f"INSERT INTO {props} SELECT key, {index}, seq, text, NULL FROM _ap_rows"  # noqa: S608
        )
        warehouse.con.unregister("_ap_rows")
