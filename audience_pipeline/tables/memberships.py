"""Membership rows from a level frame's audience columns (`ir.naming.audience_column`)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.naming import ENTITY, audience_column

UNPIVOT_ROWS = 250_000  # entities unpivoted at a time


def memberships(frame: pl.DataFrame, audiences: list[ir.Audience], level: str,
                as_of: datetime) -> pl.DataFrame:  # fmt: skip
    """audience_key, level, entity_id, as_of: one row per entity whose audience column holds."""
    schema = {"audience_key": pl.String, "level": pl.String, "entity_id": pl.String}
    if audiences:
        # One unpivot of the boolean columns instead of one filter pass per audience, over
        # slices of the entities: unpivoted whole, every (entity, audience) pair is a row
        # before the filter (120M rows for 2.4M profiles and 50 audiences).
        columns = {audience_column(a.key): a.key for a in audiences}
        thin = frame.select(pl.col(ENTITY).cast(pl.String), *columns)
        result = pl.concat(
            [
                thin.slice(start, UNPIVOT_ROWS)
                .unpivot(index=ENTITY, on=list(columns), variable_name="audience_key")
                .filter(pl.col("value"))
                .select(
                    pl.col("audience_key").replace_strict(columns, return_dtype=pl.String),
                    pl.lit(level).alias("level"),
                    pl.col(ENTITY).alias("entity_id"),
                )
                for start in range(0, max(1, thin.height), UNPIVOT_ROWS)
            ]
        )
    else:
        result = pl.DataFrame(schema=schema)
    return result.with_columns(pl.lit(as_of).cast(pl.Datetime("us", "UTC")).alias("as_of")).sort(
        "audience_key", "entity_id"
    )


def account_user_memberships(memberships: pl.DataFrame, members: pl.DataFrame) -> pl.DataFrame:
    """audience_key, account_id, profile_id: the member profiles of each member account."""
    accounts = memberships.filter(pl.col("level") == "account").select(
        "audience_key", pl.col("entity_id").alias("account_id")
    )
    return (
        accounts.join(members, on="account_id", how="inner")
        .select("audience_key", "account_id", "profile_id")
        .sort("audience_key", "account_id", "profile_id")
    )
