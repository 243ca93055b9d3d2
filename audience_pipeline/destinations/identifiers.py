"""Which identifiers a profile is sent under: per id type the first, last or all of its values.

"First" and "last" follow the order in which a profile gained its values: by the earliest message
carrying each value (a ``first_seen`` column of the identities table if present, else the
normalized events kept beside the warehouse, else value text order). The result per profile is a
canonical JSON object ``{"user_id": ["u1"], "email": ["a@x.com", "b@x.com"]}`` with id types in
the space's priority order: the ledger compares these texts to notice new identifiers.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from audience_pipeline.destinations.config import Strategy
from audience_pipeline.spec.models import SpaceConfig

IDS_SCHEMA = {"profile_id": pl.String, "ids": pl.String}


def default_strategies(space: SpaceConfig) -> dict[str, Strategy]:
    """Every space id type, all values (as Segment sends one call per email), but anonymous ids:
    only the latest one, since a profile may hold a hundred of them."""
    ordered = sorted(space.identifiers, key=lambda spec: spec.priority)
    return {spec.type: ("last" if spec.type == "anonymous_id" else "all") for spec in ordered}


def ordered_strategies(strategies: dict[str, Strategy], space: SpaceConfig) -> dict[str, Strategy]:
    """The destination's strategies with id types in the space's priority order."""
    rank = {spec.type: spec.priority for spec in space.identifiers}
    return dict(sorted(strategies.items(), key=lambda kv: (rank.get(kv[0], 1 << 30), kv[0])))


def first_seen(warehouse_dir: Path, identities: pl.DataFrame) -> pl.DataFrame | None:
    """``id_type, id_value, first_seen`` (when each identifier value first appeared), if known."""
    if "first_seen" in identities.columns:
        return identities.select("id_type", "id_value", "first_seen").unique(
            ["id_type", "id_value"]
        )
    events = warehouse_dir / "_normalized" / "events.parquet"
    if not events.exists():
        return None
    return (
        pl.scan_parquet(events)
        .select("ids", "timestamp")
        .explode("ids")
        .drop_nulls("ids")
        .select(pl.col("ids").struct.unnest(), "timestamp")
        .group_by("id_type", "id_value")
        .agg(pl.col("timestamp").min().alias("first_seen"))
        .collect()
    )


def _json_list(column: str) -> pl.Expr:
    encoded = pl.struct(pl.col(column).alias("x")).struct.json_encode()
    # strip {"x": and }; str.slice counts characters, not bytes
    return encoded.str.slice(5, encoded.str.len_chars() - 6)


def select_identifiers(
    identities: pl.DataFrame,
    strategies: dict[str, Strategy],
    order: pl.DataFrame | None,
) -> pl.DataFrame:
    """Per profile the JSON text of the identifiers it is sent under.

    Args:
        identities: ``profile_id, id_type, id_value``.
        strategies: id type -> first | last | all, in the order the JSON should list them.
        order: ``id_type, id_value, first_seen`` or None (then values order by their text).

    Returns:
        ``profile_id, ids``; profiles holding none of the types are absent.
    """
    types = list(strategies)
    if not types or identities.is_empty():
        return pl.DataFrame(schema=IDS_SCHEMA)
    frame = identities.select("profile_id", "id_type", "id_value").filter(
        pl.col("id_type").is_in(types)
    )
    if order is not None:
        frame = frame.join(order, on=["id_type", "id_value"], how="left", maintain_order="left")
    else:
        frame = frame.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("first_seen"))
    strategy = pl.col("id_type").replace_strict(strategies, return_dtype=pl.String)
    rank = pl.col("id_type").replace_strict({t: i for i, t in enumerate(types)},
                                            return_dtype=pl.Int32)  # fmt: skip
    per_type = (
        frame.sort("profile_id", "id_type", "first_seen", "id_value", nulls_last=True)
        .group_by("profile_id", "id_type", maintain_order=True)
        .agg(pl.col("id_value"))
        .with_columns(strategy.alias("strategy"), rank.alias("rank"))
        .with_columns(
            pl.when(pl.col("strategy") == "first")
            .then(pl.col("id_value").list.head(1))
            .when(pl.col("strategy") == "last")
            .then(pl.col("id_value").list.tail(1))
            .otherwise(pl.col("id_value"))
            .alias("id_value")
        )
        .with_columns(
            (pl.lit('"') + pl.col("id_type") + pl.lit('":') + _json_list("id_value")).alias("part")
        )
    )
    return (
        per_type.sort("profile_id", "rank")
        .group_by("profile_id", maintain_order=True)
        .agg(pl.col("part"))
        .with_columns(pl.col("part").list.join(","))  # faster than str.join inside agg
        .select("profile_id", (pl.lit("{") + pl.col("part") + pl.lit("}")).alias("ids"))
    )
