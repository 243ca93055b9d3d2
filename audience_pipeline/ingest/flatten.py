"""Flattened property and context columns (``p.<path>``, ``c.<path>``) beside the JSON text.

Definitions name a few paths out of every event (`price`, `context.device.type`); reading them
from per-path columns costs a Parquet column decode, while a JSON lookup would parse every
event's text once per path. The JSON columns stay complete; the flat columns are an index of
the common keys, so paths beyond the cap fall back to a JSON lookup in the engine.

Columns come in sorted order of their keys (``p.*`` first, then ``c.*``): an order that does not
depend on where a table is cut into parts and slices, so the readers can decode their own parts
(:func:`part_columns`) and the assembly only unions them.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl

MAX_FLAT_COLUMNS = 200  # per source; beyond it the engine reads the JSON text
DECODE_ROWS = 200_000
PREFIXES = {"properties": "p.", "context": "c."}


def add_flat_columns(events: pl.DataFrame, *, limit: int = MAX_FLAT_COLUMNS) -> pl.DataFrame:
    """One String column of flat-tagged values per dotted key of properties and context."""
    if events.height == 0:
        return events
    added = []
    for source, prefix in PREFIXES.items():
        flat = _flat_frame(events.get_column(source), limit)
        if flat is not None:
            added += [flat.get_column(name).alias(prefix + name) for name in flat.columns]
    return events.with_columns(added) if added else events


@dataclass(frozen=True)
class PartColumns:
    """The flat columns of one part of events, and what the assembly needs to know of them."""

    columns: list[pl.Series]  # named with their prefix, in sorted order per source
    counts: dict[str, int]  # column name -> non-null values in the part
    over: bool  # a source had more than the cap of keys: the part carries no flat columns


def part_columns(events: pl.DataFrame, *, limit: int | None = None) -> PartColumns:
    """The flat columns of one part (a key null in all of its rows has none).

    A source with more keys than ``limit`` in this part alone is over the cap for the whole
    table too, unless its extra keys only occur in dropped copies: the assembly then decodes
    the deduped table itself (``over``), as :func:`add_flat_columns` would.
    """
    limit = MAX_FLAT_COLUMNS if limit is None else limit
    columns: list[pl.Series] = []
    counts: dict[str, int] = {}
    for source, prefix in PREFIXES.items():
        texts = events.get_column(source)
        flat = extracted_fields(texts, limit)
        if flat is None:  # more keys than the cap, some perhaps null everywhere: decode
            names, parts = _decoded_slices(texts)
            if len(names) > limit:
                return PartColumns([], {}, over=True)
            flat = _union(names, parts)
        for column in flat.iter_columns():
            column = column.alias(prefix + column.name)
            columns.append(column)
            counts[column.name] = column.len() - column.null_count()
    return PartColumns(columns, counts, over=False)


def extracted_fields(texts: pl.Series, limit: int) -> pl.DataFrame | None:
    """What :func:`decode_fields` gives, in sorted order, by DuckDB (None: over ``limit`` keys).

    DuckDB lists the keys (``json_keys``) and extracts them all in one pass per row on its
    threads: about half the CPU of Polars' ``json_decode`` on Segment-like context. Each
    distinct text is read once and joined back: events repeat their context and properties
    (on the benchmark's events a third of the context texts of a part are distinct).
    """
    rows = pl.DataFrame({"t": texts})
    distinct = rows.unique("t", maintain_order=True)
    con = duckdb.connect()
    try:
        con.register("texts", distinct)
        found = con.sql("SELECT DISTINCT unnest(json_keys(t)) FROM texts").fetchall()
        keys = sorted(str(key) for (key,) in found)
        if len(keys) > limit:
            return None
        if not keys:
            return pl.DataFrame()
        # JSON pointers: a key is any text ("a.b", "~", "/", "*", ""), only ~ and / need escapes.
        pointers = ["/" + key.replace("~", "~0").replace("/", "~1") for key in keys]
        values = (
            con.sql(
                "SELECT json_extract_string(t, $pointers) AS v FROM texts",
                params={"pointers": pointers},
            )
            .pl()
            .get_column("v")
        )
    finally:
        con.close()
    # Positional struct fields: a key may be any text, "t" or "v" included.
    struct = values.list.to_struct(fields=[f"_{index}" for index in range(len(keys))])
    table = distinct.with_columns(struct.alias("v"))
    joined = rows.join(table, on="t", how="left", maintain_order="left", nulls_equal=True)
    fields = joined.get_column("v").struct.unnest()
    # decode_fields leaves out a key that is null in every row (its column would be all null).
    return pl.DataFrame(
        {key: column for key, column in zip(keys, fields.iter_columns(), strict=True)
         if column.null_count() < column.len()}
    )  # fmt: skip


def decode_fields(texts: pl.Series) -> pl.DataFrame:
    """The String fields of one slice of flat-tagged JSON objects, in order of first appearance.

    A key that is null in every row of the slice is left out (its column would be all null).
    """
    decoded = texts.str.json_decode(infer_schema_length=None)
    if not isinstance(decoded.dtype, pl.Struct):
        return pl.DataFrame()
    # Fields are taken as Series, not selected by name: a key is any JSON text, and Polars
    # reads the names "*" and "^...$" in select() as a wildcard and a regex.
    # (Built from a dict: a frame built from a list renames the column of the key "" column_N.)
    unnested = decoded.struct.unnest()
    return pl.DataFrame(
        {
            f.name: unnested.to_series(i)
            for i, f in enumerate(decoded.dtype.fields)
            if f.dtype == pl.String
        }
    )


def _flat_frame(texts: pl.Series, limit: int) -> pl.DataFrame | None:
    """The String fields of the decoded objects in sorted order (None: none, or over ``limit``)."""
    names, parts = _decoded_slices(texts)
    if not names or len(names) > limit:
        return None
    return _union(names, parts)


def _decoded_slices(texts: pl.Series) -> tuple[list[str], list[tuple[int, pl.DataFrame]]]:
    """The sorted field names and each slice's decoded fields, decoded a slice at a time.

    A whole-column decode holds every field of every row at once (about 5 KB per event on
    Segment-like context, tens of GB at 10M events); slices keep that to one slice.
    """
    parts: list[tuple[int, pl.DataFrame]] = []
    for start in range(0, texts.len(), DECODE_ROWS):
        chunk = texts.slice(start, DECODE_ROWS)
        parts.append((chunk.len(), decode_fields(chunk)))
    found: set[str] = set()
    for _, part in parts:
        found.update(part.columns)
    return sorted(found), parts


def _union(names: list[str], parts: list[tuple[int, pl.DataFrame]]) -> pl.DataFrame:
    """The slices stacked with the columns ``names``: flat-tagged values are always strings,
    so a key absent from a slice is simply null in its rows."""
    return pl.concat(
        [
            pl.DataFrame(
                {
                    name: part.get_column(name) if name in part.columns
                    else pl.repeat(None, height, dtype=pl.String, eager=True)
                    for name in names
                }
            )
            for height, part in parts
        ]
    )  # fmt: skip
