"""Funnels (SPEC section 4) as a chain of self-joins, one CTE per step.

Step k's reachable events are those with some reachable step k-1 event strictly before them and
no more than the step's `within` before them, satisfying its `where` (which may read the parent
event's properties). Only the reachable set (entity, timestamp, the columns the next step reads
as ``parent.``) is carried forward, so no path is enumerated. A negative last step keeps the
reachable previous events with no matching event after them (an anti-join).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import refs
from audience_pipeline.sql.dialects import SqlDialect
from audience_pipeline.sql.expressions import compile_predicate
from audience_pipeline.sql.relations import ENTITY, alias, col, eq, seconds, table
from audience_pipeline.sql.typed import TaggedValue, Typed

TS = "_ts"


class PathColumns(Protocol):
    def path(self, scope: str, path: tuple[str, ...]) -> str: ...


class LevelBuilder(Protocol):
    """What the funnel CTEs read from the level they are part of (`level.LevelBuilder`)."""

    @property
    def d(self) -> SqlDialect: ...

    @property
    def columns(self) -> PathColumns: ...

    def window(self, ts: exp.Expr, window: ir.Window | None,
               since: datetime | None) -> list[exp.Expr]: ...  # fmt: skip

    def names_in(self, event: exp.Expr, events: tuple[str, ...]) -> exp.Expr: ...

    def event_resolver(self, table_name: str | None, *,
                       custom_only: bool = False) -> Callable[[ir.Expr], Typed]: ...  # fmt: skip


def _parent_columns(step: ir.FunnelStep, builder: LevelBuilder) -> list[str]:
    """Path columns of the previous step's event that this step reads as parent.*."""
    return sorted(
        {builder.columns.path(r.scope, r.path) for r in refs(step.where)
         if r.scope.startswith("parent")}
    )  # fmt: skip


def funnel_ctes(builder: LevelBuilder, funnel: ir.Funnel, source: str,
                relation: str) -> list[tuple[str, exp.Select]]:  # fmt: skip
    """CTEs ending in `relation` (entity_id of every entity for which the funnel holds)."""
    steps = funnel.steps
    resolve = _resolver(builder)
    previous = f"{relation}_s0"
    ctes: list[tuple[str, exp.Select]] = [(previous, _first_step(builder, funnel, source, resolve))]
    for index, step in enumerate(steps[1:], start=1):
        nxt = _parent_columns(steps[index + 1], builder) if index + 1 < len(steps) else []
        pairs = _pairs(builder, funnel, step, source, previous, resolve)
        if step.performed:
            select = pairs.select(
                col(ENTITY, "c"), alias(col("timestamp", "c"), TS), *[col(k, "c") for k in nxt]
            ).distinct()
            previous = f"{relation}_s{index}"
            ctes.append((previous, select))
            continue
        return [*ctes, *_unmatched(builder, step, pairs, previous, relation)]
    ctes.append((relation, exp.select(col(ENTITY)).distinct().from_(table(previous))))
    return ctes


def _resolver(builder: LevelBuilder) -> Callable[[ir.Expr], Typed]:
    """Event references on the step's event (``c``), `parent.*` on the previous one's (``p``)."""
    base = builder.event_resolver("c")

    def resolve(node: ir.Expr) -> Typed:
        assert isinstance(node, ir.Ref)
        if node.scope.startswith("parent"):
            return TaggedValue(builder.d, col(builder.columns.path(node.scope, node.path), "p"))
        return base(node)

    return resolve


def _first_step(builder: LevelBuilder, funnel: ir.Funnel, source: str,
                resolve: Callable[[ir.Expr], Typed]) -> exp.Select:  # fmt: skip
    """The first step's events inside the funnel's window, with the next step's parent columns."""
    first = funnel.steps[0]
    keep = _parent_columns(funnel.steps[1], builder)
    conditions = [
        builder.names_in(col("event", "c"), first.events),
        *builder.window(col("timestamp", "c"), funnel.window, funnel.since),
    ]
    if first.where is not None:
        conditions.append(compile_predicate(builder.d, first.where, resolve))
    return (
        exp.select(col(ENTITY, "c"), alias(col("timestamp", "c"), TS), *[col(k, "c") for k in keep])
        .distinct()
        .from_(table(source, "c"))
        .where(exp.and_(*conditions, wrap=True))
    )


def _pairs(builder: LevelBuilder, funnel: ir.Funnel, step: ir.FunnelStep, source: str,
           previous: str, resolve: Callable[[ir.Expr], Typed]) -> exp.Select:  # fmt: skip
    """(reachable previous event ``p``, this step's event ``c`` strictly later) pairs."""
    join = [
        eq(col(ENTITY, "c"), col(ENTITY, "p")),
        exp.GT(this=col("timestamp", "c"), expression=col(TS, "p")),
        builder.names_in(col("event", "c"), step.events),
        *builder.window(col("timestamp", "c"), None, funnel.since),
    ]
    if step.within is not None:
        limit = exp.Add(this=col(TS, "p"), expression=seconds(step.within))
        join.append(exp.LTE(this=col("timestamp", "c"), expression=limit))
    if step.where is not None:
        join.append(compile_predicate(builder.d, step.where, resolve))
    return exp.select().from_(table(previous, "p")).join(table(source, "c"),
                                                          on=exp.and_(*join, wrap=True))  # fmt: skip


def _unmatched(builder: LevelBuilder, step: ir.FunnelStep, pairs: exp.Select, previous: str,
               relation: str) -> list[tuple[str, exp.Select]]:  # fmt: skip
    """Negative last step: a reachable previous event with no matching event after it."""
    keys = [ENTITY, TS, *_parent_columns(step, builder)]
    matched = f"{relation}_matched"
    on = exp.and_(*[exp.NullSafeEQ(this=col(k, "p"), expression=col(k, "m")) for k in keys],
                  wrap=True)  # fmt: skip
    unmatched = (
        exp.select(col(ENTITY, "p"))
        .distinct()
        .from_(table(previous, "p"))
        .join(table(matched, "m"), on=on, join_type="left")
        .where(exp.Is(this=col(ENTITY, "m"), expression=exp.null()))
    )
    return [(matched, pairs.select(*[col(k, "p") for k in keys]).distinct()), (relation, unmatched)]
