"""Identity after a day of new messages, continued from the previous run's profiles.

SPEC section 2 takes messages in order (timestamp, messageId, seq) and only ever merges. When
every new message comes after every message the previous run saw (the usual day: nothing late,
nothing gone), the rule's state after the old messages is the previous run's result, so the new
messages can be linked on top of it, one by one, without reading any old message's identifiers:

- which profile owns an identifier: the previous `identities` table (exactly the linked ones);
- how many values of each type a profile holds: its rows there;
- which of two profiles was created first (a merge keeps that one's id): the one whose first
  message comes first; every profile's first message is its creator (the rule only merges);
  old messages' timestamps are in the refresh's message frame. Two merging profiles whose first
  messages share a timestamp would need messageIds: the caller resolves those as before;
- the type an alias's previousId was first seen as: the state's typed links (a value seen under
  one type only, or only as a previousId); anything less certain goes the old way.

`continue_identity` returns None whenever one of these does not hold; the caller then resolves
the touched components again from their messages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl

from audience_pipeline.identity.result import (
    IDENTITIES_SCHEMA,
    MESSAGE_PROFILES_SCHEMA,
    IdentityResult,
    alias_fallback_type,
    type_limits,
    type_ranks,
)

# The rule's own state (union-find over profiles in creation order): continued here, not copied.
from audience_pipeline.identity.sequential import Linker, message_identifiers
from audience_pipeline.spec.models import SpaceConfig

Identifier = tuple[str, str]
_UNSURE = "\x00unsure"  # a previousId's first type the state cannot tell


@dataclass
class Continued:
    """Identity after the new messages, continued from the previous profiles."""

    touched: pl.Series  # previous profiles that own an identifier of a new message
    identity: IdentityResult  # new and touched messages' profiles; the profiles' identifiers
    profiles: pl.Series  # the profiles those messages now form
    links: Callable[[], pl.DataFrame]  # the next state's identifier links


def _order(rows: pl.DataFrame) -> pl.DataFrame:
    """The new messages in processing order: (timestamp, messageId nulls last, seq)."""
    return rows.sort(
        pl.col("timestamp"), pl.col("message_id").is_null(), pl.col("message_id"), pl.col("seq")
    )


def first_types(links: pl.DataFrame, values: pl.Series, fallback: str) -> dict[str, str]:
    """The type each of `values` the previous messages held was first seen as, when the typed
    links tell it for sure (`_UNSURE` otherwise); values never seen are left out."""
    held = (
        links.filter(pl.col("value").is_in(values.implode()))
        .group_by("value")
        .agg(
            types=pl.col("id_type").drop_nulls().unique(),
            aliased=pl.col("id_type").is_null().any(),
        )
    )
    out: dict[str, str] = {}
    for value, types, aliased in held.iter_rows():
        # A previousId never seen before takes the fallback type; seen before, the type it
        # was seen as. Only one type anywhere (counting that fallback) is certain.
        kinds = set(types) | ({fallback} if aliased else set())
        out[value] = kinds.pop() if len(kinds) == 1 else _UNSURE
    return out


def _identifiers(
    rows: pl.DataFrame, links: pl.DataFrame, space: SpaceConfig
) -> list[list[Identifier]] | None:
    """Each new message's identifiers in linking order (None: a previousId's type is unsure,
    or a message the rule refuses: the caller's resolver reports it)."""
    ranks, fallback = type_ranks(space), alias_fallback_type(space)
    values = pl.concat(
        [
            rows["ids"].list.eval(pl.element().struct.field("id_value")).explode(),
            rows["previous_id"],
        ]
    ).drop_nulls()
    first_type = first_types(links, values.unique(), fallback)
    ordered: list[list[Identifier]] = []
    for row in rows.iter_rows(named=True):
        previous = row["previous_id"]
        if row["type"] == "alias" and previous is not None and first_type.get(previous) == _UNSURE:
            return None
        try:
            ordered.append(message_identifiers(row, first_type, ranks, fallback))
        except ValueError:
            return None
    return ordered


@dataclass
class _Seeds:
    """The previous profiles owning an identifier of a new message, in creation order."""

    profiles: list[str]
    first_ts: list[Any]
    owner: dict[Identifier, int]
    counts: list[dict[str, int]]


