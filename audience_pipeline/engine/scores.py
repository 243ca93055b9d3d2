"""Behavioural scores (SPEC 7, `kind: score`) in the Polars engine.

Each score is a raw value per entity, aggregated in the level's fused group-by, then ranked
across every entity of the level that has a matching event in the window:
score = round_half_up(100 * (rank - 1) / (n - 1)), rank = SQL RANK() ascending (ties share the
lower rank), n = 1 gives 100, no matching event gives null. The rounding is done in integers:
floor((200 * (rank - 1) + (n - 1)) / (2 * (n - 1))).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from audience_pipeline.ir import nodes as ir

WEEK = timedelta(days=7)
WEEK_US = 7 * 86400 * 1_000_000


def weeks(window: int) -> int:
    """Consistency's number of whole weeks in a window of `window` seconds (at least 1)."""
    return max(1, window // (7 * 86400))


def raw_value(trait: ir.Trait, mask: pl.Expr, as_of: datetime) -> pl.Expr:
    """The raw value of one score over the events where `mask` holds (null when none)."""
    assert trait.window is not None and trait.window.lower is not None
    ts = pl.col("timestamp")
    window = trait.window.lower
    has = mask.any()
    match trait.score:
        case "quantity":
            raw = mask.sum().cast(pl.Float64)
        case "frequency":
            raw = ts.filter(mask).dt.date().n_unique().cast(pl.Float64)
        case "recency":
            # Later is higher; exact to the millisecond (the latest event's time, truncated).
            raw = ts.filter(mask).max().dt.truncate("1ms").dt.epoch("ms").cast(pl.Float64)
        case "momentum":
            # W/3 is whole seconds (durations are whole minutes); T - W/3 itself is "earlier".
            cut = pl.lit(as_of - timedelta(seconds=window // 3))
            recent = (mask & (ts > cut)).sum()
            earlier = (mask & (ts <= cut)).sum()
            raw = 3.0 * recent.cast(pl.Float64) - 1.5 * earlier.cast(pl.Float64)
        case "consistency":
            k = weeks(window)
            # Week i is (T - (i+1)7d, T - i*7d]: floor((T - ts) / 7d) = i, in exact microseconds.
            index = (pl.lit(as_of) - ts).dt.total_microseconds() // WEEK_US
            raw = index.filter(mask & (index < k)).n_unique().cast(pl.Float64)
        case _:
            msg = f"unknown score {trait.score!r}"
            raise ValueError(msg)
    return pl.when(has).then(raw)


def score_from_raw(raw: str) -> pl.Expr:
    """Rank the raw column over the whole frame (every entity of the level) into 0..100."""
    value = pl.col(raw)
    n = value.count()
    rank = value.rank("min")
    scaled = (200 * (rank - 1) + (n - 1)) // (2 * (n - 1)).clip(lower_bound=1)
    return (
        pl.when(value.is_null()).then(None).when(n == 1).then(100).otherwise(scaled).cast(pl.Int64)
    )


__all__ = ["raw_value", "score_from_raw", "weeks"]
