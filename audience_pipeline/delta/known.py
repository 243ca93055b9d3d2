"""Run the engine over messages whose profiles are already known.

The engine resolves identity itself. When the caller already knows each message's profile (from
the previous run's state, or from resolving just the touched identifier components), `compute`
is handed that resolution instead: each message's profile, and one identifier row per profile
whose type says the one thing the engine reads from identifier types, whether the profile is
known (holds a user_id or an email), which gates audiences without `include_anonymous`.

This also lets a pass carry only some of a profile's messages (an account pass needs only the
members' events that account results read); the rows of such profiles are then not valid and the
caller drops them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import polars as pl

from audience_pipeline.engine.compute import KNOWN_TYPES, ComputeResult, compute
from audience_pipeline.identity.result import IdentityResult
from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.models import SpaceConfig

_KNOWN = sorted(KNOWN_TYPES)[0]
_ANONYMOUS = "anonymous"  # any type outside KNOWN_TYPES: only known / not known is read


def run_known(
    messages: pl.DataFrame,
    trait_updates: pl.DataFrame,
    profiles: pl.DataFrame,
    space_config: SpaceConfig,
    space: ir.Space,
    as_of: datetime,
    keep_json: Mapping[str, Collection[str]] | None = None,
    with_user_traits: bool = True,
    identities: pl.DataFrame | None = None,
    order: pl.Series | None = None,
) -> ComputeResult:
    """`compute` over `messages` (event columns plus `profile_id`) with those profiles.

    Args:
        messages: normalized events at or before as-of, sorted by seq, with a `profile_id`
            column.
        trait_updates: the trait updates of those messages.
        profiles: `profile_id`, `known` (Boolean) of every profile in `messages`.
        space_config: the space.
        space: the compiled space.
        as_of: the as-of.
        keep_json: per traits table, columns to keep as JSON text (`compute`'s argument).
        with_user_traits: False leaves user_traits empty (`compute`'s argument).
        identities: profile_id, id_type, id_value of those profiles, when `sample` nodes need
            their anchors (the identity handed to `compute` only says known / not known).
        order: each message's place in processing order (aligned with `messages`): the
            engine then needs no messageIds (`delta.ties`).

    Returns:
        The engine's result (its identities and message_profiles are the ones handed in).
    """
    assert _ANONYMOUS not in KNOWN_TYPES
    identity = IdentityResult(
        message_profiles=messages.select("seq", "profile_id"),
        identities=profiles.select(
            "profile_id",
            id_type=pl.when(pl.col("known")).then(pl.lit(_KNOWN)).otherwise(pl.lit(_ANONYMOUS)),
            id_value=pl.col("profile_id"),
        ),
        stats={"profiles": profiles.height},
        order=order,
    )
    return compute(
        messages.drop("profile_id"),
        trait_updates,
        space_config,
        space,
        as_of,
        identity=identity,
        keep_json=keep_json,
        with_user_traits=with_user_traits,
        sample_identities=identities,
    )


__all__ = ["run_known"]
