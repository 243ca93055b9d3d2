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
    d = builder.d
    steps = funnel.steps
    base = builder.event_resolver("c")

    def resolve(node: ir.Expr) -> Typed:
        assert isinstance(node, ir.Ref)
        if node.scope.startswith("parent"):
            return TaggedValue(d, col(builder.columns.path(node.scope, node.path), "p"))
        return base(node)

    ctes: list[tuple[str, exp.Select]] = []
    first = steps[0]
    keep = _parent_columns(steps[1], builder)
    conditions = [
        builder.names_in(col("event", "c"), first.events),
        *builder.window(col("timestamp", "c"), funnel.window, funnel.since),
    ]
    if first.where is not None:
        conditions.append(compile_predicate(d, first.where, resolve))
    select = (
        exp.select(col(ENTITY, "c"), alias(col("timestamp", "c"), TS), *[col(k, "c") for k in keep])
        .distinct()
        .from_(table(source, "c"))
        .where(exp.and_(*conditions, wrap=True))
    )
    previous = f"{relation}_s0"
    ctes.append((previous, select))
    for index, step in enumerate(steps[1:], start=1):
        nxt = _parent_columns(steps[index + 1], builder) if index + 1 < len(steps) else []
        parents = _parent_columns(step, builder)
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
            join.append(compile_predicate(d, step.where, resolve))
        pairs = (
            exp.select()
            .from_(table(previous, "p"))
            .join(table(source, "c"), on=exp.and_(*join, wrap=True))
        )
        if step.performed:
            select = pairs.select(
                col(ENTITY, "c"), alias(col("timestamp", "c"), TS), *[col(k, "c") for k in nxt]
            ).distinct()
            previous = f"{relation}_s{index}"
            ctes.append((previous, select))
            continue
        # Negative last step: a reachable previous event with no matching event after it.
        keys = [ENTITY, TS, *parents]
        matched = f"{relation}_matched"
        ctes.append((matched, pairs.select(*[col(k, "p") for k in keys]).distinct()))
        on = exp.and_(*[exp.NullSafeEQ(this=col(k, "p"), expression=col(k, "m")) for k in keys],
                      wrap=True)  # fmt: skip
        unmatched = (
            exp.select(col(ENTITY, "p"))
            .distinct()
            .from_(table(previous, "p"))
            .join(table(matched, "m"), on=on, join_type="left")
            .where(exp.Is(this=col(ENTITY, "m"), expression=exp.null()))
        )
        ctes.append((relation, unmatched))
        return ctes
    ctes.append((relation, exp.select(col(ENTITY)).distinct().from_(table(previous))))
    return ctes
