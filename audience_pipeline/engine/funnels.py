"""Funnels (SPEC section 4): ordered steps chained on strictly later timestamps.

Step k's reachable events are those with some reachable step k-1 event strictly before them and
no more than the step's `within` before them (and satisfying its `where`, which may read the
parent's properties). Only the reachable set is carried forward, so no path is enumerated: each
step is one join per entity with time bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from audience_pipeline.engine.aggregate import event_resolver, name_mask, window_mask
from audience_pipeline.engine.columns import ENTITY, ColumnNames
from audience_pipeline.engine.expressions import compile_predicate
from audience_pipeline.engine.traitvalues import TraitColumns
from audience_pipeline.engine.typed import TaggedValue, Typed
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import refs

PARENT = "_parent_"


def _parent_columns(step: ir.FunnelStep, names: ColumnNames) -> list[str]:
    """Columns of the previous step's event that this step's where reads as parent.*."""
    return sorted(
        {
            names.path_column(r.scope, r.path)
            for r in refs(step.where)
            if r.scope.startswith("parent")
        }
    )


def evaluate_funnel(
    funnel: ir.Funnel,
    events: pl.LazyFrame,
    names: ColumnNames,
    traits: TraitColumns,
    as_of: datetime,
) -> pl.LazyFrame:
    """Entities (entity_id) for which the funnel holds."""
    walk = _Walk(funnel, names, _resolver(names, traits), as_of,
                 [c for c in traits.columns() if c in _schema_names(events)])  # fmt: skip
    steps = funnel.steps
    first = steps[0]
    mask = name_mask(first.events) & window_mask(funnel.window, funnel.since, as_of)
    if first.where is not None:
        mask = mask & compile_predicate(first.where, walk.resolve)
    keep_next = _parent_columns(steps[1], names)
    reachable = events.filter(mask).select(ENTITY, "timestamp", *keep_next).unique()
    for index, step in enumerate(steps[1:], start=1):
        nxt = _parent_columns(steps[index + 1], names) if index + 1 < len(steps) else []
        reachable = walk.step(step, events, reachable, nxt)
        if not step.performed:  # a negative step is the last: `step` gave the entities
            return reachable
    return reachable.select(ENTITY).unique()


def _resolver(names: ColumnNames, traits: TraitColumns) -> Callable[[ir.Expr], Typed]:
    """Event references as the level's, `parent.*` as the previous step's event columns."""
    base = event_resolver(names, traits)

    def resolve(node: ir.Expr) -> Typed:
        assert isinstance(node, ir.Ref)
        if node.scope.startswith("parent"):
            return TaggedValue(pl.col(PARENT + names.path_column(node.scope, node.path)))
        return base(node)

    return resolve


@dataclass(frozen=True)
class _Walk:
    """One funnel's steps after the first, each from the previous step's reachable events."""

    funnel: ir.Funnel
    names: ColumnNames
    resolve: Callable[[ir.Expr], Typed]
    as_of: datetime
    trait_columns: list[str]  # the trait columns on the events (a step's where may read them)

    def step(
        self, step: ir.FunnelStep, events: pl.LazyFrame, reachable: pl.LazyFrame, nxt: list[str]
    ) -> pl.LazyFrame:
        """The step's reachable events (entity_id, timestamp, the next step's parent columns
        `nxt`); for a negative step, the entities for which the funnel holds."""
        candidates = events.filter(
            name_mask(step.events) & window_mask(None, self.funnel.since, self.as_of)
        )
        parent_cols = _parent_columns(step, self.names)
        prev = reachable.select(
            ENTITY,
            pl.col("timestamp").alias(PARENT + "timestamp"),
            *[pl.col(c).alias(PARENT + c) for c in parent_cols],
        ).unique()
        cand_cols = sorted({*nxt, *(self.names.path_column(r.scope, r.path) for r in refs(step.where)
                                    if not r.scope.startswith("parent") and r.scope != "trait")})  # fmt: skip
        candidates = candidates.select(ENTITY, "timestamp", "seq", *cand_cols, *self.trait_columns)
        if not parent_cols:
            return self._by_asof(step, prev, candidates, nxt)
        return self._by_pairs(step, prev, candidates, nxt, parent_cols)

    def _by_asof(
        self, step: ir.FunnelStep, prev: pl.LazyFrame, candidates: pl.LazyFrame, nxt: list[str]
    ) -> pl.LazyFrame:
        """A step whose where reads no parent column: one as-of join per entity decides."""
        if step.where is not None:
            candidates = candidates.filter(compile_predicate(step.where, self.resolve))
        if not step.performed:
            return _negative_asof(prev, candidates, step.within)
        return (
            _positive_asof(prev, candidates, step.within).select(ENTITY, "timestamp", *nxt).unique()
        )

    def _by_pairs(
        self,
        step: ir.FunnelStep,
        prev: pl.LazyFrame,
        candidates: pl.LazyFrame,
        nxt: list[str],
        parent_cols: list[str],
    ) -> pl.LazyFrame:
        """A step whose where reads the parent's columns: (parent, candidate) pairs filtered."""
        pair_mask = pl.col("timestamp") > pl.col(PARENT + "timestamp")
        if step.within is not None:
            limit = pl.col(PARENT + "timestamp") + pl.duration(seconds=step.within)
            pair_mask = pair_mask & (pl.col("timestamp") <= limit)
        if step.where is not None:
            pair_mask = pair_mask & compile_predicate(step.where, self.resolve)
        pairs = prev.join(candidates, on=ENTITY, how="inner").filter(pair_mask)
        if step.performed:
            return pairs.select(ENTITY, "timestamp", *nxt).unique()
        # Negative last step: some reachable previous event has no matching event after it.
        keys = [ENTITY, PARENT + "timestamp", *[PARENT + c for c in parent_cols]]
        matched = pairs.select(keys).unique()
        unmatched = prev.join(matched, on=keys, how="anti", nulls_equal=True)
        return unmatched.select(ENTITY).unique()