def _seeds(
    ordered: list[list[Identifier]], identities: pl.DataFrame, frame: pl.DataFrame
) -> _Seeds:
    wanted = pl.DataFrame(
        list({ident for idents in ordered for ident in idents}),
        schema={"id_type": pl.String, "id_value": pl.String}, orient="row",
    )  # fmt: skip
    owned = identities.join(wanted, on=["id_type", "id_value"], how="semi")
    seeded = owned["profile_id"].unique()
    rows = identities.filter(pl.col("profile_id").is_in(seeded.implode()))
    counts = rows.group_by("profile_id", "id_type").len()
    first = (
        frame.select("profile_id", "timestamp")
        .filter(pl.col("profile_id").is_in(seeded.implode()))
        .group_by("profile_id")
        .agg(pl.col("timestamp").min())
        .sort("timestamp", "profile_id")
    )
    index = {p: i for i, p in enumerate(first["profile_id"].to_list())}
    if len(index) != seeded.len():
        raise _Unsure  # a profile without messages: not a state this refresh wrote
    per: list[dict[str, int]] = [{} for _ in index]
    for profile, id_type, n in counts.iter_rows():
        per[index[profile]][id_type] = n
    owner = {(t, v): index[p] for p, t, v in owned.select(IDENTITIES_SCHEMA.names()).iter_rows()}
    return _Seeds(list(index), first["timestamp"].to_list(), owner, per)


class _Unsure(Exception):
    """The continuation cannot be proven equal to resolving again."""


def _link(seeds: _Seeds, ordered: list[list[Identifier]], space: SpaceConfig) -> Linker:
    """The rule's state after the previous profiles, then the new messages in order."""
    linker = Linker(type_limits(space))
    linker.parent = list(range(len(seeds.profiles)))
    linker.counts = [dict(c) for c in seeds.counts]
    linker.ids = list(seeds.profiles)
    linker.owner = dict(seeds.owner)
    for identifiers in ordered:
        linker.link(identifiers)
    # A merge of two previous profiles kept the one created first; equal first timestamps
    # would need messageIds to say which.
    groups: dict[int, set[Any]] = {}
    for i, ts in enumerate(seeds.first_ts):
        group = groups.setdefault(linker.find(i), set())
        if ts in group:
            raise _Unsure
        group.add(ts)
    return linker


def continue_identity(
    rows: pl.DataFrame,
    frame: pl.DataFrame,
    identities: pl.DataFrame,
    links: pl.DataFrame,
    space: SpaceConfig,
    t0: datetime,
) -> Continued | None:
    """Link the new messages on top of the previous profiles (None: not provably equal).

    Args:
        rows: seq, message_id, type, timestamp, ids, previous_id of the new messages.
        frame: seq, timestamp and profile_id (previous; null for new messages) of every
            message at or before the new as-of.
        identities, links: the previous run's identities table and identifier links.
        space: identifier types, priorities and limits.
        t0: the previous as-of (every old message is at or before it).
    """
    if rows.height == 0 or not bool((rows["timestamp"] > t0).all()):
        return None
    rows = _order(rows)
    settled = _settled(rows, identities)
    rest = rows.filter(~pl.col("seq").is_in(settled["seq"].implode()))
    ordered = _identifiers(rest, links, space)
    if ordered is None:
        return None
    try:
        seeds = _seeds(ordered, identities, frame)
        linker = _link(seeds, ordered, space)
    except _Unsure:
        return None
    new = _New(rows, rest, ordered, settled)
    return _continued(new, frame, identities, links, seeds, linker)


def _settled(rows: pl.DataFrame, identities: pl.DataFrame) -> pl.DataFrame:
    """seq, profile_id of the new messages that change nothing, whenever they come: not an
    alias, and every identifier already linked to one and the same previous profile (the rule
    then adds and merges nothing; the message joins that profile's final one). Most messages of
    a day are; the others are linked one by one."""
    pairs = (
        rows.filter(pl.col("type") != "alias")
        .select("seq", "ids")
        .explode("ids")
        .select(
            "seq",
            id_type=pl.col("ids").struct.field("id_type"),
            id_value=pl.col("ids").struct.field("id_value"),
        )
    )
    owners = pairs.join(identities, on=["id_type", "id_value"], how="left")
    per = owners.group_by("seq").agg(
        missing=pl.col("profile_id").null_count(),
        owners=pl.col("profile_id").n_unique(),
        profile_id=pl.col("profile_id").first(),
    )
    return per.filter((pl.col("missing") == 0) & (pl.col("owners") == 1)).select(
        "seq", "profile_id"
    )


@dataclass
class _New:
    """The new messages: all of them in processing order, those linked one by one (`rest`,
    with their identifiers) and those that change nothing (`settled`)."""

    rows: pl.DataFrame
    rest: pl.DataFrame
    ordered: list[list[Identifier]]
    settled: pl.DataFrame


