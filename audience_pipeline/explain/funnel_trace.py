"""Which funnel steps an entity reached, and when: the engine's funnel, asked event by event.

`engine.funnels.evaluate_funnel` only says whether a whole funnel holds. To find the events that
reach step k, each candidate event c of step k is asked separately: a copy of the entity's events
(up to c's time) in which c alone carries a marker name, evaluated with the funnel's first k
steps where step k looks for the marker. The copy holds exactly when c completes a chain of the
first k steps, by the engine's own rules (windows, `within`, `where` with `parent.`/`trait.`,
backfill). All copies of a step run as one evaluation (the copy is the entity column).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

import polars as pl

from audience_pipeline.engine.columns import ENTITY, ColumnNames, extract_paths
from audience_pipeline.engine.funnels import evaluate_funnel
from audience_pipeline.engine.traitvalues import TraitColumns
from audience_pipeline.explain.evaluate import LevelView
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import refs

MARKER = "\x00explain:candidate"
NEVER = "\x00explain:never"
MAX_COPY_ROWS = 2_000_000  # beyond this, only the latest candidates are traced


@dataclass
class StepTrace:
    """One step: its candidate events (by name) and those that complete the first k steps."""

    index: int  # 1-based
    candidates: int
    reached: list[datetime] = field(default_factory=list)
    truncated: bool = False


def trace_funnel(
    funnel: ir.Funnel, view: LevelView, entity: str, as_of: datetime
) -> list[StepTrace]:
    """Per step, the events of `entity` that complete the funnel's first k steps.

    For a `performed: false` last step, "reached" lists the step's events that follow a reached
    previous step inside its window: the events that break the funnel.
    """
    names = ColumnNames()
    wanted = [r for step in funnel.steps for r in refs(step.where)]
    step_names = {name for step in funnel.steps for name in step.events}
    own = view.events.filter((pl.col(ENTITY) == entity) & pl.col("event").is_in(step_names))
    events = extract_paths(own.lazy(), names, wanted).collect()
    events = _with_traits(events, view)
    traces = []
    for index, step in enumerate(funnel.steps, start=1):
        candidates = events.filter(
            pl.col("event").is_in(list(step.events)) & (pl.col("timestamp") <= as_of)
        ).sort("timestamp", "seq")
        trace = StepTrace(index, candidates.height)
        if candidates.height:
            trace.reached, trace.truncated = _reached(
                funnel, index, events, candidates, names, view.traits, as_of
            )
        traces.append(trace)
    return traces


def _with_traits(events: pl.DataFrame, view: LevelView) -> pl.DataFrame:
    """The entity's trait columns on each event, as `evaluate_level` joins them."""
    computed = [c for c in view.traits.columns() if c in view.frame.columns]
    custom = [c for c in view.custom.columns if c != ENTITY and c not in computed]
    out = events
    if custom:
        out = out.join(view.custom.select(ENTITY, *custom), on=ENTITY, how="left")
    if computed:
        out = out.join(view.frame.select(ENTITY, *computed), on=ENTITY, how="left")
    return out


def _reached(
    funnel: ir.Funnel,
    index: int,
    events: pl.DataFrame,
    candidates: pl.DataFrame,
    names: ColumnNames,
    traits: TraitColumns,
    as_of: datetime,
) -> tuple[list[datetime], bool]:
    truncated = False
    sizes = [events.filter(pl.col("timestamp") <= ts).height for ts in candidates["timestamp"]]
    while sum(sizes) > MAX_COPY_ROWS and len(sizes) > 1:
        candidates, sizes, truncated = (
            candidates.tail(len(sizes) // 2),
            sizes[len(sizes) // 2 :],
            True,
        )
    copies = []
    for seq, ts in candidates.select("seq", "timestamp").iter_rows():
        copy = events.filter(pl.col("timestamp") <= ts).with_columns(
            pl.lit(str(seq)).alias(ENTITY),
            pl.when(pl.col("seq") == seq)
            .then(pl.lit(MARKER))
            .otherwise(pl.col("event"))
            .alias("event"),
        )
        copies.append(copy)
    stacked = pl.concat(copies)
    step = funnel.steps[index - 1]
    marked = replace(step, events=(MARKER,), performed=True)
    if index == 1:
        # A funnel has two steps at least: a last step that never happens keeps "reached step 1".
        steps: tuple[ir.FunnelStep, ...] = (marked, ir.FunnelStep((NEVER,), None, None, False))
    else:
        steps = (*funnel.steps[: index - 1], marked)
    holds = evaluate_funnel(replace(funnel, steps=steps), stacked.lazy(), names, traits, as_of)
    chosen = set(holds.collect()[ENTITY].to_list())
    reached = [
        ts for seq, ts in candidates.select("seq", "timestamp").iter_rows() if str(seq) in chosen
    ]
    return reached, truncated


__all__ = ["StepTrace", "trace_funnel"]
