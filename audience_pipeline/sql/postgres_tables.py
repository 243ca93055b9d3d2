"""Polars frames in and out of PostgreSQL: typed tables loaded by COPY, results read back typed.

Every table and column name goes through `psycopg.sql.Identifier` (column names of the trait
tables come from the data: custom trait keys), and values travel as CSV through COPY, never as
SQL text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson
import polars as pl
import psycopg
from psycopg import sql

# PostgreSQL type of each Polars dtype we write. Lists (unique_list traits) go in as JSONB: a
# JSON array is what every other engine's readers (and analysts' JSON functions) take.
_PG_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "TEXT",
    pl.Int64: "BIGINT",
    pl.Int32: "BIGINT",
    pl.UInt32: "BIGINT",
    pl.UInt64: "NUMERIC",
    pl.Float64: "DOUBLE PRECISION",
    pl.Float32: "DOUBLE PRECISION",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.List: "JSONB",
    pl.Null: "TEXT",
}

# Type OIDs of what the SQL backend's result columns can be, and the Polars dtype they read as.
_FROM_OID: dict[int, pl.DataType] = {
    16: pl.Boolean(),
    20: pl.Int64(),
    21: pl.Int64(),
    23: pl.Int64(),
    700: pl.Float64(),
    701: pl.Float64(),
    1700: pl.Float64(),
    25: pl.String(),
    1043: pl.String(),
    114: pl.String(),
    3802: pl.String(),
    1009: pl.List(pl.String()),
    1015: pl.List(pl.String()),
    1184: pl.Datetime("us", "UTC"),
    1114: pl.Datetime("us"),
}


def pg_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    try:
        return _PG_TYPES[dtype.base_type()]
    except KeyError:
        msg = f"no PostgreSQL type for {dtype}"
        raise TypeError(msg) from None


def _csv_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """Lists as JSON text (COPY reads them into JSONB); everything else as it is."""
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    if not lists:
        return frame
    return frame.with_columns(
        pl.Series(name, [None if v is None else orjson.dumps(v).decode()
                         for v in frame[name].to_list()], dtype=pl.String)
        for name in lists
    )  # fmt: skip


def copy_frame(cur: psycopg.Cursor, target: sql.Composable, frame: pl.DataFrame) -> None:
    """COPY a frame's rows into an existing table with the same column names."""
    if frame.height == 0:
        return
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in frame.columns)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(target, columns)
    # non_numeric quoting: a null is an empty unquoted field (NULL), "" an empty string.
    data = _csv_ready(frame).write_csv(include_header=False, quote_style="non_numeric")
    with cur.copy(statement) as copy:
        copy.write(data.encode())


def create_table(cur: psycopg.Cursor, target: sql.Composable, schema: Mapping[str, pl.DataType],
                 *, temporary: bool = False) -> None:  # fmt: skip
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type(dtype)))
        for name, dtype in schema.items()
    )
    kind = sql.SQL("TEMP TABLE" if temporary else "TABLE")
    cur.execute(sql.SQL("CREATE {} {} ({})").format(kind, target, columns))


def load_temp(cur: psycopg.Cursor, name: str, frame: pl.DataFrame) -> None:
    """A temporary table `name` holding `frame` (replacing one of that name)."""
    target = sql.Identifier(name)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
    create_table(cur, target, frame.schema, temporary=True)
    copy_frame(cur, target, frame)


def fetch(cur: psycopg.Cursor, query: str | sql.Composable,
          params: Iterable[object] = ()) -> pl.DataFrame:  # fmt: skip
    """A query's rows as a frame typed by the result columns' PostgreSQL types."""
    cur.execute(query, tuple(params))  # type: ignore[arg-type]
    description = cur.description or []
    schema = {d.name: _FROM_OID.get(d.type_code, pl.String()) for d in description}
    rows = cur.fetchall()
    if not rows:
        return pl.DataFrame(schema=schema)
    columns = list(zip(*rows, strict=True))
    return pl.DataFrame(
        [pl.Series(name, values, dtype=dtype, strict=False)
         for (name, dtype), values in zip(schema.items(), columns, strict=True)]
    )  # fmt: skip


def connect(dsn: str) -> psycopg.Connection:
    """A connection, or a one-line ValueError naming the problem (the CLI prints it)."""
    try:
        return psycopg.connect(dsn)
    except psycopg.OperationalError as error:
        reason = (str(error).strip() or type(error).__name__).splitlines()[0]
        msg = f"--dsn: cannot connect to PostgreSQL: {reason}"
        raise ValueError(msg) from None


def write_tables(dsn: str, schema: str, tables: Mapping[str, pl.DataFrame]) -> None:
    """Replace `schema.<name>` with each frame, all in one transaction: a reader sees the
    previous run's tables or this run's, never a mix."""
    with connect(dsn) as con, con.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        for name, frame in tables.items():
            target = sql.Identifier(schema, name)
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(target))
            create_table(cur, target, frame.schema)
            copy_frame(cur, target, frame)
