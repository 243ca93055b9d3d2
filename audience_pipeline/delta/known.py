"""Run the engine over messages whose profiles are already known.

The engine resolves identity itself. When the caller already knows each message's profile (from
the previous run's state, or from resolving just the touched identifier components), the messages
are handed to `compute` with one synthetic identifier each, the profile id itself, so identity
resolution puts every profile's messages in one profile again; its results are mapped back to the
real ids. The synthetic identifier's type keeps the one thing the engine reads from identifier
types: whether a profile is known (holds a user_id or an email), which gates audiences without
`include_anonymous`.

This also lets a pass carry only some of a profile's messages (an account pass needs only the
members' events that account results read); the rows of such profiles are then not valid and the
caller drops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from audience_pipeline.engine.compute import KNOWN_TYPES, ComputeResult, compute
from audience_pipeline.identity.result import profile_ids
from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.models import SpaceConfig

_ID = pl.Struct({"id_type": pl.String, "id_value": pl.String})


@dataclass(frozen=True)
class SyntheticTypes:
    """Identifier types standing for known and anonymous profiles (None: none configured)."""

    known: str | None
    anonymous: str | None

    @staticmethod
    def of(space: SpaceConfig) -> SyntheticTypes:
        types = [spec.type for spec in sorted(space.identifiers, key=lambda s: s.priority)]
        known = next((t for t in types if t in KNOWN_TYPES), None)
        anonymous = next((t for t in types if t not in KNOWN_TYPES), None)
        return SyntheticTypes(known, anonymous)


def run_known(
    messages: pl.DataFrame,
    trait_updates: pl.DataFrame,
    profiles: pl.DataFrame,
    space_config: SpaceConfig,
    space: ir.Space,
    as_of: datetime,
) -> ComputeResult | None:
    """`compute` over `messages` (event columns plus `profile_id`) with those profiles.

    Args:
        messages: normalized events at or before as-of, with a `profile_id` column.
        trait_updates: the trait updates of those messages.
        profiles: `profile_id`, `known` (Boolean) of every profile in `messages`.
        space_config: the space (identifier types).
        space: the compiled space.
        as_of: the as-of.

    Returns:
        The engine's result with real profile ids (identities and message_profiles are the
        synthetic ones' and meaningless), or None when the space lacks an identifier type
        needed to stand for a known or an anonymous profile.
    """
    types = SyntheticTypes.of(space_config)
    needs_known = bool(profiles["known"].any())
    needs_anonymous = not bool(profiles["known"].all())
    if (needs_known and types.known is None) or (needs_anonymous and types.anonymous is None):
        return None
    typed = profiles.select(
        "profile_id",
        id_type=pl.when(pl.col("known"))
        .then(pl.lit(types.known, dtype=pl.String))
        .otherwise(pl.lit(types.anonymous, dtype=pl.String)),
    )
    keys = typed.select(key=pl.format("{}:{}", "id_type", "profile_id"))["key"].to_list()
    back = typed.with_columns(synthetic=pl.Series(profile_ids(keys), dtype=pl.String))
    rewritten = (
        messages.drop("ids", "previous_id")
        .join(typed, on="profile_id", how="left")
        .with_columns(
            ids=pl.concat_list(
                pl.struct(pl.col("id_type"), pl.col("profile_id").alias("id_value"))
            ).cast(pl.List(_ID)),
            previous_id=pl.lit(None, dtype=pl.String),
        )
        .drop("id_type", "profile_id")
        .sort("seq")
    )
    result = compute(rewritten, trait_updates, space_config, space, as_of)
    mapping = dict(zip(back["synthetic"].to_list(), back["profile_id"].to_list(), strict=True))

    def real(frame: pl.DataFrame, column: str) -> pl.DataFrame:
        return frame.with_columns(pl.col(column).replace_strict(mapping, default=None))

    memberships = result.memberships.with_columns(
        pl.when(pl.col("level") == "user")
        .then(pl.col("entity_id").replace(mapping))
        .otherwise(pl.col("entity_id"))
        .alias("entity_id")
    )
    return ComputeResult(
        as_of=result.as_of,
        identities=result.identities,
        user_traits=real(result.user_traits, "profile_id"),
        account_traits=result.account_traits,
        memberships=memberships,
        account_user_memberships=real(result.account_user_memberships, "profile_id"),
        message_profiles=real(result.message_profiles, "profile_id"),
        stats=result.stats,
        json_columns=result.json_columns,
    )


__all__ = ["SyntheticTypes", "run_known"]
