"""Run the engine on a few entities' own messages: the frames explain reads node values from.

This follows `engine.compute.compute` step for step after identity resolution (which explain
does not redo: each message already carries the profile the run gave it), and calls the same
functions: `latest_traits`, `evaluate_level` (the fused per-level plan), `condition_expr` and
the `users:` fold. Only the entities differ: the profiles asked about (plus, for an account, all
its members), so a node's value here is the value the run computed. The agreement test
(tests/api/test_explain.py::test_explain_agrees_with_memberships_for_every_entity) holds explain
to the memberships of a full run.

The steps below are named as the engine's are (scope, universe, latest traits, user level, account
level); they still copy the engine's glue between its public functions (and take two private
ones) until the engine offers that per-entity path itself (see the layout section of README).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from audience_pipeline.engine.aggregate import ORDER
from audience_pipeline.engine.audiences import (
    NodeColumns,
    audience_column,
    collect_leaves,
    condition_expr,
)
from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.engine.compute import (
    EVENT_TYPES,
    KNOWN_TYPES,
    custom_wide,
    latest_traits,
    users_conditions,
)
from audience_pipeline.engine.level import LevelResult, evaluate_level
from audience_pipeline.engine.samples import account_anchors, profile_anchors, with_sample_columns
from audience_pipeline.engine.traitvalues import TraitColumns
from audience_pipeline.identity.prepare import processing_rank
from audience_pipeline.ir import nodes as ir
from audience_pipeline.sqltraits.columns import with_sql_rows

EVENT_COLUMNS = ["timestamp", "message_id", "seq", ORDER, "event", "properties", "context"]


@dataclass
class LevelView:
    """One level's evaluated entities and what a funnel trace needs to re-run its steps."""

    level: str
    frame: pl.DataFrame  # entity_id, traits, leaf columns, audience columns
    traits: TraitColumns
    events: pl.DataFrame  # entity_id + EVENT_COLUMNS (the level's events, pooled for accounts)
    custom: pl.DataFrame  # entity_id + custom trait columns (tagged)

    def row(self, entity: str) -> pl.DataFrame:
        return self.frame.filter(pl.col(ENTITY) == entity)


@dataclass
class Evaluation:
    """The engine's frames for the entities in scope."""

    as_of: datetime
    leaves: NodeColumns
    users: LevelView
    accounts: LevelView | None
    members: pl.DataFrame  # account_id, profile_id (accounts in scope)


def evaluate(
    messages: pl.DataFrame,
    trait_updates: pl.DataFrame,
    identities: pl.DataFrame,
    space: ir.Space,
    as_of: datetime,
    *,
    profiles: list[str],
    accounts: list[str],
    scores: dict[str, pl.DataFrame] | None = None,
    sql_rows: dict[str, tuple[pl.DataFrame, set[str]]] | None = None,
) -> Evaluation:
    """Evaluate every trait, leaf and audience for `profiles` (and `accounts`).

    Args:
        messages: normalized messages (timestamp <= as_of) with `profile_id`; at least every
            message of `profiles`. For an account, `profiles` must hold all its members.
        trait_updates: trait updates (joined to messages by `seq`).
        identities: profile_id, id_type, id_value (at least for `profiles`).
        space: the compiled space.
        as_of: the run's as-of.
        profiles: profile ids to evaluate at user level.
        accounts: account ids (groupIds) to evaluate at account level.
        scores: per level, entity_id and the run's score trait columns (`_tr_<key>`): a score
            ranks every entity of its level, so the few evaluated here cannot recompute it.
        sql_rows: per level, the run's SQL trait objects (latest-style rows) and every SQL
            trait key of the level: read as the run read them, not re-queried.
    """
    scores = scores or {}
    messages = _in_scope(messages, profiles, as_of)
    known = identities.filter(pl.col("profile_id").is_in(profiles))
    universe = _universe(profiles, known)
    latest = _latest(messages, trait_updates, accounts, sql_rows or {})
    leaves = collect_leaves(space)
    event_frame = messages.filter(pl.col("type").is_in(EVENT_TYPES)).select(
        "profile_id", *EVENT_COLUMNS
    )
    users, user_view = _user_level(
        event_frame, universe, known, latest, space, leaves, as_of, scores.get("user")
    )
    account_view = None
    if accounts:
        account_view = _account_level(event_frame, accounts, latest, space, leaves, as_of,
                                      scores.get("account"), users, user_view)  # fmt: skip
    return Evaluation(as_of, leaves, user_view, account_view, latest.members)


def _in_scope(messages: pl.DataFrame, profiles: list[str], as_of: datetime) -> pl.DataFrame:
    """The profiles' messages at or before as-of, in processing order (`ORDER`)."""
    messages = messages.filter(
        pl.col("profile_id").is_in(profiles) & (pl.col("timestamp") <= as_of)
    ).sort("seq")
    # Processing order as one integer, as compute numbers it (only the relative order of an
    # entity's own messages matters to "first"/"latest").
    return messages.with_columns(processing_rank(messages).alias(ORDER))


def _universe(profiles: list[str], known: pl.DataFrame) -> pl.DataFrame:
    """profile_id, _known (the profile has a user_id or an email identifier)."""
    return (
        pl.DataFrame({"profile_id": sorted(set(profiles))}, schema={"profile_id": pl.String})
        .join(
            known.group_by("profile_id").agg(
                pl.col("id_type").is_in(KNOWN_TYPES).any().alias("_known")
            ),
            on="profile_id",
            how="left",
        )
        .with_columns(pl.col("_known").fill_null(False))
    )


