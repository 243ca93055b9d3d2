"""`sample` nodes (SPEC 7): sticky buckets from each entity's anchor identifier.

A profile's anchor is its identifier of the highest-priority type it holds, the smallest value
(code-point order) within that type; an account's is its groupId (type `group_id`). The bucket
is int(sha256("<salt>:<id_type>:<value>")[:16 hex], 16) mod 10000.
"""

from __future__ import annotations

import hashlib

import polars as pl

from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.ir import nodes as ir

BUCKETS = 10000


def bucket(salt: str, id_type: str, value: str) -> int:
    digest = hashlib.sha256(f"{salt}:{id_type}:{value}".encode()).hexdigest()
    return int(digest[:16], 16) % BUCKETS


def profile_anchors(identities: pl.DataFrame, id_types: tuple[str, ...], owner: str = "profile_id"
                    ) -> pl.DataFrame:  # fmt: skip
    """owner, id_type, id_value: each profile's anchor (polars compares strings by code point)."""
    rank = pl.col("id_type").replace_strict(
        {t: i for i, t in enumerate(id_types)}, default=len(id_types), return_dtype=pl.Int64
    )
    return (
        identities.select(owner, "id_type", "id_value")
        .with_columns(rank.alias("_rank"))
        .sort(owner, "_rank", "id_value")
        .group_by(owner, maintain_order=True)
        .first()
        .drop("_rank")
    )


def account_anchors(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        ENTITY, pl.lit("group_id").alias("id_type"), pl.col(ENTITY).alias("id_value")
    )


def detail_columns(column: str) -> tuple[str, str]:
    """The bucket and anchor-text columns `with_sample_columns(..., detail=True)` adds."""
    return f"{column}__bucket", f"{column}__anchor"


def with_sample_columns(frame: pl.DataFrame, samples: dict[ir.Condition, str],
                        anchors: pl.DataFrame, *, detail: bool = False) -> pl.DataFrame:  # fmt: skip
    """One boolean column per sample node: is the entity's bucket in [low, high)?

    `anchors`: entity_id, id_type, id_value (entities without an anchor are in no sample).
    `detail`: also keep each entity's bucket and anchor (explain shows them).
    """
    if not samples:
        return frame
    pairs = anchors.select("id_type", "id_value").unique()
    types, values = pairs["id_type"].to_list(), pairs["id_value"].to_list()
    for node, column in samples.items():
        assert isinstance(node, ir.Sample)
        buckets = pairs.with_columns(
            pl.Series("_bucket", [bucket(node.salt, t, v) for t, v in zip(types, values, strict=True)],
                      dtype=pl.Int64)
        )  # fmt: skip
        bucket_column, anchor_column = detail_columns(column)
        holds = anchors.join(buckets, on=["id_type", "id_value"], how="inner").select(
            ENTITY,
            pl.col("_bucket").is_between(node.low, node.high - 1).alias(column),
            *([pl.col("_bucket").alias(bucket_column),
               pl.concat_str("id_type", pl.lit(":"), "id_value").alias(anchor_column)]
              if detail else []),
        )  # fmt: skip
        # One anchor per entity: the sample's columns are joined to the entity column alone
        # and set beside the frame's (a join of the whole frame copied every column: 1.7 GB
        # at 30M events).
        keyed = frame.select(ENTITY).join(holds, on=ENTITY, how="left", maintain_order="left")
        frame = frame.with_columns(keyed.drop(ENTITY)).with_columns(pl.col(column).fill_null(False))
    return frame


__all__ = ["account_anchors", "bucket", "detail_columns", "profile_anchors", "with_sample_columns"]
