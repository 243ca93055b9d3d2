"""Column types of the normalized tables and the pandera contract of the events table."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

from audience_pipeline.message_types import EVENT_TYPES, MESSAGE_TYPES

UTC_US = pl.Datetime("us", "UTC")
ID_STRUCT = pl.Struct({"id_type": pl.String, "id_value": pl.String})
IDS_DTYPE = pl.List(ID_STRUCT)

EVENTS_COLUMNS: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "message_id": pl.String(),
    "type": pl.String(),
    "event": pl.String(),
    "timestamp": UTC_US,
    "received_at": UTC_US,
    "ids": IDS_DTYPE,
    "previous_id": pl.String(),
    "group_id": pl.String(),
    "properties": pl.String(),
    "context": pl.String(),
    "source": pl.String(),
    "line": pl.Int64(),
}

TRAIT_UPDATES_COLUMNS: dict[str, pl.DataType] = {
    "seq": pl.Int64(),
    "kind": pl.String(),
    "key": pl.String(),
    "value": pl.String(),
    "tagged": pl.String(),
}

QUARANTINE_COLUMNS: dict[str, pl.DataType] = {
    "raw": pl.String(),
    "source": pl.String(),
    "line": pl.Int64(),
    "reason": pl.String(),
}


def _event_name_matches_type(data: pa.PolarsData) -> pl.LazyFrame:
    # Events (track/page/screen) always carry a name; the other calls never do.
    is_event = pl.col("type").is_in(EVENT_TYPES)
    return data.lazyframe.select(is_event == pl.col("event").is_not_null())


def _group_has_group_id(data: pa.PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select((pl.col("type") != "group") | pl.col("group_id").is_not_null())


def _has_identifier(data: pa.PolarsData) -> pl.LazyFrame:
    return data.lazyframe.select(pl.col("ids").list.len() > 0)


EVENTS_SCHEMA = pa.DataFrameSchema(
    {
        "seq": pa.Column(pl.Int64, nullable=False, unique=True),
        "message_id": pa.Column(pl.String, nullable=True),
        "type": pa.Column(pl.String, pa.Check.isin(MESSAGE_TYPES), nullable=False),
        "event": pa.Column(pl.String, nullable=True),
        "timestamp": pa.Column(UTC_US, nullable=False),
        "received_at": pa.Column(UTC_US, nullable=True),
        "ids": pa.Column(IDS_DTYPE, nullable=False),
        "previous_id": pa.Column(pl.String, nullable=True),
        "group_id": pa.Column(pl.String, nullable=True),
        "properties": pa.Column(pl.String, nullable=False),
        "context": pa.Column(pl.String, nullable=False),
        "source": pa.Column(pl.String, nullable=False),
        "line": pa.Column(pl.Int64, pa.Check.ge(1), nullable=False),
    },
    checks=[
        pa.Check(_event_name_matches_type, name="event_name_matches_type"),
        pa.Check(_group_has_group_id, name="group_has_group_id"),
        pa.Check(_has_identifier, name="has_identifier"),
    ],
    strict=True,
    ordered=True,
    name="events",
)


def empty_frame(columns: dict[str, pl.DataType]) -> pl.DataFrame:
    """An empty DataFrame with the given column types."""
    return pl.DataFrame(schema=columns)