def _continued(
    new: _New,
    frame: pl.DataFrame,
    identities: pl.DataFrame,
    links: pl.DataFrame,
    seeds: _Seeds,
    linker: Linker,
) -> Continued:
    ids = linker.ids
    final = [ids[linker.find(i)] for i in range(len(seeds.profiles))]
    # The settled messages' profiles gained messages too; linked to nothing new, they keep
    # their id unless a linked message merged them.
    owners = new.settled["profile_id"].unique()
    alone = owners.filter(~owners.is_in(seeds.profiles)).to_list()
    renamed = pl.DataFrame(
        {"profile_id": [*seeds.profiles, *alone], "_new": [*final, *alone]},
        schema={"profile_id": pl.String, "_new": pl.String},
    )
    touched = renamed["profile_id"]

    def relabel(old: pl.DataFrame) -> pl.DataFrame:
        keep = [c for c in old.columns if c != "profile_id"]
        joined = old.join(renamed, on="profile_id", how="inner", maintain_order="left")
        return joined.select(*keep, pl.col("_new").alias("profile_id"))

    new_identities = _new_identities(identities, touched, relabel, seeds, linker)
    linked = pl.DataFrame(
        {"seq": new.rest["seq"],
         "profile_id": [ids[linker.find(linker.owner[m[0]])] for m in new.ordered]},
        schema=MESSAGE_PROFILES_SCHEMA,
    )  # fmt: skip
    fresh = pl.concat([linked, relabel(new.settled)]).sort("seq")
    rows = new.rows
    old_messages = relabel(
        frame.select("seq", "profile_id").filter(pl.col("profile_id").is_in(touched.implode()))
    )
    message_profiles = pl.concat(
        [old_messages.select(MESSAGE_PROFILES_SCHEMA.names()), fresh]
    ).sort("seq")
    identity = IdentityResult(
        message_profiles=message_profiles,
        identities=new_identities,
        stats={"profiles": message_profiles["profile_id"].n_unique(), "continued": rows.height},
    )
    return Continued(
        touched=touched,
        identity=identity,
        profiles=message_profiles["profile_id"].unique(),
        # Built when asked: the caller cuts it beside the engine passes.
        links=functools.partial(_next_links, links, relabel, touched, rows, fresh),
    )


def _new_identities(
    identities: pl.DataFrame,
    touched: pl.Series,
    relabel: Callable[[pl.DataFrame], pl.DataFrame],
    seeds: _Seeds,
    linker: Linker,
) -> pl.DataFrame:
    """The touched profiles' identities under their new ids, with the identifiers first seen
    in the new messages."""
    ids = linker.ids
    seeded = set(seeds.owner)
    added = [
        (ids[linker.find(p)], t, v) for (t, v), p in linker.owner.items() if (t, v) not in seeded
    ]
    old_rows = identities.filter(pl.col("profile_id").is_in(touched.implode()))
    return pl.concat(
        [
            relabel(old_rows).select(IDENTITIES_SCHEMA.names()),
            pl.DataFrame(added, schema=IDENTITIES_SCHEMA, orient="row"),
        ]
    ).sort(IDENTITIES_SCHEMA.names())


def _next_links(
    links: pl.DataFrame,
    relabel: Any,
    touched: pl.Series,
    rows: pl.DataFrame,
    fresh: pl.DataFrame,
) -> pl.DataFrame:
    """The previous links with the touched profiles renamed, and the new messages' values."""
    mine = pl.col("profile_id").is_in(touched.implode())
    new = typed_values(rows.lazy()).join(fresh.lazy(), on="seq").collect()
    # Merged profiles can hold the same value: only the touched part is made unique (a new
    # profile's id is never an untouched one's: its first identifier was nobody's).
    changed = pl.concat([relabel(links.filter(mine)), new.select(links.columns)])
    return pl.concat([links.filter(~mine), changed.unique()])


def typed_values(messages: pl.LazyFrame) -> pl.LazyFrame:
    """seq, value, id_type: every identifier value of each message (previousIds typed null:
    their type is the one the value was first seen as)."""
    ids = (
        messages.select("seq", "ids")
        .explode("ids")
        .select(
            "seq",
            value=pl.col("ids").struct.field("id_value"),
            id_type=pl.col("ids").struct.field("id_type"),
        )
    )
    previous = messages.select("seq", value=pl.col("previous_id"), id_type=pl.lit(None, pl.String))
    return pl.concat([ids, previous]).filter(pl.col("value").is_not_null())


__all__ = ["Continued", "continue_identity", "first_types", "typed_values"]
