"""Both levels of a space for some entities: the engine's one per-node path after identity.

Users first (traits, event conditions and funnels per bucket of profiles, then samples and the
user audiences), then accounts over their members' pooled events (the same per bucket, then the
`users:` fold, samples and the account audiences). `compute` runs it over every entity in as
many buckets as memory asks for; `explain` over the few entities asked about, in one bucket, with
the run's score values given (a score ranks every entity of its level) and the sample anchors
kept for display. Neither holds its own copy of these steps.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from audience_pipeline.engine.audiences import (
    NodeColumns,
    audience_column,
    collect_leaves,
    condition_expr,
)
from audience_pipeline.engine.buckets import BucketedEvents, evaluate_bucketed
from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.engine.latest import custom_wide
from audience_pipeline.engine.level import LevelResult
from audience_pipeline.engine.samples import account_anchors, with_sample_columns
from audience_pipeline.ir import nodes as ir

Lap = Callable[[str], object]


@dataclass(frozen=True)
class Entities:
    """One level's entities and the custom traits they hold before the level runs."""

    frame: pl.DataFrame  # entity_id (users: and _known, the audiences' default universe)
    custom: pl.DataFrame  # entity_id + one tagged column per custom trait (`_ct_<key>`)
    custom_keys: set[str]
    scores: pl.DataFrame | None = None  # entity_id + score columns to take as given

    @classmethod
    def of(
        cls, latest: pl.DataFrame, owner: str, entities: pl.DataFrame,
        scores: pl.DataFrame | None = None,
    ) -> Entities:  # fmt: skip
        """From `entities` (an `owner` column) and their latest custom traits (`owners_latest`)."""
        custom, keys = custom_wide(latest, owner, entities)
        return cls(entities.rename({owner: ENTITY}), custom, keys, scores)


@dataclass
class Levels:
    """Both levels evaluated: per level its `LevelResult` (traits, leaves), the entity frame
    with samples and audience columns, and the events it read."""

    leaves: NodeColumns
    users: LevelResult
    user_frame: pl.DataFrame
    user_events: BucketedEvents
    accounts: LevelResult
    account_frame: pl.DataFrame
    account_events: BucketedEvents


def evaluate_levels(
    space: ir.Space,
    as_of: datetime,
    *,
    users: Entities,
    user_events: BucketedEvents,
    accounts: Entities,
    members: pl.DataFrame,
    account_events: Callable[[pl.LazyFrame], BucketedEvents],
    user_anchors: Callable[[Mapping[ir.Condition, str]], pl.DataFrame],
    account_columns: Sequence[str] | None = None,
    detail: bool = False,
    lap: Lap = lambda stage: None,
) -> Levels:
    """Every trait, leaf and audience of both levels of `space` as of `as_of`.

    `user_events`: the users' events (entity_id = the profile, as in `users.frame`).
    `members`: account_id, profile_id (as in `users.frame`).
    `account_events`: the account level's events from their plan (the user events joined to
    `members`, columns `account_columns` of them: all when None), split into buckets.
    `user_anchors`: entity_id, id_type, id_value of the users, asked for when the space has
    user `sample` nodes (given them). `detail`: samples keep each entity's bucket and anchor.
    `lap(stage)`: called as each stage ends (the caller's timer).
    """
    leaves = collect_leaves(space)
    user_level = _level(user_events, users, space, "user", leaves, as_of)
    lap(f"user level ({user_events.count} buckets)")
    user_frame = _user_audiences(user_level, users, space, leaves, user_anchors, detail)
    lap("user audiences")
    plan = account_event_plan(user_events, members, account_columns)
    per_account = account_events(plan)
    account_level = _level(per_account, accounts, space, "account", leaves, as_of)
    lap(f"account level ({per_account.count} buckets)")
    account_frame = users_conditions(account_level, user_frame, members, leaves, user_level)
    account_frame = with_sample_columns(account_frame, leaves.of("account", ir.Sample),
                                        account_anchors(account_frame), detail=detail)  # fmt: skip
    account_frame = _with_audiences(account_frame, space, "account", leaves, account_level)
    lap("account audiences")
    return Levels(leaves, user_level, user_frame, user_events, account_level, account_frame,
                  per_account)  # fmt: skip


