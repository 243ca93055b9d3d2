"""Identifiers as integers before the graph: one dictionary of the distinct identifier values.

The identity input's widest columns are the identifier strings of every message (a list of
``{id_type, id_value}`` per message, about 125 bytes a message) and the messageIds. Held whole,
with the tables built from them, they were most of a run's peak memory. Here they are read from
a lazy frame (a scan of the normalized events) in a few streaming passes and never held whole:

1. ``seq`` and ``timestamp`` of every message (16 bytes a message). MessageIds are read only for
   the messages whose timestamp another message shares: elsewhere the timestamp alone orders.
2. The distinct identifier values (previousIds of alias calls included), sorted: a value's code
   is its place in that order, so codes compare as the strings do.
3. Every (message, identifier) as (seq, type rank, value code), the strings joined away in the
   streaming engine.

`identity.prepare` builds the graph from these integers; strings come back only for the
identifiers of the output (`Coded.values`).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from polars.datatypes import IntegerType

from audience_pipeline.identity.result import type_ranks
from audience_pipeline.spec.models import SpaceConfig

RANK = pl.Int64
CODE = pl.UInt32
# Type ranks: a space has a handful of identifier types.
TRANK = pl.Int16


def occurrence_rank(messages: int) -> IntegerType:
    """The integer type of a message's rank in the per-identifier tables: Int32 up to 2**31
    messages (half the bytes of every occurrence, link and edge), Int64 past that."""
    return pl.Int32() if messages < 2**31 else pl.Int64()


@dataclass(frozen=True)
class Coded:
    """The identity input with identifiers as integers.

    Attributes:
        messages: ``seq``, ``rank`` (processing order 0..M-1), sorted by ``seq``.
        occurrences: ``rank``, ``trank`` (type rank), ``vcode`` (value code): every identifier
            of every message (a pair may repeat); ranks as `occurrence_rank` types them.
        aliases: ``rank``, ``vcode``: the previousId of every alias call that has one.
        values: the distinct identifier values, sorted; ``values[vcode]`` is a code's text.
    """

    messages: pl.DataFrame
    occurrences: pl.DataFrame
    aliases: pl.DataFrame
    values: pl.Series


def _is_alias() -> pl.Expr:
    return (pl.col("type") == "alias") & pl.col("previous_id").is_not_null()


def _tie_keys(messages: pl.LazyFrame, base: pl.DataFrame) -> pl.Series:
    """UInt32 keys that order messages sharing a timestamp as (messageId nulls last) does.

    Only the messages whose timestamp is shared need their messageId: the others get 0 (their
    timestamp alone places them). `base` is sorted by seq.
    """
    shared = base["timestamp"].is_duplicated()
    keys = pl.zeros(base.height, dtype=pl.UInt32, eager=True)
    if not shared.any():
        return keys
    wanted = base.filter(shared).select("seq")
    ids = messages.select("seq", "message_id").join(wanted.lazy(), on="seq", how="semi")
    found = ids.collect(engine="streaming")
    # Dense ranks of the texts from 1, nulls after every text (one more than the largest).
    ranked = found["message_id"].rank("dense").cast(pl.UInt32)
    ranked = ranked.fill_null((ranked.max() or 0) + 1)  # type: ignore[operator]
    return keys.scatter(base["seq"].search_sorted(found["seq"]), ranked)


def _ordered(messages: pl.LazyFrame) -> pl.DataFrame:
    """``seq``, ``rank``: each message's place in processing order (timestamp, messageId nulls
    last, seq), sorted by seq."""
    base = messages.select("seq", "timestamp").collect(engine="streaming")
    if not base["seq"].is_sorted():
        base = base.sort("seq")
    tie = _tie_keys(messages, base)
    order = base.select(pl.arg_sort_by(pl.col("timestamp"), tie, pl.col("seq"))).to_series()
    positions = pl.int_range(0, base.height, dtype=RANK, eager=True)
    return base.select("seq", rank=positions.clone().scatter(order, positions))


def _values(messages: pl.LazyFrame) -> pl.DataFrame:
    """``id_value``, ``vcode``: the distinct identifier values (previousIds of alias calls
    included), sorted, numbered."""
    held = messages.select(pl.col("ids").explode().struct.field("id_value"))
    previous = messages.filter(_is_alias()).select(id_value=pl.col("previous_id"))
    distinct = pl.concat([held, previous]).drop_nulls().unique().collect(engine="streaming")
    return (
        distinct.sort("id_value")
        .with_row_index("vcode")
        .select("id_value", pl.col("vcode").cast(CODE))
    )


def _unknown_types(messages: pl.LazyFrame, ranks: dict[str, int]) -> list[str]:
    types = (
        messages.select(pl.col("ids").explode())
        .unnest("ids")
        .filter(pl.col("id_value").is_not_null())
        .select(pl.col("id_type").unique())
        .collect(engine="streaming")
    )
    return sorted(set(types["id_type"].drop_nulls().to_list()) - set(ranks))


def _rank_of(ordered: pl.DataFrame, seqs: pl.Series) -> pl.Series:
    """The rank of each seq in `seqs` (every one a message's), `ordered` sorted by seq; typed
    by `occurrence_rank`."""
    dtype = occurrence_rank(ordered.height)
    if ordered.height == 0:
        return pl.Series("rank", [], dtype=dtype)
    first, last = ordered["seq"].min(), ordered["seq"].max()
    assert isinstance(first, int) and isinstance(last, int)
    ranks = ordered["rank"].cast(dtype)
    if first >= 0 and last < 4 * ordered.height + 1024:
        # Dense seqs (a normalized run's line counter): one array indexed by seq, no search.
        by_seq = pl.repeat(None, last + 1, dtype=dtype, eager=True)
        by_seq = by_seq.scatter(ordered["seq"], ranks)
        return by_seq.gather(seqs)
    return ranks.gather(ordered["seq"].search_sorted(seqs))


def encode(messages: pl.LazyFrame, space: SpaceConfig) -> Coded:
    """Read the identity input as integers (see the module's docstring).

    Args:
        messages: already cut at as-of; ``seq`` (unique), ``message_id``, ``type``,
            ``timestamp``, ``ids``, ``previous_id`` (as for `resolve_identities`). A lazy frame:
            a scan is read column by column in streaming passes.
        space: identifier types and their priorities.

    Returns:
        The coded input; raises ValueError on an identifier type the space does not define.
    """
    ranks = type_ranks(space)
    ordered = _ordered(messages)
    values = _values(messages)
    found = (
        messages.select("seq", "ids")
        .explode("ids")
        .unnest("ids")
        .filter(pl.col("id_value").is_not_null())
        .join(values.lazy(), on="id_value", how="inner")
        .select(
            "seq",
            trank=pl.col("id_type").replace_strict(ranks, default=None, return_dtype=TRANK),
            vcode="vcode",
        )
        .collect(engine="streaming")
    )
    if found["trank"].null_count():
        msg = f"identifier types not in the space: {_unknown_types(messages, ranks)}"
        raise ValueError(msg)
    occurrences = found.select(
        rank=_rank_of(ordered, found["seq"]), trank=pl.col("trank"), vcode=pl.col("vcode")
    )
    del found
    aliases = (
        messages.filter(_is_alias())
        .select("seq", id_value=pl.col("previous_id"))
        .collect(engine="streaming")
        .join(values, on="id_value", how="inner")
    )
    aliases = aliases.select(rank=_rank_of(ordered, aliases["seq"]), vcode=pl.col("vcode"))
    return Coded(ordered, occurrences, aliases, values["id_value"])


__all__ = ["Coded", "encode", "occurrence_rank"]
