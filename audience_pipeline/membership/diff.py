"""Membership changes (enter/exit diffs) and SCD-2 history between two runs."""

from __future__ import annotations

from datetime import datetime

import polars as pl

KEYS = ["audience_key", "level", "entity_id"]
CHANGES_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "audience_key": pl.String,
    "level": pl.String,
    "entity_id": pl.String,
    "change": pl.String,
    "as_of": pl.Datetime("us", "UTC"),
}
HISTORY_SCHEMA: dict[str, pl.DataType | type[pl.DataType]] = {
    "audience_key": pl.String,
    "level": pl.String,
    "entity_id": pl.String,
    "valid_from": pl.Datetime("us", "UTC"),
    "valid_to": pl.Datetime("us", "UTC"),
}


def _stamp(as_of: datetime) -> pl.Expr:
    return pl.lit(as_of).cast(pl.Datetime("us", "UTC"))


def membership_changes(
    previous: pl.DataFrame | None, current: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    """Entities that entered or exited each audience since the previous run (all enter on the first)."""
    current_keys = current.select(KEYS)
    previous_keys = previous.select(KEYS) if previous is not None else current_keys.clear()
    entered = current_keys.join(previous_keys, on=KEYS, how="anti").with_columns(
        pl.lit("entered").alias("change")
    )
    exited = previous_keys.join(current_keys, on=KEYS, how="anti").with_columns(
        pl.lit("exited").alias("change")
    )
    return (
        pl.concat([entered, exited])
        .with_columns(_stamp(as_of).alias("as_of"))
        .cast(CHANGES_SCHEMA)  # type: ignore[arg-type]
        .sort([*KEYS, "change"])
    )


def membership_history(
    previous: pl.DataFrame | None, changes: pl.DataFrame, as_of: datetime
) -> pl.DataFrame:
    """SCD-2 rows: an entry opens a row at as_of, an exit closes the open row at as_of."""
    history = previous if previous is not None else pl.DataFrame(schema=HISTORY_SCHEMA)
    exits = (
        changes.filter(pl.col("change") == "exited")
        .select(KEYS)
        .with_columns(pl.lit(True).alias("_exit"))
    )
    history = (
        history.join(exits, on=KEYS, how="left")
        .with_columns(
            pl.when(pl.col("_exit") & pl.col("valid_to").is_null())
            .then(_stamp(as_of))
            .otherwise(pl.col("valid_to"))
            .alias("valid_to")
        )
        .drop("_exit")
    )
    opened = changes.filter(pl.col("change") == "entered").select(
        *KEYS,
        _stamp(as_of).alias("valid_from"),
        pl.lit(None).cast(pl.Datetime("us", "UTC")).alias("valid_to"),
    )
    return pl.concat([history.cast(HISTORY_SCHEMA), opened.cast(HISTORY_SCHEMA)]).sort(  # type: ignore[arg-type]
        [*KEYS, "valid_from"]
    )