def _level(
    events: BucketedEvents,
    entities: Entities,
    space: ir.Space,
    level: str,
    leaves: NodeColumns,
    as_of: datetime,
) -> LevelResult:
    """The level's traits, event conditions and funnels (`evaluate_level`, bucket by bucket)."""
    return evaluate_bucketed(
        events,
        entities=entities.frame.select(ENTITY),
        custom=entities.custom,
        custom_keys=entities.custom_keys,
        traits=[t for t in space.traits if t.level == level],
        conditions=leaves.of(level, ir.EventCond),  # type: ignore[arg-type]
        funnels=leaves.of(level, ir.Funnel),  # type: ignore[arg-type]
        as_of=as_of,
        overrides=entities.scores,
    )


def _user_audiences(
    users: LevelResult,
    entities: Entities,
    space: ir.Space,
    leaves: NodeColumns,
    anchors: Callable[[Mapping[ir.Condition, str]], pl.DataFrame],
    detail: bool,
) -> pl.DataFrame:
    """The user frame with `_known`, the sample columns and one column per user audience."""
    # `_known` alone is joined and set beside the level's columns, which the new frame then
    # shares with the level's result (a join of the whole frame copied every column).
    known = users.frame.select(ENTITY).join(entities.frame, on=ENTITY, how="left",
                                            maintain_order="left")  # fmt: skip
    frame = users.frame.with_columns(known.drop(ENTITY))
    samples = leaves.of("user", ir.Sample)
    if samples:
        frame = with_sample_columns(frame, samples, anchors(samples), detail=detail)
    return _with_audiences(frame, space, "user", leaves, users)


def _with_audiences(
    frame: pl.DataFrame, space: ir.Space, level: str, leaves: NodeColumns, result: LevelResult
) -> pl.DataFrame:
    """One boolean column per audience of `level`; a user audience holds known profiles only
    unless it includes anonymous ones (`_known` on the frame)."""
    for audience in (a for a in space.audiences if a.level == level):
        expr = condition_expr(audience.condition, level, leaves, result.traits)
        if level == "user":
            in_universe = pl.lit(True) if audience.include_anonymous else pl.col("_known")
            expr = in_universe & expr
        frame = frame.with_columns(expr.alias(audience_column(audience.key)))
    return frame


def account_event_plan(
    user_events: BucketedEvents, members: pl.DataFrame, columns: Sequence[str] | None
) -> pl.LazyFrame:
    """Each user event once per account of its profile (entity_id = the account), in event
    order; `columns` of the user events only (all when None)."""
    scan = user_events.scan()
    if columns is not None:
        scan = scan.select(columns)
    return (
        scan.join(members.lazy().rename({"profile_id": ENTITY}), on=ENTITY, how="inner",
                  maintain_order="left")
        .drop(ENTITY)
        .rename({"account_id": ENTITY})
    )  # fmt: skip


def users_conditions(
    account_level: LevelResult,
    user_frame: pl.DataFrame,
    members: pl.DataFrame,
    leaves: NodeColumns,
    users: LevelResult,
) -> pl.DataFrame:
    """users: any / all / none -> one column per node on the account frame."""
    frame = account_level.frame
    for node, col in leaves.of("account", ir.UsersCond).items():
        assert isinstance(node, ir.UsersCond)
        holds = user_frame.select(
            pl.col(ENTITY).alias("profile_id"),
            condition_expr(node.condition, "user", leaves, users.traits).alias("_holds"),
        )
        per_account = (
            members.join(holds, on="profile_id", how="left")
            .with_columns(pl.col("_holds").fill_null(False))
            .group_by("account_id")
            .agg(pl.col("_holds").any().alias("_any"), pl.col("_holds").all().alias("_all"))
            .rename({"account_id": ENTITY})
        )
        frame = frame.join(per_account, on=ENTITY, how="left").with_columns(
            pl.col("_any").fill_null(False), pl.col("_all").fill_null(False)
        )
        value = {"any": pl.col("_any"), "all": pl.col("_all"), "none": ~pl.col("_any")}[node.mode]
        frame = frame.with_columns(value.alias(col)).drop("_any", "_all")
    return frame


__all__ = [
    "Entities",
    "Levels",
    "account_event_plan",
    "evaluate_levels",
    "users_conditions",
]