@dataclass
class _Latest:
    """The latest custom traits of the profiles and accounts in scope, and the accounts'
    members."""

    users: pl.DataFrame
    accounts: pl.DataFrame
    members: pl.DataFrame  # account_id, profile_id


def _latest(
    messages: pl.DataFrame,
    trait_updates: pl.DataFrame,
    accounts: list[str],
    sql_rows: dict[str, tuple[pl.DataFrame, set[str]]],
) -> _Latest:
    # As compute: one join gives every update its message's order, owner and account.
    is_group = (pl.col("type") == "group") & pl.col("group_id").is_not_null()
    updates = trait_updates.select("seq", "kind", "key", "value", "tagged").join(
        messages.select(
            "seq", ORDER, "profile_id", pl.when(is_group).then(pl.col("group_id")).alias("_acct")
        ),
        on="seq",
        how="inner",
    )
    user_latest = latest_traits(updates.filter(pl.col("kind") == "user"), "profile_id")
    members = (
        messages.filter(is_group)
        .select(pl.col("group_id").alias("account_id"), "profile_id")
        .unique()
        .filter(pl.col("account_id").is_in(accounts))
    )
    account_latest = latest_traits(
        updates.filter((pl.col("kind") == "account") & pl.col("_acct").is_not_null()).rename(
            {"_acct": "account_id"}
        ),
        "account_id",
    ).filter(pl.col("account_id").is_in(accounts))
    if "user" in sql_rows:
        user_latest = with_sql_rows(user_latest, *sql_rows["user"])
    if "account" in sql_rows:
        account_latest = with_sql_rows(account_latest, *sql_rows["account"])
    return _Latest(user_latest, account_latest, members)


def _user_level(
    event_frame: pl.DataFrame,
    universe: pl.DataFrame,
    known: pl.DataFrame,
    latest: _Latest,
    space: ir.Space,
    leaves: NodeColumns,
    as_of: datetime,
    scores: pl.DataFrame | None,
) -> tuple[LevelResult, LevelView]:
    """The user level: traits and leaves (`evaluate_level`), samples, then user audiences."""
    user_custom, user_custom_keys = custom_wide(latest.users, "profile_id", universe)
    user_events = event_frame.rename({"profile_id": ENTITY})
    entities = universe.select(pl.col("profile_id").alias(ENTITY))
    users = _evaluate("user", user_events, entities, user_custom, user_custom_keys, space,
                      leaves, as_of, scores)  # fmt: skip
    user_frame = users.frame.join(universe.rename({"profile_id": ENTITY}), on=ENTITY, how="left")
    user_samples = leaves.of("user", ir.Sample)
    if user_samples:
        first = next(iter(user_samples))
        assert isinstance(first, ir.Sample)
        anchors = profile_anchors(known, first.id_types).rename({"profile_id": ENTITY})
        user_frame = with_sample_columns(user_frame, user_samples, anchors, detail=True)
    for audience in (a for a in space.audiences if a.level == "user"):
        in_universe = pl.lit(True) if audience.include_anonymous else pl.col("_known")
        expr = in_universe & condition_expr(audience.condition, "user", leaves, users.traits)
        user_frame = user_frame.with_columns(expr.alias(audience_column(audience.key)))
    return users, LevelView("user", user_frame, users.traits, user_events, user_custom)


def _evaluate(
    level: str,
    events: pl.DataFrame,
    entities: pl.DataFrame,
    custom: pl.DataFrame,
    custom_keys: set[str],
    space: ir.Space,
    leaves: NodeColumns,
    as_of: datetime,
    scores: pl.DataFrame | None,
) -> LevelResult:
    """`evaluate_level` over the level's traits, event conditions and funnels (the run's score
    values given, not ranked again)."""
    return evaluate_level(
        events=events.lazy(),
        entities=entities.lazy(),
        custom=custom.lazy(),
        custom_keys=custom_keys,
        traits=[t for t in space.traits if t.level == level],
        conditions=leaves.of(level, ir.EventCond),  # type: ignore[arg-type]
        funnels=leaves.of(level, ir.Funnel),  # type: ignore[arg-type]
        as_of=as_of,
        overrides=scores,
    )


def _account_level(
    event_frame: pl.DataFrame,
    accounts: list[str],
    latest: _Latest,
    space: ir.Space,
    leaves: NodeColumns,
    as_of: datetime,
    scores: pl.DataFrame | None,
    users: LevelResult,
    user_view: LevelView,
) -> LevelView:
    """The account level over the members' pooled events, the `users:` fold, samples, then
    account audiences."""
    entities = pl.DataFrame({"account_id": sorted(set(accounts))}, schema={"account_id": pl.String})
    account_custom, account_custom_keys = custom_wide(latest.accounts, "account_id", entities)
    account_events = (
        event_frame.join(latest.members, on="profile_id", how="inner")
        .drop("profile_id")
        .rename({"account_id": ENTITY})
        .select(ENTITY, *EVENT_COLUMNS)
    )
    account_level = _evaluate("account", account_events,
                              entities.select(pl.col("account_id").alias(ENTITY)),
                              account_custom, account_custom_keys, space, leaves, as_of, scores)  # fmt: skip
    account_frame = users_conditions(account_level, user_view.frame, latest.members, leaves, users)
    account_frame = with_sample_columns(
        account_frame,
        leaves.of("account", ir.Sample),
        account_anchors(account_frame),
        detail=True,
    )
    for audience in (a for a in space.audiences if a.level == "account"):
        expr = condition_expr(audience.condition, "account", leaves, account_level.traits)
        account_frame = account_frame.with_columns(expr.alias(audience_column(audience.key)))
    return LevelView("account", account_frame, account_level.traits, account_events, account_custom)


__all__ = ["Evaluation", "LevelView", "evaluate"]
