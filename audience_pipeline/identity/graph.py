"""Vectorized identity resolution: identifier graph, components, and the rule only where needed.

If a connected component of the identifier graph respects every limit as a whole, every profile
the rule could build inside it is a subset of it and respects them too, so the rule links
everything and the component is one profile. Its id comes from the first identifier of its
earliest message (that message created the oldest profile, and merges keep the oldest id). Only
components where a limit bites go through the sequential rule, in Python, on just their messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import polars as pl

from audience_pipeline.identity.components import connected_components
from audience_pipeline.identity.encode import encode
from audience_pipeline.identity.prepare import COLUMNS, Prepared, prepare_coded
from audience_pipeline.identity.result import (
    IDENTITIES_SCHEMA,
    MESSAGE_PROFILES_SCHEMA,
    IdentityResult,
    empty_result,
    profile_ids,
    type_limits,
)
from audience_pipeline.identity.sequential import Identifier, link_in_order
from audience_pipeline.progress import Laps
from audience_pipeline.spec.models import SpaceConfig

log = logging.getLogger(__name__)


def _bitten_components(prepared: Prepared, label: pl.Series) -> pl.DataFrame:
    """``comp`` of every component holding more than ``limit`` values of some type."""
    return (
        prepared.nodes.select("trank", comp=label.gather(prepared.nodes["node"]))
        .group_by("comp", "trank")
        .len()
        .join(prepared.limits, on="trank")
        .filter(pl.col("len") > pl.col("limit"))
        .select("comp")
        .unique()
    )


def _whole_components(
    prepared: Prepared, messages: pl.DataFrame, nodes: pl.DataFrame, bitten: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Profiles (``comp``, ``profile_id``, ``code``: dense from 0) and identities of the
    components that are one profile each (those not in `bitten`).

    `messages`: ``rank``, ``first``, ``comp`` of every message; `nodes`: the whole components'.
    """
    creators = (
        messages.group_by("comp")
        .agg(pl.col("first").get(pl.col("rank").arg_min()))
        .join(bitten, on="comp", how="anti")
        .join(prepared.nodes.select(first="node", trank="trank", vcode="vcode"), on="first")
    )
    creators = prepared.named(creators)
    keys = creators.select(key=pl.format("{}:{}", "id_type", "id_value"))["key"].to_list()
    pids = creators.select(
        "comp",
        profile_id=pl.Series(profile_ids(keys), dtype=pl.String),
        code=pl.int_range(0, pl.len(), dtype=pl.Int64),
    )
    identities = prepared.named(nodes.join(pids, on="comp")).select(IDENTITIES_SCHEMA.names())
    return pids, identities


