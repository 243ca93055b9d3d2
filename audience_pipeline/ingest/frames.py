"""Rows of a chunk -> typed polars DataFrames (one conversion per chunk, not per row)."""

from __future__ import annotations

from itertools import accumulate

import polars as pl
import pyarrow as pa

from audience_pipeline.ingest.normalize import ROW_FIELDS, Columns
from audience_pipeline.ingest.schema import (
    EVENTS_COLUMNS,
    QUARANTINE_COLUMNS,
    TRAIT_UPDATES_COLUMNS,
    UTC_US,
    empty_frame,
)

_ID_FIELDS = [pa.field("id_type", pa.string()), pa.field("id_value", pa.string())]
_TIME_FIELDS = frozenset(("timestamp", "received_at"))


def _ids_series(cols: Columns) -> pl.Series:
    # Built from flat arrays and offsets: polars' inference over Python lists of dicts is slow.
    offsets = [0, *accumulate(cols.id_counts)]
    structs = pa.StructArray.from_arrays(
        [pa.array(cols.id_types, pa.string()), pa.array(cols.id_values, pa.string())],
        fields=_ID_FIELDS,
    )
    lists = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), structs)
    series = pl.from_arrow(lists)
    assert isinstance(series, pl.Series)
    return series.alias("ids").cast(EVENTS_COLUMNS["ids"])


def events_frame(cols: Columns, source: str) -> pl.DataFrame:
    """The events rows of a chunk."""
    if not cols.rows:
        return empty_frame(EVENTS_COLUMNS)
    data = dict(zip(ROW_FIELDS, zip(*cols.rows, strict=True), strict=True))
    series: list[pl.Series] = []
    for name, dtype in EVENTS_COLUMNS.items():
        if name == "ids":
            series.append(_ids_series(cols))
        elif name == "source":
            series.append(
                pl.repeat(source, len(cols.rows), dtype=pl.String, eager=True).alias(name)
            )
        elif name in _TIME_FIELDS:
            series.append(pl.Series(name, data[name], pl.Int64).cast(UTC_US))
        else:
            series.append(pl.Series(name, data[name], dtype))
    return pl.DataFrame(series)


def trait_updates_frame(cols: Columns) -> pl.DataFrame:
    """The trait update rows of a chunk."""
    return pl.DataFrame(cols.traits, schema=TRAIT_UPDATES_COLUMNS, orient="row")


def quarantine_frame(cols: Columns, source: str) -> pl.DataFrame:
    """The quarantine rows of a chunk."""
    return pl.DataFrame(
        [(raw, source, line, reason) for raw, line, reason in cols.quarantined],
        schema=QUARANTINE_COLUMNS,
        orient="row",
    )
