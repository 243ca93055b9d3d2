"""Funnels (SPEC section 4): ordered steps chained on strictly later timestamps.

Step k's reachable events are those with some reachable step k-1 event strictly before them and
no more than the step's `within` before them (and satisfying its `where`, which may read the
parent's properties). Only the reachable set is carried forward, so no path is enumerated: each
step is one join per entity with time bounds.
"""

from __future__ import annotations

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
    base = event_resolver(names, traits)

    def resolve(node: ir.Expr) -> Typed:
        assert isinstance(node, ir.Ref)
        if node.scope.startswith("parent"):
            return TaggedValue(pl.col(PARENT + names.path_column(node.scope, node.path)))
        return base(node)

    steps = funnel.steps
    first = steps[0]
    mask = name_mask(first.events) & window_mask(funnel.window, funnel.since, as_of)
    if first.where is not None:
        mask = mask & compile_predicate(first.where, resolve)
    keep_next = _parent_columns(steps[1], names)
    reachable = events.filter(mask).select(ENTITY, "timestamp", *keep_next).unique()
    for index, step in enumerate(steps[1:], start=1):
        candidates = events.filter(name_mask(step.events) & window_mask(None, funnel.since, as_of))
        nxt = _parent_columns(steps[index + 1], names) if index + 1 < len(steps) else []
        parent_cols = _parent_columns(step, names)
        prev = reachable.select(
            ENTITY,
            pl.col("timestamp").alias(PARENT + "timestamp"),
            *[pl.col(c).alias(PARENT + c) for c in parent_cols],
        ).unique()
        cand_cols = sorted({*nxt, *(names.path_column(r.scope, r.path) for r in refs(step.where)
                                    if not r.scope.startswith("parent") and r.scope != "trait")})  # fmt: skip
        trait_cols = [c for c in traits.columns() if c in _schema_names(events)]
        candidates = candidates.select(ENTITY, "timestamp", "seq", *cand_cols, *trait_cols)
        if not parent_cols:
            if step.where is not None:
                candidates = candidates.filter(compile_predicate(step.where, resolve))
            if not step.performed:
                return _negative_asof(prev, candidates, step.within)
            reachable = (
                _positive_asof(prev, candidates, step.within)
                .select(ENTITY, "timestamp", *nxt)
                .unique()
            )
            continue
        pair_mask = pl.col("timestamp") > pl.col(PARENT + "timestamp")
        if step.within is not None:
            limit = pl.col(PARENT + "timestamp") + pl.duration(seconds=step.within)
            pair_mask = pair_mask & (pl.col("timestamp") <= limit)
        if step.where is not None:
            pair_mask = pair_mask & compile_predicate(step.where, resolve)
        pairs = prev.join(candidates, on=ENTITY, how="inner").filter(pair_mask)
        if not step.performed:
            # Negative last step: some reachable previous event has no matching event after it.
            matched = pairs.select(
                ENTITY, PARENT + "timestamp", *[PARENT + c for c in parent_cols]
            ).unique()
            unmatched = prev.join(
                matched, on=[ENTITY, PARENT + "timestamp", *[PARENT + c for c in parent_cols]],
                how="anti", nulls_equal=True,
            )  # fmt: skip
            return unmatched.select(ENTITY).unique()
        reachable = pairs.select(ENTITY, "timestamp", *nxt).unique()
    return reachable.select(ENTITY).unique()


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
