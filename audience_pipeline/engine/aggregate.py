"""One fused pass per level: every computed trait and event condition as conditional aggregations
in a single group-by over the entity's events (SPEC sections 3-5).

Masks (event name, where, window, backfill) become boolean columns first, so the group-by itself
only runs plain aggregations; identical masks are computed once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import polars as pl

from audience_pipeline.engine.columns import ENTITY, ColumnNames
from audience_pipeline.engine.expressions import compile_expr, compile_predicate
from audience_pipeline.engine.scores import raw_value, score_from_raw
from audience_pipeline.engine.traitvalues import TraitColumns, computed_column
from audience_pipeline.engine.typed import NumberValue, TaggedValue, Typed
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import aggs

ORDER = "_order"  # each event's place in SPEC's processing order, as one integer


def window_mask(window: ir.Window | None, since: datetime | None, as_of: datetime) -> pl.Expr:
    ts = pl.col("timestamp")
    mask = ts <= pl.lit(as_of)
    if window is not None:
        if window.lower is not None:
            lower = _before(as_of, window.lower)
            if lower is not None:  # else the window reaches before year 1: no event is older
                mask = mask & (ts > pl.lit(lower))
        if window.upper:
            upper = _before(as_of, window.upper)
            mask = mask & (pl.lit(False) if upper is None else ts <= pl.lit(upper))
    if since is not None:
        mask = mask & (ts >= pl.lit(since))
    return mask


def _before(as_of: datetime, seconds: int) -> datetime | None:
    """as_of minus a duration, or None before year 1 (validation caps durations at 10,000
    years, so an as-of in the first millennia can still reach past the calendar)."""
    try:
        return as_of - timedelta(seconds=seconds)
    except OverflowError:
        return None


def name_mask(events: tuple[str, ...]) -> pl.Expr:
    if not events:  # a score trait without `event`: every track, page and screen event
        return pl.lit(True)
    if len(events) == 1:
        return pl.col("event") == events[0]
    return pl.col("event").is_in(list(events))


def event_resolver(
    names: ColumnNames,
    traits: TraitColumns,
    *,
    custom_only: bool = False,
    derived: dict[str, pl.Expr] | None = None,
) -> Callable[[ir.Expr], Typed]:
    """Names in an event `where`: properties, context and the entity's traits.

    With `derived`, each reading of a path column (number, text, ...) becomes a column computed
    once and shared by every mask and aggregate that needs it.
    """

    def resolve(node: ir.Expr) -> Typed:
        assert isinstance(node, ir.Ref)
        if node.scope == "trait":
            return traits.typed(node.path, custom_only=custom_only)
        column = names.path_column(node.scope, node.path)
        if derived is None:
            return TaggedValue(pl.col(column))
        return CachedValue(column, derived)

    return resolve


class CachedValue(TaggedValue):
    """A path column whose readings are registered as shared derived columns."""

    def __init__(self, column: str, derived: dict[str, pl.Expr]) -> None:
        super().__init__(pl.col(column))
        self.column = column
        self.derived = derived

    def _cached(self, reading: str, expr: pl.Expr) -> pl.Expr:
        name = f"{self.column}#{reading}"
        if name not in self.derived:
            self.derived[name] = expr.alias(name)
        return pl.col(name)

    def num(self) -> pl.Expr:
        return self._cached("num", super().num())

    def text(self) -> pl.Expr:
        return self._cached("text", super().text())

    def boolean(self) -> pl.Expr:
        return self._cached("bool", super().boolean())

    def kind(self) -> pl.Expr:
        return self._cached("kind", super().kind())


@dataclass
class LevelPlan:
    """The fused group-by for one level, built up then run once."""

    names: ColumnNames
    trait_columns: TraitColumns
    as_of: datetime
    masks: dict[tuple[object, ...], str] = field(default_factory=dict)
    mask_exprs: dict[str, pl.Expr] = field(default_factory=dict)
    pre: dict[str, pl.Expr] = field(default_factory=dict)
    aggs: dict[str, pl.Expr] = field(default_factory=dict)
    fills: dict[str, object] = field(default_factory=dict)
    most_frequent: list[tuple[str, str, str, int]] = field(default_factory=list)
    first_last: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    derived: dict[str, pl.Expr] = field(default_factory=dict)
    post: dict[str, pl.Expr] = field(default_factory=dict)
    drop: list[str] = field(default_factory=list)  # raw columns only `post` reads (scores)
    # False leaves each score's raw value in its column: a bucket of entities cannot rank them,
    # the caller ranks the raw values of every bucket together (`engine.buckets`).
    rank_scores: bool = True

    def mask(self, events: tuple[str, ...], where: ir.Expr | None, window: ir.Window | None,
             since: datetime | None, *, custom_only: bool = False) -> str:  # fmt: skip
        key = (events, where, window, since, custom_only)
        if key not in self.masks:
            name = self.names.fresh("m")
            expr = name_mask(events) & window_mask(window, since, self.as_of)
            if where is not None:
                resolve = event_resolver(
                    self.names, self.trait_columns, custom_only=custom_only, derived=self.derived
                )
                expr = expr & compile_predicate(where, resolve)
            self.masks[key] = name
            self.mask_exprs[name] = expr.alias(name)
        return self.masks[key]

    def _value(self, ref: ir.Ref) -> CachedValue:
        return CachedValue(self.names.path_column(ref.scope, ref.path), self.derived)

    def add_trait(self, trait: ir.Trait) -> None:
        mask_name = self.mask(trait.events, trait.where, trait.window, None, custom_only=True)
        mask = pl.col(mask_name)
        out = computed_column(trait.key)
        kind = trait.kind
        if kind == "count":
            self.aggs[out] = mask.sum().cast(pl.Int64).alias(out)
            self.fills[out] = 0
            return
        if kind == "score" and not self.rank_scores:
            self.aggs[out] = raw_value(trait, mask, self.as_of).alias(out)
            return
        if kind == "score":
            raw = f"{out}__raw"
            self.aggs[raw] = raw_value(trait, mask, self.as_of).alias(raw)
            self.post[out] = score_from_raw(raw).alias(out)
            self.drop.append(raw)
            return
        assert trait.property is not None
        value = self._value(trait.property)
        if kind in ("sum", "avg", "min", "max"):
            pre = self.names.fresh("v")
            self.pre[pre] = pl.when(mask).then(value.num()).alias(pre)
            col = pl.col(pre)
            agg = {"sum": col.sum(), "avg": col.mean(), "min": col.min(), "max": col.max()}[kind]
            self.aggs[out] = agg.cast(pl.Float64).alias(out)
            if kind == "sum":
                self.fills[out] = 0.0
        elif kind in ("first", "last"):
            # Sorting only the matching events is far cheaper than sorting all of them.
            self.first_last.setdefault(mask_name, []).append((out, value.column, kind))
        else:
            pre = self.names.fresh("v")
            self.pre[pre] = pl.when(mask).then(value.distinct_text()).alias(pre)
            col = pl.col(pre)
            if kind == "unique_count":
                self.aggs[out] = col.drop_nulls().n_unique().cast(pl.Int64).alias(out)
                self.fills[out] = 0
            elif kind == "unique_list":
                self.aggs[out] = col.drop_nulls().unique().sort().alias(out)
                self.fills[out] = []
            else:  # most_frequent: its own small group-by over (entity, value)
                self.most_frequent.append((out, pre, kind, trait.min_frequency))

    def add_event_condition(self, cond: ir.EventCond, out: str) -> None:
        mask = pl.col(self.mask(cond.events, cond.where, cond.window, cond.since))
        agg_columns: dict[ir.Agg, str] = {}
        for agg in aggs(cond.having):
            if agg in agg_columns:
                continue
            name = f"{out}__{len(agg_columns)}"
            agg_columns[agg] = name
            self.aggs[name] = self._aggregate(agg, mask).alias(name)
            if agg.name in ("count_star", "count", "count_distinct", "sum"):
                self.fills[name] = 0.0

        def resolve(node: ir.Expr) -> Typed:
            assert isinstance(node, ir.Agg)
            return NumberValue(pl.col(agg_columns[node]))

        self.post[out] = compile_expr(cond.having, resolve).read("bool").fill_null(False).alias(out)

    def _aggregate(self, agg: ir.Agg, mask: pl.Expr) -> pl.Expr:
        if agg.name == "count_star":
            return mask.sum().cast(pl.Float64)
        assert agg.arg is not None
        value = self._value(agg.arg)
        if agg.name == "count":
            return (mask & ~value.is_null()).sum().cast(pl.Float64)
        if agg.name == "count_distinct":
            pre = self.names.fresh("v")
            self.pre[pre] = pl.when(mask).then(value.distinct_text()).alias(pre)
            return pl.col(pre).drop_nulls().n_unique().cast(pl.Float64)
        pre = self.names.fresh("v")
        self.pre[pre] = pl.when(mask).then(value.num()).alias(pre)
        col = pl.col(pre)
        result = {"sum": col.sum(), "avg": col.mean(), "min": col.min(), "max": col.max()}[agg.name]
        return result.cast(pl.Float64)

    def run(self, events: pl.LazyFrame, entities: pl.LazyFrame) -> pl.LazyFrame:
        """entities (entity_id) left-joined with every aggregate; missing entities get empty values."""
        if not self.aggs and not self.most_frequent and not self.first_last:
            return entities.with_columns(list(self.post.values()))
        staged = events
        if self.derived:
            staged = staged.with_columns(list(self.derived.values()))
        staged = staged.with_columns(list(self.mask_exprs.values()))
        if self.pre:
            staged = staged.with_columns(list(self.pre.values()))
        if self.most_frequent or self.first_last:
            # Several group-bys read the staged columns: compute them once, not once per plan,
            # and keep only the columns they read (not every event column and derived reading).
            staged = staged.select(self._read_columns()).collect().lazy()
        result = entities
        if self.aggs:
            grouped = staged.group_by(ENTITY).agg(list(self.aggs.values()))
            result = result.join(grouped, on=ENTITY, how="left")
        for mask, picks in self.first_last.items():
            result = result.join(_first_last(staged, mask, picks), on=ENTITY, how="left")
        for out, pre, _, min_frequency in self.most_frequent:
            result = result.join(
                _most_frequent(staged, pre, min_frequency, out), on=ENTITY, how="left"
            )
        fills = []
        for name, value in self.fills.items():
            if isinstance(value, list):
                fills.append(pl.col(name).fill_null(pl.lit([], dtype=pl.List(pl.String))))
            else:
                fills.append(pl.col(name).fill_null(value))
        if fills:
            result = result.with_columns(fills)
        if self.post:
            result = result.with_columns(list(self.post.values()))
        if self.drop:
            result = result.drop(self.drop)
        return result

    def _read_columns(self) -> list[str]:
        """The staged columns the group-bys of `run` read, in a stable order."""
        read = {ENTITY}
        for expr in self.aggs.values():
            read.update(expr.meta.root_names())
        for mask, picks in self.first_last.items():
            read.update((mask, ORDER, *(column for _, column, _ in picks)))
        read.update(pre for _, pre, _, _ in self.most_frequent)
        return sorted(read)


def _first_last(staged: pl.LazyFrame, mask: str, picks: list[tuple[str, str, str]]) -> pl.LazyFrame:
    """Values of the earliest / latest matching event (even when that value is null)."""
    columns = sorted({column for _, column, _ in picks})
    matching = staged.filter(pl.col(mask)).select(ENTITY, ORDER, *columns)
    first, last = pl.col(ORDER).arg_min(), pl.col(ORDER).arg_max()
    aggs = [
        pl.col(column).get(first if kind == "first" else last).alias(out)
        for out, column, kind in picks
    ]
    return matching.group_by(ENTITY).agg(aggs)


def _most_frequent(staged: pl.LazyFrame, pre: str, min_frequency: int, out: str) -> pl.LazyFrame:
    """The value seen most often (at least min_frequency times); ties -> smallest text."""
    counts = (
        staged.select(ENTITY, pl.col(pre).alias("value"))
        .drop_nulls("value")
        .group_by(ENTITY, "value")
        .agg(pl.len().alias("n"))
        .filter(pl.col("n") >= min_frequency)
    )
    return (
        counts.sort([ENTITY, "n", "value"], descending=[False, True, False])
        .group_by(ENTITY, maintain_order=True)
        .agg(pl.col("value").first().alias(out))
    )
