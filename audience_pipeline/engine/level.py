"""Evaluate one level (users or accounts): traits, event conditions and funnels over its events."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from audience_pipeline.engine.aggregate import LevelPlan
from audience_pipeline.engine.columns import ENTITY, ColumnNames, extract_paths
from audience_pipeline.engine.funnels import evaluate_funnel
from audience_pipeline.engine.traitvalues import (
    STORAGE_BY_KIND,
    TraitColumns,
    computed_column,
    custom_column,
)
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import refs

log = logging.getLogger(__name__)


@dataclass
class LevelResult:
    frame: pl.DataFrame  # entity_id, computed trait columns, custom trait columns, leaf columns
    traits: TraitColumns


def _trait_refs(expr: ir.Expr | None) -> set[str]:
    return {r.path[0] for r in refs(expr) if r.scope == "trait"}


def evaluate_level(
    *,
    events: pl.LazyFrame,
    entities: pl.LazyFrame,
    custom: pl.LazyFrame,
    custom_keys: set[str],
    traits: list[ir.Trait],
    conditions: dict[ir.EventCond, str],
    funnels: dict[ir.Funnel, str],
    as_of: datetime,
    overrides: pl.DataFrame | None = None,
    rank_scores: bool = True,
) -> LevelResult:
    """Computed traits, event-condition and funnel columns for every entity of one level.

    `events` has entity_id, timestamp, seq, the processing order, event, and the property and
    context columns the level reads.
    `custom` has entity_id and one tagged-text column per custom trait (`_ct_<key>`).
    `overrides`: entity_id and computed trait columns to take as given instead of computing
    them (explain over a few entities takes the run's scores, which rank every entity).
    `rank_scores`: False leaves score traits as their raw values (a bucket of the entities,
    ranked later with every other bucket's).
    """
    names = ColumnNames()
    trait_columns = TraitColumns(
        computed={t.key: STORAGE_BY_KIND[t.kind] for t in traits}, custom=set(custom_keys)
    )
    needs = _Needs.of(traits, conditions, funnels, set(trait_columns.computed), custom_keys)
    events = extract_paths(events, names, _wanted_refs(traits, conditions, funnels))
    if needs.custom:
        cols = [custom_column(k) for k in sorted(needs.custom)]
        events = events.join(custom.select(ENTITY, *cols), on=ENTITY, how="left")

    plan = LevelPlan(names, trait_columns, as_of, rank_scores=rank_scores)
    for trait in traits:
        plan.add_trait(trait)
    for cond, col in needs.first_pass.items():
        plan.add_event_condition(cond, col)
    started = time.perf_counter()
    result = plan.run(events, entities).collect()
    log.debug("level plan: %.2fs", time.perf_counter() - started)
    if overrides is not None:
        given = [c for c in overrides.columns if c != ENTITY]
        result = result.drop(given).join(overrides, on=ENTITY, how="left")

    if needs.computed:
        computed_frame = result.select(ENTITY, *[computed_column(t.key) for t in traits])
        events = events.join(computed_frame.lazy(), on=ENTITY, how="left")
    if needs.second_pass:
        result = result.join(
            _second_pass(needs.second_pass, events, entities, names, trait_columns, as_of),
            on=ENTITY,
            how="left",
        )
    result = _with_funnels(result, funnels, events, names, trait_columns, as_of)
    result = result.join(
        custom.collect() if isinstance(custom, pl.LazyFrame) else custom, on=ENTITY, how="left"
    )
    return LevelResult(result, trait_columns)


def _wanted_refs(
    traits: list[ir.Trait], conditions: dict[ir.EventCond, str], funnels: dict[ir.Funnel, str]
) -> list[ir.Ref]:
    """Every property and context path the level's traits, conditions and funnels read."""
    wanted: list[ir.Ref] = []
    for trait in traits:
        wanted += refs(trait.where)
        if trait.property is not None:
            wanted.append(trait.property)
    for cond in conditions:
        wanted += refs(cond.where) + refs(cond.having)
    for funnel in funnels:
        for step in funnel.steps:
            wanted += refs(step.where)
    return wanted


@dataclass(frozen=True)
class _Needs:
    """What the level's nodes read besides the events: custom traits joined onto the events
    once (named by `trait.k` in a where), and computed traits (then conditions reading them
    run in a second pass, after the traits)."""

    custom: set[str]
    first_pass: dict[ir.EventCond, str]
    second_pass: dict[ir.EventCond, str]
    computed: bool  # some second-pass condition or funnel step reads a computed trait

    @classmethod
    def of(
        cls,
        traits: list[ir.Trait],
        conditions: dict[ir.EventCond, str],
        funnels: dict[ir.Funnel, str],
        computed_keys: set[str],
        custom_keys: set[str],
    ) -> _Needs:
        needed_custom = set()
        for trait in traits:
            needed_custom |= _trait_refs(trait.where) & custom_keys
        second_pass: dict[ir.EventCond, str] = {}
        first_pass: dict[ir.EventCond, str] = {}
        for cond, col in conditions.items():
            named = _trait_refs(cond.where)
            needed_custom |= (named - computed_keys) & custom_keys
            (second_pass if named & computed_keys else first_pass)[cond] = col
        funnel_traits = set()
        for funnel in funnels:
            for step in funnel.steps:
                funnel_traits |= _trait_refs(step.where)
        needed_custom |= (funnel_traits - computed_keys) & custom_keys
        computed = bool(second_pass) or bool(funnel_traits & computed_keys)
        return cls(needed_custom, first_pass, second_pass, computed)


def _second_pass(
    conditions: dict[ir.EventCond, str],
    events: pl.LazyFrame,
    entities: pl.LazyFrame,
    names: ColumnNames,
    traits: TraitColumns,
    as_of: datetime,
) -> pl.DataFrame:
    """The event conditions whose where reads a computed trait (joined onto the events)."""
    plan = LevelPlan(names, traits, as_of)
    for cond, col in conditions.items():
        plan.add_event_condition(cond, col)
    return plan.run(events, entities.select(ENTITY)).collect()


def _with_funnels(
    result: pl.DataFrame,
    funnels: dict[ir.Funnel, str],
    events: pl.LazyFrame,
    names: ColumnNames,
    traits: TraitColumns,
    as_of: datetime,
) -> pl.DataFrame:
    """One boolean column per funnel: does it hold for the entity?"""
    started = time.perf_counter()
    for funnel, col in funnels.items():
        holds = evaluate_funnel(funnel, events, names, traits, as_of).collect()
        result = result.with_columns(pl.col(ENTITY).is_in(holds[ENTITY].implode()).alias(col))
    log.debug("funnels: %.2fs", time.perf_counter() - started)
    return result
