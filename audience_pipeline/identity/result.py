"""What identity resolution returns, and the small rules both resolvers share."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import polars as pl

from audience_pipeline.spec.models import SpaceConfig

MESSAGE_PROFILES_SCHEMA = pl.Schema({"seq": pl.Int64, "profile_id": pl.String})
IDENTITIES_SCHEMA = pl.Schema(
    {"profile_id": pl.String, "id_type": pl.String, "id_value": pl.String}
)

# The type a never-seen previousId gets (SPEC 1: "`user_id` if never seen").
ALIAS_FALLBACK_TYPE = "user_id"


@dataclass(frozen=True)
class IdentityResult:
    """Profiles resolved from messages.

    Attributes:
        message_profiles: ``seq`` (Int64), ``profile_id`` (String): one row per input message,
            sorted by ``seq``.
        identities: ``profile_id``, ``id_type``, ``id_value``: every identifier some message
            linked, sorted by those three columns.
        stats: ``profiles`` (distinct profile ids), ``components`` (connected components of
            the identifier graph), ``sequential_components`` (components where a limit bites,
            resolved by the rule in Python) and ``sequential_messages`` (their messages).
            `resolve_sequential` builds no graph: it reports every profile as a component
            and every message as sequential.
    """

    message_profiles: pl.DataFrame
    identities: pl.DataFrame
    stats: dict[str, int]
    # Each message's place in processing order (0..n-1), aligned with message_profiles' rows,
    # when the resolver computed it (the engine reuses it instead of sorting again).
    order: pl.Series | None = None
    # Dense integer codes of the profiles (0..profiles-1), aligned with message_profiles' rows,
    # and the profile id of each code (code_names[code]): the engine groups and joins on these
    # integers and turns them back into ids only in its output tables.
    codes: pl.Series | None = None
    code_names: pl.Series | None = None


def profile_id(id_type: str, id_value: str) -> str:
    """The id of a profile created by the identifier ``id_type:id_value``.

    Args:
        id_type: Identifier type, e.g. ``user_id``.
        id_value: Normalized identifier value.

    Returns:
        ``"p_"`` followed by the first 20 hex digits of sha256 of ``"{id_type}:{id_value}"``.
    """
    return "p_" + hashlib.sha256(f"{id_type}:{id_value}".encode()).hexdigest()[:20]


def profile_ids(keys: list[str]) -> list[str]:
    """`profile_id` of many ``"{id_type}:{id_value}"`` keys (the hot loop, kept flat)."""
    sha = hashlib.sha256
    return ["p_" + sha(key.encode()).hexdigest()[:20] for key in keys]


def alias_fallback_type(space: SpaceConfig) -> str:
    """The type a previousId takes when it was never seen before its alias call.

    Args:
        space: The space's identifier configuration.

    Returns:
        ``user_id`` when the space has that type, else its highest-priority type.
    """
    if space.identifier(ALIAS_FALLBACK_TYPE) is not None:
        return ALIAS_FALLBACK_TYPE
    if not space.identifiers:
        msg = f"{space.file}: identifiers: the space defines no identifier types"
        raise ValueError(msg)
    return min(space.identifiers, key=lambda spec: spec.priority).type


def type_ranks(space: SpaceConfig) -> dict[str, int]:
    """Linking order of the identifier types: 0 for the highest priority, then 1, 2, ...

    Ties in priority (not expected from space.yaml, where priority is list order) fall back to
    the type name, so that both resolvers order identifiers the same way.
    """
    ordered = sorted(space.identifiers, key=lambda spec: (spec.priority, spec.type))
    return {spec.type: rank for rank, spec in enumerate(ordered)}


def type_limits(space: SpaceConfig) -> dict[str, int]:
    """Most distinct values of each configured identifier type one profile may hold."""
    return {spec.type: spec.limit for spec in space.identifiers}


def limits_by_rank(space: SpaceConfig) -> dict[int, int]:
    """Identifier limit by type rank (the SQL script's ``trank``)."""
    ranks, limits = type_ranks(space), type_limits(space)
    return {rank: limits[t] for t, rank in ranks.items()}


def empty_result() -> IdentityResult:
    """The result for no messages."""
    return IdentityResult(
        message_profiles=pl.DataFrame(schema=MESSAGE_PROFILES_SCHEMA),
        identities=pl.DataFrame(schema=IDENTITIES_SCHEMA),
        stats=dict.fromkeys(
            ("profiles", "components", "sequential_components", "sequential_messages"), 0
        ),
    )
