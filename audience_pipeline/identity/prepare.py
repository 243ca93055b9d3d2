"""Messages in processing order, with each message's identifiers as numbered graph nodes.

The input comes coded (`identity.encode`): identifier values as integer codes in string order,
so the graph is built on integers and strings come back only for the output's identifiers.

Alias calls are typed here with joins instead of a running dictionary: a previousId takes the type
it had in the earliest message (in processing order) that held the value, if that message comes
before the alias; else the fallback type. The earliest holder may itself be an alias whose
previousId was that value; then that previousId had no earlier holder and carries the fallback
type, which is what the occurrence table below records for it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import polars as pl
from polars.datatypes import IntegerType

from audience_pipeline.identity.encode import TRANK, Coded, encode, occurrence_rank
from audience_pipeline.identity.result import alias_fallback_type, type_limits, type_ranks
from audience_pipeline.spec.models import SpaceConfig

COLUMNS = ("seq", "message_id", "type", "timestamp", "ids", "previous_id")


@dataclass(frozen=True)
class Prepared:
    """Identifier graph input.

    Attributes:
        messages: ``rank`` (processing order 0..M-1), ``seq``, ``first`` (node of the message's
            first identifier), sorted by ``rank``.
        links: ``rank``, ``node``: every identifier of every message, previousId included
            (a pair may repeat).
        nodes: ``node``, ``trank`` (type rank), ``vcode`` (the value's code in ``values``);
            node ids follow (type rank, value) order, so a message's first identifier is its
            smallest node. `prepare` adds ``id_type`` and ``id_value`` (the SQL resolvers read
            them); `named` gives them for any frame of nodes.
        limits: ``trank``, ``limit``.
        values: the distinct identifier values, sorted (``values[vcode]``).
        types: the identifier type of each type rank (``types[trank]``).
    """

    messages: pl.DataFrame
    links: pl.DataFrame
    nodes: pl.DataFrame
    limits: pl.DataFrame
    values: pl.Series
    types: pl.Series

    def named(self, nodes: pl.DataFrame) -> pl.DataFrame:
        """`nodes` (with ``trank`` and ``vcode``) with ``id_type`` and ``id_value`` added."""
        return nodes.with_columns(
            id_type=self.types.gather(nodes["trank"]), id_value=self.values.gather(nodes["vcode"])
        )


def processing_rank(messages: pl.DataFrame) -> pl.Series:
    """Each message's place in processing order: (timestamp, messageId nulls last, seq).

    Args:
        messages: with ``timestamp``, ``message_id`` and ``seq``.

    Returns:
        An Int64 Series ``rank`` (0..n-1), aligned with the rows of ``messages``.
    """
    # An explicit is_null key instead of nulls_last=True: a multi-column sort with nulls_last is
    # about 10x slower in polars 2.1 (1.5 s against 0.15 s on 1M rows). Only the keys are
    # sorted; the ids lists never move.
    order = messages.select(
        pl.arg_sort_by(
            pl.col("timestamp"),
            pl.col("message_id").is_null(),
            pl.col("message_id"),
            pl.col("seq"),
        )
    ).to_series()
    positions = pl.int_range(0, messages.height, dtype=pl.Int64, eager=True)
    return positions.clone().scatter(order, positions).alias("rank")


def _alias_links(coded: Coded, fallback: int, n_types: int) -> pl.DataFrame:
    """``rank``, ``trank``, ``vcode`` of every alias's previousId, typed."""
    aliases = coded.aliases.with_columns(trank=pl.lit(fallback, dtype=TRANK))
    aliases = aliases.select("rank", "trank", "vcode")
    if aliases.height == 0:
        return aliases
    held = pl.concat(
        [coded.occurrences.join(aliases.select("vcode").unique(), on="vcode", how="semi"), aliases]
    )
    # One min over rank * n_types + trank gives the earliest holder and, within it, the
    # highest-priority type the value had there (in Int64: ranks are narrower).
    key = pl.col("rank").cast(pl.Int64) * n_types + pl.col("trank").cast(pl.Int64)
    earliest = held.group_by("vcode").agg(key=key.min())
    return (
        aliases.join(earliest, on="vcode", how="left")
        .with_columns(
            trank=pl.when(pl.col("key") // n_types < pl.col("rank"))
            .then(pl.col("key") % n_types)
            .otherwise(pl.lit(fallback, dtype=pl.Int64))
            .cast(TRANK)
        )
        .select("rank", "trank", "vcode")
    )


def _numbered(keys: pl.Series, size: int) -> tuple[pl.Series, pl.Series]:
    """Node of each key (dense, in key order; typed as `node_type` types them) and the key of
    each node (Int64).

    Keys are below `size` (type rank * values + value code: a few per distinct value), so one
    array marks the keys present and its running count numbers them, without a sort or a hash
    table over every occurrence.
    """
    present = pl.zeros(size, dtype=pl.UInt8, eager=True).scatter(keys, 1)
    node_of = (present.cum_sum() - 1).cast(node_type(size))
    return node_of.gather(keys), (present == 1).arg_true().cast(pl.Int64)


def node_type(size: int) -> IntegerType:
    """The integer type of node ids below `size`: Int32 where they fit (every link holds one)."""
    return pl.Int32() if size < 2**31 else pl.Int64()


FIRSTS_ROWS = 8_000_000  # messages whose first identifier one group-by finds


def _firsts(links: pl.DataFrame, messages: int) -> pl.DataFrame:
    """``rank``, ``first``: each message's smallest node, a range of ranks at a time (a
    group-by over every link at once held a hash table of every message: most of identity's
    peak at 30M messages)."""
    if messages <= FIRSTS_ROWS:
        return links.group_by("rank").agg(first=pl.col("node").min())
    parts = []
    for start in range(0, messages, FIRSTS_ROWS):
        mine = pl.col("rank").is_between(start, start + FIRSTS_ROWS, closed="left")
        parts.append(links.filter(mine).group_by("rank").agg(first=pl.col("node").min()))
    return pl.concat(parts)


def prepare_coded(coded: Coded, space: SpaceConfig) -> Prepared:
    """Type alias previousIds and number the identifiers of coded messages.

    Args:
        coded: the identity input as integers (`identity.encode.encode`).
        space: identifier types, priorities and limits.

    Returns:
        The graph input; raises ValueError on a message without identifiers.
    """
    ranks = type_ranks(space)
    fallback = ranks[alias_fallback_type(space)]
    held = pl.concat([coded.occurrences, _alias_links(coded, fallback, len(ranks))])
    n_values = max(1, coded.values.len())
    size = len(ranks) * n_values
    # Keys in 4 bytes where they fit: one per occurrence (tens of millions at 30M messages).
    key_type = pl.UInt32 if size < 2**32 else pl.Int64
    key = pl.col("trank").cast(key_type) * pl.lit(n_values, dtype=key_type)
    keys = held.select(key=key + pl.col("vcode").cast(key_type))["key"]
    node, node_keys = _numbered(keys, size)
    del keys
    # Not deduplicated: a repeated (message, identifier) only repeats a graph edge; the
    # sequential path dedupes the few messages it takes.
    links = pl.DataFrame({"rank": held["rank"], "node": node})
    del held, node
    nodes = pl.DataFrame({"node": pl.int_range(0, node_keys.len(), dtype=node_type(size), eager=True),
                          "trank": node_keys // n_values,
                          "vcode": (node_keys % n_values).cast(pl.UInt32)})  # fmt: skip
    firsts = _firsts(links, coded.messages.height)
    ordered = coded.messages
    rank_type = occurrence_rank(ordered.height)
    if firsts.height != ordered.height:
        ranked = ordered.with_columns(pl.col("rank").cast(rank_type))
        missing = ranked.join(firsts, on="rank", how="anti")["seq"].head(5).to_list()
        msg = f"messages without any identifier (seq {missing})"
        raise ValueError(msg)
    # rank is a permutation of 0..n-1, so scattering puts every row at its rank.
    message_frame = pl.DataFrame(
        {
            "rank": pl.int_range(0, ordered.height, dtype=rank_type, eager=True),
            "seq": ordered["seq"].clone().scatter(ordered["rank"], ordered["seq"]),
            "first": pl.zeros(ordered.height, dtype=node_type(size), eager=True).scatter(
                firsts["rank"], firsts["first"]
            ),
        }
    )
    del firsts
    limit_of = type_limits(space)
    limits = pl.DataFrame(
        {"trank": [ranks[t] for t in limit_of], "limit": list(limit_of.values())},
        schema={"trank": pl.Int64, "limit": pl.Int64},
    )
    types = pl.Series("id_type", sorted(ranks, key=ranks.__getitem__), dtype=pl.String)
    return Prepared(message_frame, links, nodes, limits, coded.values, types)


def prepare(messages: pl.DataFrame, space: SpaceConfig) -> Prepared:
    """Order messages, type alias previousIds and number the identifiers.

    Args:
        messages: the identity input (see `resolve_identities`).
        space: identifier types, priorities and limits.

    Returns:
        The graph input, its nodes named (``id_type``, ``id_value``); raises ValueError on a
        message without identifiers or an unknown type.
    """
    prepared = prepare_coded(encode(messages.select(COLUMNS).lazy(), space), space)
    # Int64 ranks, nodes and codes: the SQL resolvers load these frames into tables of the
    # usual integer types (`prepare_coded` narrows them where they fit).
    wide = pl.all().exclude("id_type", "id_value").cast(pl.Int64)
    nodes = prepared.named(prepared.nodes).with_columns(wide)
    return replace(prepared, nodes=nodes, messages=prepared.messages.with_columns(wide),
                   links=prepared.links.with_columns(wide))  # fmt: skip
