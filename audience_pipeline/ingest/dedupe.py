"""Dedupe by messageId (SPEC 1, 5a)."""

from __future__ import annotations

import polars as pl


def duplicate_seqs(events: pl.DataFrame | pl.LazyFrame) -> pl.Series:
    """The seq of every dropped copy (``events`` needs seq, message_id and received_at).

    Among messages sharing a message_id the one with the earliest received_at wins (a copy with
    a received_at beats one without), then the lowest seq. Messages without a message_id are
    never deduped.
    """
    keyed = events.lazy().filter(pl.col("message_id").is_not_null())
    winner = (
        pl.col("seq")
        .sort_by([pl.col("received_at").is_null(), pl.col("received_at"), pl.col("seq")])
        .first()
        .over("message_id")
    )
    return (
        keyed.filter(pl.col("message_id").is_duplicated())
        .filter(pl.col("seq") != winner)
        .select("seq")
        .collect()
        .to_series()
    )


def drop_duplicates(
    events: pl.DataFrame, trait_updates: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Events and trait updates without the dropped copies, and how many copies were dropped."""
    dropped = duplicate_seqs(events)
    if dropped.is_empty():
        return events, trait_updates, 0
    events = events.filter(~pl.col("seq").is_in(dropped.implode()))
    trait_updates = trait_updates.filter(~pl.col("seq").is_in(dropped.implode()))
    return events, trait_updates, dropped.len()
