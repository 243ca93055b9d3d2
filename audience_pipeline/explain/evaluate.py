"""Run the engine on a few entities' own messages: the frames explain reads node values from.

After identity resolution (which explain does not redo: each message already carries the profile
the run gave it) this is the engine's own path: `owners_latest` (latest custom traits and
members) and `evaluate_levels` (both levels' traits, leaves, samples and audiences), as
`engine.compute` calls them. Only the entities differ: the profiles asked about (plus, for an
account, all its members), evaluated in one bucket with the run's score values given, so a
node's value here is the value the run computed. The agreement test
(tests/api/test_explain.py::test_explain_agrees_with_memberships_for_every_entity) holds explain
to the memberships of a full run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from audience_pipeline.engine.aggregate import ORDER
from audience_pipeline.engine.audiences import NodeColumns
from audience_pipeline.engine.buckets import BucketedEvents, account_bucket, profile_bucket
from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.engine.latest import Latest, owners_latest
from audience_pipeline.engine.levels import Entities, evaluate_levels
from audience_pipeline.engine.samples import profile_anchors
from audience_pipeline.engine.traitvalues import TraitColumns
from audience_pipeline.identity.prepare import processing_rank
from audience_pipeline.ir import nodes as ir
from audience_pipeline.message_types import EVENT_TYPES
from audience_pipeline.sqltraits.columns import with_sql_rows
from audience_pipeline.tables.result import KNOWN_TYPES

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
    latest = _with_sql(owners_latest(messages, trait_updates).scoped(accounts), sql_rows or {})
    users = Entities.of(latest.users, "profile_id", _universe(profiles, known), scores.get("user"))
    account_ids = pl.DataFrame(
        {"account_id": sorted(set(accounts))}, schema={"account_id": pl.String}
    )
    in_accounts = Entities.of(latest.accounts, "account_id", account_ids, scores.get("account"))
    user_events = messages.filter(pl.col("type").is_in(EVENT_TYPES)).select(
        pl.col("profile_id").alias(ENTITY), *EVENT_COLUMNS
    )

    def anchors(samples: Mapping[ir.Condition, str]) -> pl.DataFrame:
        first = next(iter(samples))
        assert isinstance(first, ir.Sample)
        return profile_anchors(known, first.id_types).rename({"profile_id": ENTITY})

    levels = evaluate_levels(
        space, as_of, users=users, user_events=_one_bucket(user_events.lazy(), profile_bucket),
        accounts=in_accounts, members=latest.members,
        account_events=lambda plan: _one_bucket(plan, account_bucket), user_anchors=anchors,
        detail=True,
    )  # fmt: skip
    user_view = LevelView("user", levels.user_frame, levels.users.traits, user_events, users.custom)
    account_view = None
    if accounts:
        account_view = LevelView("account", levels.account_frame, levels.accounts.traits,
                                 levels.account_events.frame(0), in_accounts.custom)  # fmt: skip
    return Evaluation(as_of, levels.leaves, user_view, account_view, latest.members)


def _one_bucket(plan: pl.LazyFrame, key: Callable[[int], pl.Expr]) -> BucketedEvents:
    """A few entities' events: one bucket, in memory."""
    return BucketedEvents(plan, 1, key(1))


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


def _with_sql(latest: Latest, sql_rows: dict[str, tuple[pl.DataFrame, set[str]]]) -> Latest:
    """The run's SQL trait objects in place of custom traits of the same keys."""
    if "user" in sql_rows:
        latest = replace(latest, users=with_sql_rows(latest.users, *sql_rows["user"]))
    if "account" in sql_rows:
        latest = replace(latest, accounts=with_sql_rows(latest.accounts, *sql_rows["account"]))
    return latest


__all__ = ["Evaluation", "LevelView", "evaluate"]