def sequential_components(
    prepared: Prepared, messages: pl.DataFrame, space: SpaceConfig
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Run the rule over the messages of bitten components (all of them in one pass).

    Profiles only grow, so a link the rule made stays made and a link it refused stays refused;
    a message whose identifiers repeat an earlier message's changes nothing and is skipped
    (a user's thousand events from one device cost one Python step). Every message still gets
    the final profile of its first identifier.
    """
    lists = (
        prepared.links.join(messages.select("rank"), on="rank", how="semi")
        .unique()
        .sort("rank", "node")
        .group_by("rank", maintain_order=True)
        .agg("node")
        .unique(subset="node", keep="first", maintain_order=True)
    )
    used = prepared.nodes.join(
        lists.select(pl.col("node").explode()).unique(), on="node", how="semi"
    )
    named = prepared.named(used).select("node", "id_type", "id_value")
    ident: dict[int, Identifier] = {node: (t, v) for node, t, v in named.iter_rows()}
    ordered = [[ident[node] for node in nodes] for nodes in lists["node"].to_list()]
    outcome = link_in_order(ordered, type_limits(space))
    log.debug("identity: %d sequential steps", len(ordered))
    identities = pl.DataFrame(outcome.identities, schema=IDENTITIES_SCHEMA, orient="row")
    node_of = {pair: node for node, pair in ident.items()}
    owners = pl.DataFrame(
        {
            "first": [node_of[(t, v)] for _, t, v in outcome.identities],
            "profile_id": identities["profile_id"],
        },
        schema={"first": messages.schema["first"], "profile_id": pl.String},
    )
    message_profiles = messages.join(owners, on="first", how="left").select(
        MESSAGE_PROFILES_SCHEMA.names()
    )
    return message_profiles, identities, outcome.profiles


@dataclass(frozen=True)
class _Parts:
    """Resolved so far: each message's profile code (by rank; null where not yet resolved),
    identities, each code's profile id, and the number of profiles."""

    codes: pl.Series
    identities: pl.DataFrame
    names: pl.Series
    n: int


def _with_sequential(
    parts: _Parts, seq_msgs: pl.DataFrame, seq_mp: pl.DataFrame, seq_id: pl.DataFrame,
    seq_profiles: int,
) -> _Parts:  # fmt: skip
    """Add the profiles of the components resolved one message at a time, coded after the
    whole components' profiles (`seq_msgs`: their messages' ``rank`` and ``seq``)."""
    seq_codes = (
        seq_mp.select("profile_id")
        .unique(maintain_order=True)
        .with_row_index("code", offset=parts.n)
        .with_columns(pl.col("code").cast(pl.Int64))
    )
    coded = seq_mp.join(seq_codes, on="profile_id", how="left")
    ranked = seq_msgs.select("rank", "seq").join(coded, on="seq", how="left")
    return _Parts(
        parts.codes.scatter(ranked["rank"], ranked["code"]),
        pl.concat([parts.identities, seq_id]),
        pl.concat([parts.names, seq_codes.get_column("profile_id")]),
        parts.n + seq_profiles,
    )


def _step(clock: Laps, name: str) -> None:
    log.debug("identity step %s: %.2fs", name, clock.lap(name))


def resolve_identities(messages: pl.DataFrame | pl.LazyFrame, space: SpaceConfig) -> IdentityResult:
    """Resolve messages to profiles (SPEC sections 2 and 5a), vectorized.

    Gives exactly what `resolve_sequential` gives, with Python steps only for the messages of
    identifier-graph components where some limit bites.

    Args:
        messages: already cut at as-of (a frame, or a lazy scan: then its columns are read in
            a few streaming passes, `identity.encode`, and the identifier strings are never
            held whole); columns ``seq`` (Int64, unique), ``message_id``
            (String, nullable), ``type``, ``timestamp`` (Datetime UTC), ``ids`` (List of
            Struct{id_type, id_value}; normalized, at least one per message unless the message
            is an alias with a previousId), ``previous_id`` (String, nullable; read on alias
            calls only).
        space: identifier types, priorities and limits.

    Returns:
        The final profile of every message (that of its first identifier), every linked
        identifier, and counts: ``profiles``, ``components``, ``sequential_components`` and
        ``sequential_messages``.
    """
    clock = Laps()
    coded = encode(messages.lazy().select(COLUMNS), space)
    if coded.messages.height == 0:
        return empty_result()
    _step(clock, "encode")
    prepared = prepare_coded(coded, space)
    del coded
    _step(clock, "prepare")
    label = _component_labels(prepared)
    _step(clock, "components")
    bitten = _bitten_components(prepared, label)
    # Per message (by rank) its component; every later step gathers by it instead of copying
    # the message frame (no anti-join of every message, no sort of the result by seq).
    msgs = prepared.messages.with_columns(comp=label.gather(prepared.messages["first"]))
    nodes = prepared.nodes.with_columns(comp=label.gather(prepared.nodes["node"]))
    whole_nodes = nodes.join(bitten, on="comp", how="anti")
    pids, identities = _whole_components(prepared, msgs, whole_nodes, bitten)
    del whole_nodes, nodes
    code_of_comp = pl.repeat(None, label.len(), dtype=pl.Int64, eager=True)
    code_of_comp = code_of_comp.scatter(pids["comp"], pids["code"])
    parts = _Parts(code_of_comp.gather(msgs["comp"]), identities, pids["profile_id"], pids.height)
    del code_of_comp
    _step(clock, "whole components")
    seq_msgs = msgs.join(bitten, on="comp", how="semi")
    if seq_msgs.height:
        parts = _with_sequential(parts, seq_msgs, *sequential_components(prepared, seq_msgs, space))
    _step(clock, "sequential components")
    stats = {
        "profiles": parts.n,
        "components": label.n_unique(),
        "sequential_components": bitten.height,
        "sequential_messages": seq_msgs.height,
    }
    del msgs, label
    log.info("identity: %d messages, %d profiles, %d components (%d sequential, %d messages) "
             "in %.2fs", prepared.messages.height, *stats.values(), clock.total)  # fmt: skip
    return _identity_result(prepared, parts, stats)


def _component_labels(prepared: Prepared) -> pl.Series:
    """Each node's component: messages are indexed by rank, so a gather finds each link's first
    identifier, and every link joins it to the message's other nodes."""
    edges = prepared.links.select(
        a=prepared.messages["first"].gather(prepared.links["rank"]), b=pl.col("node")
    )
    return connected_components(prepared.nodes.height, edges)


def _identity_result(prepared: Prepared, parts: _Parts, stats: dict[str, int]) -> IdentityResult:
    """The result in seq order: messages are held by rank, so one arg sort of their seqs gives
    each seq's rank (the processing order the engine reads) and every column is gathered by it."""
    seqs = prepared.messages.get_column("seq")
    by_seq = seqs.arg_sort()
    codes = parts.codes.gather(by_seq)
    message_profiles = pl.DataFrame(
        {"seq": seqs.gather(by_seq), "profile_id": parts.names.gather(codes)},
        schema=MESSAGE_PROFILES_SCHEMA,
    )
    return IdentityResult(
        message_profiles=message_profiles,
        identities=parts.identities.sort(IDENTITIES_SCHEMA.names()),
        stats=stats,
        # Int64 as `processing_rank` gives it (the engine's order column either way).
        order=by_seq.cast(pl.Int64).alias("rank"),
        codes=codes.alias("code"),
        code_names=parts.names,
    )
