"""The messageIds a refresh needs: those of messages whose timestamp another message shares.

SPEC's processing order is (timestamp, messageId, seq). Where a timestamp is a message's own,
the timestamp alone places it, so the engine passes of a refresh can be handed their order
without reading any messageId (wide random text, about as costly to decode as every other
column a refresh reads together) but those of tied messages. The state keeps those
(`EngineState.ties`: source, line, message_id); a refresh adds the new messages' ties (among
themselves, and with old messages of their timestamps: only late messages have any), reading
the messageIds of those few old messages alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import polars as pl

from audience_pipeline.delta.keys import MESSAGE_KEY, Current, in_time, rows_of
from audience_pipeline.identity.prepare import processing_rank

TIES_SCHEMA = pl.Schema({"source": pl.String, "line": pl.Int64, "message_id": pl.String})


def _tied(stamps: pl.DataFrame) -> pl.Series:
    """The seqs of the rows whose timestamp another row shares."""
    return stamps.filter(pl.col("timestamp").is_duplicated())["seq"]


def full_ties(events: pl.DataFrame | pl.LazyFrame, as_of: datetime) -> pl.DataFrame:
    """source, line, message_id of every message at or before as-of whose timestamp another
    such message shares, in seq order."""
    lazy = events.lazy().filter(in_time(as_of))
    tied = _tied(lazy.select("seq", "timestamp").collect())
    columns = ["seq", *MESSAGE_KEY, "message_id"]
    rows = lazy.filter(pl.col("seq").is_in(tied.implode())).select(columns).collect()
    return rows.sort("seq").select(TIES_SCHEMA.names())


def current_ties(
    cur: Current,
    old: pl.DataFrame,
    fresh_rows: pl.DataFrame,
    read: Callable[[pl.Series], pl.DataFrame],
) -> pl.DataFrame:
    """seq, message_id of every current message whose timestamp another shares.

    Args:
        cur: the current messages, keyed (profile_id null on new messages).
        old: the previous state's ties.
        fresh_rows: seq, timestamp, message_id of the new messages.
        read: `read(seqs)`: seq, message_id of those messages (read from the events).

    With no message gone, the old ties stay; a new message ties with other new ones or with
    old messages of its timestamp (a late one), whose messageIds are read if the state does not
    hold them: a few rows. A message gone could untie one: every tie is found again.
    """
    if cur.removed.height:
        return read(_tied(cur.frame.select("seq", "timestamp"))).select("seq", "message_id")
    stamps = fresh_rows["timestamp"].unique()
    old_hit = cur.frame.filter(
        pl.col("profile_id").is_not_null() & pl.col("timestamp").is_in(stamps.implode())
    )
    kept = cur.locate(old).select("seq", "message_id")
    unread = old_hit["seq"].filter(~old_hit["seq"].is_in(kept["seq"].implode()))
    late = read(unread).select("seq", "message_id") if unread.len() else kept.clear()
    among = pl.col("timestamp").is_duplicated() | pl.col("timestamp").is_in(
        old_hit["timestamp"].implode()
    )
    fresh = fresh_rows.filter(among).select("seq", "message_id")
    return pl.concat([kept, late, fresh]).sort("seq")


def next_ties(cur: Current, ties: pl.DataFrame) -> pl.DataFrame:
    """The next state's ties: source, line, message_id, in seq order."""
    keys = rows_of(cur.frame, ties["seq"], ["seq", *MESSAGE_KEY])
    return keys.join(ties, on="seq", how="inner", maintain_order="left").select(TIES_SCHEMA.names())


def pass_order(rows: pl.DataFrame, ties: pl.DataFrame) -> pl.Series:
    """The processing order of `rows` (seq, timestamp): messageIds where timestamps tie."""
    keyed = rows.select("seq", "timestamp").join(ties, on="seq", how="left", maintain_order="left")
    return processing_rank(keyed)


__all__ = ["TIES_SCHEMA", "current_ties", "full_ties", "next_ties", "pass_order"]
