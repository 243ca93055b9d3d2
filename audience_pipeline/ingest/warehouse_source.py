"""Segment's tables of one schema, seen through a DuckDB connection, a batch of rows at a time.

A DuckDB database file is attached read-only to a connection of our own; a DuckDB connection
given by the caller is used as it is. A PostgreSQL table whose column types DuckDB holds with
the same Python values (text, integers, floats, booleans, dates, timestamps, and timestamps
with a zone when the session's time zone is UTC) is copied into a scratch DuckDB file through
a server-side cursor, sorted by the server, a batch at a time; DuckDB has no PostgreSQL reader
offline (its postgres extension must be downloaded). Other PostgreSQL tables are read as Python
rows, sorted by the server when their sort columns allow, else whole (as before streaming).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from audience_pipeline.ingest.warehouse_sql import (
    SORT_COLUMNS,
    UTC_NAMES,
    ZONED_TIME,
    Column,
    Plan,
    literal,
    name,
)

BATCH_ROWS = 50_000
_PG_TYPES = {25: "VARCHAR", 1043: "VARCHAR", 16: "BOOLEAN", 20: "BIGINT", 21: "BIGINT",
             23: "BIGINT", 700: "DOUBLE", 701: "DOUBLE", 1114: "TIMESTAMP", 1082: "DATE",
             1184: ZONED_TIME}  # fmt: skip
_ARROW = {"VARCHAR": pa.string(), "BOOLEAN": pa.bool_(), "BIGINT": pa.int64(),
          "DOUBLE": pa.float64(), "TIMESTAMP": pa.timestamp("us"), "DATE": pa.date32(),
          ZONED_TIME: pa.timestamp("us", tz="UTC")}  # fmt: skip
_counter = itertools.count()


def _is_dsn(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(
        ("postgres://", "postgresql://", "host=", "dbname=")
    )


class Warehouse:
    """One schema's tables: their SQL plans (`Plan`), and rows as the reference reads them."""

    def __init__(self, connection_or_dsn: Any, schema: str, scratch: Path) -> None:
        self.schema = schema
        self.pg: Any = None
        self._owned: list[Any] = []
        self._copies: dict[str, str] = {}
        self._plans: dict[str, Plan | None] = {}
        if _is_dsn(connection_or_dsn):
            import psycopg

            self.pg = psycopg.connect(connection_or_dsn)
            self._owned.append(self.pg)
        elif not isinstance(connection_or_dsn, str | duckdb.DuckDBPyConnection):
            self.pg = connection_or_dsn  # a psycopg connection
        if isinstance(connection_or_dsn, duckdb.DuckDBPyConnection):
            self.con = connection_or_dsn
            self.catalog = str(self.con.execute("SELECT current_database()").fetchall()[0][0])
        else:
            self.con = duckdb.connect()
            self._owned.append(self.con)
            # Our own connection: a sort or join larger than this spills to the scratch folder.
            self.con.execute(f"SET temp_directory = {literal(str(scratch / 'spill'))}")
            self.con.execute("SET memory_limit = '1GB'")
            self.catalog = "src"
            if self.pg is None:
                self.con.execute(f"ATTACH {literal(connection_or_dsn)} AS src (READ_ONLY)")
        self.scratch = f"ap_scratch_{next(_counter)}"
        self.con.execute(f"ATTACH {literal(str(scratch / 'scratch.duckdb'))} AS {self.scratch}")
        if self.pg is not None:
            self.con.execute("SET TimeZone = 'UTC'")  # copies hold UTC instants: read them so
        zone = str(self.con.execute("SELECT current_setting('TimeZone')").fetchall()[0][0])
        self.utc = zone in UTC_NAMES
        self.pg_utc = self.pg is not None and self._pg_zone() in UTC_NAMES
        self.lookup = self.con.cursor()  # rows by rowid while a streaming result is open
        self.lookup.execute(f"SET TimeZone = {literal(zone)}")
        self._types = self._table_types()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.lookup.close()
        if self.con not in self._owned:
            self.con.execute(f"DETACH {self.scratch}")
        for owned in reversed(self._owned):
            owned.close()

    # -- tables ------------------------------------------------------------------------------

    def _pg_zone(self) -> str:
        with self.pg.cursor() as cursor:
            cursor.execute("SHOW TimeZone")
            return str(cursor.fetchall()[0][0])

    def _table_types(self) -> dict[str, str]:
        query = ("SELECT table_name, table_type FROM information_schema.tables "
                 "WHERE table_schema = ?")  # fmt: skip
        if self.pg is not None:
            with self.pg.cursor() as cursor:
                cursor.execute(query.replace("?", "%s"), (self.schema,))
                return {str(n): str(t) for n, t in cursor.fetchall()}
        rows = self.con.execute(query + " AND table_catalog = ?", [self.schema, self.catalog])
        return {str(n): str(t) for n, t in rows.fetchall()}

    def tables(self) -> set[str]:
        """The schema's table and view names."""
        return set(self._types)

    def _source_ref(self, table: str) -> str:
        return ".".join(name(part) for part in (self.schema, table))

    def ref(self, table: str) -> str:
        """The table as DuckDB reads it (for PostgreSQL: its copy; see `plan`)."""
        if self.pg is not None:
            return self._copies[table]
        return f"{name(self.catalog)}.{self._source_ref(table)}"

    def plan(self, table: str) -> Plan | None:
        """The table's SQL plan, or None when only the Python rules read it (a PostgreSQL table
        of other types, a view, a column named rowid)."""
        if table not in self._plans:
            self._plans[table] = self._make_plan(table)
        return self._plans[table]

    def _make_plan(self, table: str) -> Plan | None:
        if self._types.get(table) != "BASE TABLE":
            return None
        if self.pg is None:
            rows = self.con.execute(f"DESCRIBE SELECT * FROM {self.ref(table)}").fetchall()
            columns = tuple(Column(str(r[0]), str(r[1])) for r in rows)
        else:
            found = self._pg_columns(table)
            if found is None:
                return None
            columns = found
        if any(c.name.lower() == "rowid" for c in columns):
            return None
        plan = Plan(table, columns)
        if self.pg is not None:
            if not plan.sortable(self.utc):
                return None
            self._copy(plan)
        return plan

    def count(self, table: str) -> int:
        """Rows in the table."""
        query = f"SELECT count(*) FROM {self._source_ref(table)}"  # noqa: S608
        if self.pg is not None:
            with self.pg.cursor() as cursor:
                cursor.execute(query)
                return int(cursor.fetchall()[0][0])
        return int(self.lookup.execute(  # noqa: S608
            f"SELECT count(*) FROM {self.ref(table)}").fetchall()[0][0])  # fmt: skip

    # -- PostgreSQL ------------------------------------------------------------------------

    def _pg_columns(self, table: str) -> tuple[Column, ...] | None:
        with self.pg.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {self._source_ref(table)} LIMIT 0")  # noqa: S608
            described = cursor.description or []
        columns = []
        for item in described:
            kind = _PG_TYPES.get(item.type_code)
            if kind is None or (kind == ZONED_TIME and not self.pg_utc):
                return None
            columns.append(Column(item.name, kind))
        return tuple(columns)

    def _pg_order(self, columns: list[tuple[str, int]]) -> str | None:
        """The server's ORDER BY of the reference's order (bytes order for text), or None."""
        keys = []
        by_name = dict(columns)
        for column in SORT_COLUMNS:
            if column not in by_name:
                continue
            oid, ref = by_name[column], name(column)
            if oid in (25, 1043):
                keys.append(f'{ref} COLLATE "C"')
            elif oid in (20, 21, 23):
                keys.append(f'{ref}::text COLLATE "C"')
            elif oid in (1114, 1082) or (oid == 1184 and self.pg_utc):
                keys.append(ref)
            else:
                return None
        return ", ".join([*(f"{k} ASC NULLS LAST" for k in keys), "ctid"])

    def _pg_batches(self, table: str) -> Iterator[tuple[list[str], list[tuple[Any, ...]], bool]]:
        """Rows of a PostgreSQL table in the reference's order, a batch at a time (whole and
        unsorted when the server cannot sort them so: the caller sorts)."""
        with self.pg.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {self._source_ref(table)} LIMIT 0")  # noqa: S608
            described = [(d.name, d.type_code) for d in cursor.description or []]
        order = self._pg_order(described) if self._types.get(table) == "BASE TABLE" else None
        query = f"SELECT * FROM {self._source_ref(table)}"  # noqa: S608
        if order is None:
            with self.pg.cursor() as cursor:
                cursor.execute(query)
                yield [n for n, _ in described], list(cursor.fetchall()), False
            return
        # A server-side cursor needs a transaction; the caller's connection may autocommit.
        with self.pg.transaction(), self.pg.cursor(name=f"ap_segment_{next(_counter)}") as cursor:
            cursor.execute(f"{query} ORDER BY {order}")
            columns = [n for n, _ in described]
            while rows := cursor.fetchmany(BATCH_ROWS):
                yield columns, rows, True

    def _copy(self, plan: Plan) -> None:
        """The PostgreSQL table into the scratch DuckDB file, in the reference's order."""
        target = f"{self.scratch}.{name('copy_' + str(len(self._copies)))}"
        definition = ", ".join(f"{name(c.name)} {c.type}" for c in plan.columns)
        self.con.execute(f"CREATE TABLE {target} ({definition})")
        schema = pa.schema([(c.name, _ARROW[c.type]) for c in plan.columns])
        for _, rows, _ in self._pg_batches(plan.table):
            arrays = [pa.array([row[i] for row in rows], type=field.type)
                      for i, field in enumerate(schema)]  # fmt: skip
            batch = pa.Table.from_arrays(arrays, schema=schema)
            self.con.register("_ap_batch", batch)
            self.con.execute(f"INSERT INTO {target} SELECT * FROM _ap_batch")  # noqa: S608
            self.con.unregister("_ap_batch")
        self._copies[plan.table] = target

    # -- Python rows -------------------------------------------------------------------------

    def python_rows(self, table: str) -> Iterator[list[dict[str, Any]]]:
        """The table's rows as the reference reads them, in its order, a batch at a time."""
        plan = self.plan(table)
        if plan is None and self.pg is not None:
            for columns, rows, in_order in self._pg_batches(table):
                records = [dict(zip(columns, row, strict=True)) for row in rows]
                yield records if in_order else sort_rows(records)
            return
        ref = self.ref(table)
        if plan is not None and plan.sortable(self.utc):
            result = self.lookup.execute(f"SELECT t.* FROM {ref} t ORDER BY {plan.order_sql('t')}")  # noqa: S608
            columns = [d[0] for d in result.description]
            while rows := result.fetchmany(BATCH_ROWS):
                yield [dict(zip(columns, row, strict=True)) for row in rows]
            return
        result = self.lookup.execute(f"SELECT * FROM {ref}")  # noqa: S608
        columns = [d[0] for d in result.description]
        yield sort_rows([dict(zip(columns, row, strict=True)) for row in result.fetchall()])

    def rows_by_rowid(self, table: str, rowids: list[int]) -> dict[int, dict[str, Any]]:
        """Rows of a planned table by their DuckDB rowid, as the reference reads them."""
        result = self.lookup.execute(
            f"SELECT rowid AS __ap_rowid, * FROM {self.ref(table)} "  # noqa: S608
            "WHERE rowid IN (SELECT unnest(?))",
            [rowids],
        )
        columns = [d[0] for d in result.description][1:]
        return {row[0]: dict(zip(columns, row[1:], strict=True)) for row in result.fetchall()}


def _sort_key(value: Any) -> tuple[int, str]:
    if value is None:
        return (1, "")
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return (0, value.isoformat() if isinstance(value, dt.datetime) else str(value))


def sort_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in the reference's order: by timestamp, received_at, id (as text; nulls last),
    stable (ties keep the table's order)."""
    if not records:
        return records
    order = [c for c in ("timestamp", "received_at", "id") if c in records[0]]
    return sorted(records, key=lambda r: tuple(_sort_key(r.get(c)) for c in order))
