"""The columns of a Segment warehouse schema: what the whole-space script is compiled against.

Segment's tables have one column per property and trait, so the script has to know them (a
property that no table has reads as missing; a trait column's SQL type gives its JSON kind). They
come from ``information_schema.columns``: read from a DuckDB file or a PostgreSQL DSN directly,
or, for Snowflake and BigQuery, from a CSV the user exports with one query (docs/sql.md):
``table_name,column_name,data_type``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

# A column's JSON kind, from its SQL type: number, boolean, timestamp, date, or text.
_NUMBER = ("INT", "NUMBER", "NUMERIC", "DECIMAL", "FLOAT", "DOUBLE", "REAL", "BIGNUMERIC")
_TIMESTAMP = ("TIMESTAMP", "DATETIME")


def kind_of(data_type: str) -> str:
    """``n`` (number), ``b`` (boolean), ``t`` (timestamp), ``d`` (date) or ``s`` (text)."""
    upper = data_type.strip().upper()
    if upper.startswith("BOOL"):
        return "b"
    if upper.startswith(_TIMESTAMP):
        return "t"
    if upper == "DATE":
        return "d"
    if any(word in upper for word in _NUMBER):
        return "n"
    return "s"


@dataclass(frozen=True)
class Catalog:
    """table name -> {column name -> kind}, for one schema."""

    schema: str
    tables: dict[str, dict[str, str]]

    def columns(self, table: str) -> dict[str, str]:
        return self.tables.get(table, {})

    def has(self, table: str, column: str | None = None) -> bool:
        if table not in self.tables:
            return False
        return column is None or column in self.tables[table]


def _from_rows(schema: str, rows: list[tuple[Any, Any, Any]]) -> Catalog:
    tables: dict[str, dict[str, str]] = {}
    for table, column, data_type in rows:
        tables.setdefault(str(table).lower(), {})[str(column).lower()] = kind_of(str(data_type))
    return Catalog(schema, tables)


_QUERY = (
    "SELECT table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = ? ORDER BY table_name, ordinal_position"
)


def catalog_from_csv(path: str | Path, schema: str) -> Catalog:
    """A CSV with a header: table_name, column_name, data_type (any case)."""
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = {name.lower(): name for name in reader.fieldnames or ()}
        needed = ("table_name", "column_name", "data_type")
        missing = [name for name in needed if name not in fields]
        if missing:
            msg = f"--columns {path}: the header lacks {', '.join(missing)}"
            raise ValueError(msg)
        rows = [tuple(row[fields[name]] for name in needed) for row in reader]
    return _from_rows(schema, rows)  # type: ignore[arg-type]


def catalog_from_database(source: Any, schema: str) -> Catalog:
    """From a DuckDB connection or file, or a PostgreSQL DSN."""
    if isinstance(source, str) and source.startswith(("postgres://", "postgresql://")):
        import psycopg

        with psycopg.connect(source) as pg:
            found = pg.execute(_QUERY.replace("?", "%s"), (schema,)).fetchall()
        return _from_rows(schema, found)
    con = source if isinstance(source, duckdb.DuckDBPyConnection) else duckdb.connect(
        str(source), read_only=True
    )  # fmt: skip
    try:
        rows = con.execute(_QUERY, [schema]).fetchall()
    finally:
        if con is not source:
            con.close()
    return _from_rows(schema, rows)