def _within(within: int | None) -> pl.Expr:
    """Is the event no later than `within` after the parent's (strict order is the join's)?"""
    if within is None:
        return pl.lit(True)
    return pl.col("timestamp") <= pl.col(PARENT + "timestamp") + pl.duration(seconds=within)


def _positive_asof(
    prev: pl.LazyFrame, candidates: pl.LazyFrame, within: int | None
) -> pl.LazyFrame:
    """Candidates with a reachable parent strictly before them: the latest such parent is the
    closest, so one backward as-of join per entity decides (no pairs are built)."""
    joined = candidates.sort("timestamp").join_asof(
        prev.select(ENTITY, PARENT + "timestamp").sort(PARENT + "timestamp"),
        left_on="timestamp",
        right_on=PARENT + "timestamp",
        by=ENTITY,
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,  # sorted by time just above; per-entity order follows
    )
    return joined.filter(pl.col(PARENT + "timestamp").is_not_null() & _within(within))


def _negative_asof(
    prev: pl.LazyFrame, candidates: pl.LazyFrame, within: int | None
) -> pl.LazyFrame:
    """Entities with a reachable parent followed by no candidate inside the step's window: the
    earliest candidate strictly after the parent decides."""
    nxt = candidates.select(ENTITY, pl.col("timestamp").alias("_next")).sort("_next")
    joined = prev.sort(PARENT + "timestamp").join_asof(
        nxt,
        left_on=PARENT + "timestamp",
        right_on="_next",
        by=ENTITY,
        strategy="forward",
        allow_exact_matches=False,
        check_sortedness=False,  # sorted by time just above; per-entity order follows
    )
    missing = pl.col("_next").is_null()
    if within is not None:
        missing = missing | (
            pl.col("_next") > pl.col(PARENT + "timestamp") + pl.duration(seconds=within)
        )
    return joined.filter(missing).select(ENTITY).unique()


def _schema_names(frame: pl.LazyFrame) -> set[str]:
    return set(frame.collect_schema().names())
