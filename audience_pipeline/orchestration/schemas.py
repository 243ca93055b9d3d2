"""pandera contracts of the warehouse tables (checked by asset checks after each write)."""

from __future__ import annotations

import pandera.polars as pa
import polars as pl

UTC_US = pl.Datetime("us", "UTC")
_CHANGE = pa.Check.isin(["entered", "exited"])
_LEVEL = pa.Check.isin(["user", "account"])

SCHEMAS: dict[str, pa.DataFrameSchema] = {
    "identities": pa.DataFrameSchema(
        {
            "profile_id": pa.Column(pl.String, nullable=False),
            "id_type": pa.Column(pl.String, nullable=False),
            "id_value": pa.Column(pl.String, nullable=False),
        },
        unique=["profile_id", "id_type", "id_value"],
    ),
    "user_traits": pa.DataFrameSchema(
        {"profile_id": pa.Column(pl.String, nullable=False, unique=True)}, strict=False
    ),
    "account_traits": pa.DataFrameSchema(
        {"account_id": pa.Column(pl.String, nullable=False, unique=True)}, strict=False
    ),
    "memberships": pa.DataFrameSchema(
        {
            "audience_key": pa.Column(pl.String, nullable=False),
            "level": pa.Column(pl.String, _LEVEL, nullable=False),
            "entity_id": pa.Column(pl.String, nullable=False),
            "as_of": pa.Column(UTC_US, nullable=False),
        }
    ),
    "account_user_memberships": pa.DataFrameSchema(
        {
            "audience_key": pa.Column(pl.String, nullable=False),
            "account_id": pa.Column(pl.String, nullable=False),
            "profile_id": pa.Column(pl.String, nullable=False),
        }
    ),
    "membership_changes": pa.DataFrameSchema(
        {
            "audience_key": pa.Column(pl.String, nullable=False),
            "level": pa.Column(pl.String, _LEVEL, nullable=False),
            "entity_id": pa.Column(pl.String, nullable=False),
            "change": pa.Column(pl.String, _CHANGE, nullable=False),
            "as_of": pa.Column(UTC_US, nullable=False),
        }
    ),
    "membership_history": pa.DataFrameSchema(
        {
            "audience_key": pa.Column(pl.String, nullable=False),
            "level": pa.Column(pl.String, _LEVEL, nullable=False),
            "entity_id": pa.Column(pl.String, nullable=False),
            "valid_from": pa.Column(UTC_US, nullable=False),
            "valid_to": pa.Column(UTC_US, nullable=True),
        },
        checks=pa.Check(
            lambda data: data.lazyframe.select(
                pl.col("valid_to").is_null() | (pl.col("valid_to") >= pl.col("valid_from"))
            ),
            name="valid_to_after_valid_from",
        ),
    ),
    "membership_snapshots": pa.DataFrameSchema(
        {
            "snapshot_date": pa.Column(pl.Date, nullable=False),
            "audience_key": pa.Column(pl.String, nullable=False),
            "level": pa.Column(pl.String, _LEVEL, nullable=False),
            "entity_id": pa.Column(pl.String, nullable=False),
        },
        unique=["snapshot_date", "audience_key", "level", "entity_id"],
    ),
    "quarantine": pa.DataFrameSchema(
        {
            "raw": pa.Column(pl.String, nullable=True),
            "source": pa.Column(pl.String, nullable=False),
            "line": pa.Column(pl.Int64, nullable=True),
            "reason": pa.Column(pl.String, nullable=False),
        }
    ),
}


def problems(name: str, frame: pl.DataFrame) -> pl.DataFrame | None:
    """pandera's failure cases of a table (None when it holds its contract)."""
    try:
        SCHEMAS[name].validate(frame, lazy=True)
    except pa.errors.SchemaErrors as error:
        return pl.DataFrame(error.failure_cases)
    return None
