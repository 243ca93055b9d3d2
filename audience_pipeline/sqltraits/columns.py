"""SQL trait values in the engines' custom-trait rows, and as `<key>.<column>` table columns."""

from __future__ import annotations

from typing import Any

import polars as pl

from audience_pipeline.tables.native import is_mixed, native_column
from audience_pipeline.values import dumps, loads, tag


def with_sql_rows(latest: pl.DataFrame, rows: pl.DataFrame | None, keys: set[str]) -> pl.DataFrame:
    """Custom-trait latest rows with the SQL traits' objects in place of any custom trait of the
    same key (a computed trait shadows a custom one). `rows` has latest's columns and dtypes."""
    if not keys:
        return latest
    kept = latest.filter(~pl.col("key").is_in(sorted(keys)))
    if rows is None or rows.height == 0:
        return kept
    return pl.concat([kept, rows.select(latest.columns).cast(latest.schema)])


def _tagged(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return "o" + dumps(value)
    tagged = tag(value)
    return tagged if isinstance(tagged, str) else None


def expand_columns(table: pl.DataFrame, owner: str, rows: pl.DataFrame | None,
                   fields: dict[str, list[str]]) -> tuple[pl.DataFrame, set[str]]:  # fmt: skip
    """Replace each SQL trait's object column by one column per field (`<key>.<field>`): native
    where a field has one JSON type, JSON text otherwise. Returns the JSON-text columns too."""
    if not fields:
        return table, set()
    table = table.drop([k for k in fields if k in table.columns])
    json_columns: set[str] = set()
    by_key: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in fields}
    if rows is not None:
        for entity, key, value in rows.select(owner, "key", "value").iter_rows():
            if key in by_key:
                by_key[key][entity] = loads(value)
    entities = table[owner].to_list()
    for key, names in fields.items():
        objects = by_key[key]
        for name in names:
            column = f"{key}.{name}"
            values = [objects.get(e, {}).get(name) for e in entities]
            tagged = pl.Series(column, [_tagged(v) for v in values], dtype=pl.String)
            raw = pl.Series(
                column, [None if v is None else dumps(v) for v in values], dtype=pl.String
            )
            if is_mixed(tagged):
                json_columns.add(column)
            table = table.with_columns(native_column(tagged, raw))
    return table, json_columns


__all__ = ["expand_columns", "rows_from_columns", "with_sql_rows"]


def rows_from_columns(table: pl.DataFrame, owner: str, keys: list[str],
                      json_columns: set[str]) -> pl.DataFrame:  # fmt: skip
    """The inverse of `expand_columns`: a stored table's `<key>.<field>` columns back into
    latest-style rows (owner, key, value, tagged) with one object per entity (explain re-reads
    a run's SQL traits instead of re-running their queries)."""
    out: list[dict[str, Any]] = []
    for key in keys:
        columns = [c for c in table.columns if c.startswith(key + ".")]
        if not columns:
            continue
        for row in table.select(owner, *columns).iter_rows(named=True):
            fields: dict[str, Any] = {}
            for column in columns:
                value = row[column]
                if column in json_columns and isinstance(value, str):
                    value = loads(value)
                fields[column[len(key) + 1 :]] = value
            if all(v is None for v in fields.values()):
                continue  # no row for this entity (every field of a matched row can't be told)
            text = dumps(fields)
            out.append({owner: row[owner], "key": key, "value": text, "tagged": "o" + text})
    schema = {owner: pl.String, "key": pl.String, "value": pl.String, "tagged": pl.String}
    return pl.DataFrame(out, schema=schema)
