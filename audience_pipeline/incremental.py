"""Incremental recompute: new events recompute only the entities they can change.

Between two runs (as-of T0 with the state it left, then as-of T1 over possibly more events) only
these can change:

- identity: the identifier-graph components that gained a message (new data, or old data now at
  or before T1) or lost one (a dedupe winner changed). Identity only merges, so those are the
  previous profiles sharing an identifier value with the new messages (closed over shared
  values, found in the state's value -> profile links) plus the new messages; only their
  messages are resolved again.
- user rows: the profiles of those components, and profiles with an event that crossed a window
  edge or a moved `backfill: false` cut of something the user tables read (that event's name;
  see `delta.reads`).
- account rows: accounts with a new or lost group call, accounts of members whose identity
  changed, and accounts of members with an event that crossed an edge of something the account
  tables read (account traits and conditions, and the user conditions, audiences and traits
  their `users:` nodes reach).

The engine then runs two passes: the user tables over the messages of the user profiles to
recompute; the account tables over the members of the accounts to recompute, with only the
events the account tables read (and their non-event messages). Profiles are known by then, so
the passes skip identity (`delta.known`). Their rows replace those entities' rows in the previous
tables (`delta.merge`). Anything the
merge cannot prove equal to a full run (changed definitions, an earlier as-of, clashing column
types, a state without links) falls back to a full recompute, so the result always equals
`compute` on the same data.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

import orjson
import polars as pl

from audience_pipeline.delta.identity import continue_identity, typed_values
from audience_pipeline.delta.keys import MESSAGE_KEY, Current, current_messages, in_time, rows_of
from audience_pipeline.delta.known import run_known
from audience_pipeline.delta.merge import NeedsFull, kept_rows, merge_tables, restamp
from audience_pipeline.delta.reads import (
    Read,
    account_reads,
    account_space,
    band_mask,
    event_names,
    user_reads,
    user_space,
)
from audience_pipeline.delta.state import TABLES, EngineState, load_state, save_state
from audience_pipeline.delta.ties import current_ties, full_ties, next_ties, pass_order
from audience_pipeline.engine.columns import needed_flat_columns
from audience_pipeline.engine.compute import KNOWN_TYPES, MESSAGE_COLUMNS, ComputeResult, compute
from audience_pipeline.engines import ComputeFn
from audience_pipeline.identity import resolve_identities
from audience_pipeline.identity.result import IdentityResult
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import uses_samples
from audience_pipeline.message_types import EVENT_TYPES
from audience_pipeline.spec.compile import compile_space
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.models import Definitions, SpaceConfig
from audience_pipeline.sqltraits.run import run_sql_traits, sql_traits

log = logging.getLogger(__name__)

IDENTITY_COLUMNS = ["seq", "message_id", "type", "timestamp", "ids", "previous_id"]
# Every normalized event as a frame, or as a scan of normalized Parquet (read as needed).
Events = pl.DataFrame | pl.LazyFrame
_UTC = pl.Datetime("us", "UTC")


@dataclass
class Refresh:
    """The outcome of `refresh`: the new tables, the new state and what was recomputed."""

    tables: dict[str, pl.DataFrame]
    state: EngineState
    mode: str  # "full" | "incremental"
    reason: str
    profiles_recomputed: int
    accounts_recomputed: int
    messages_recomputed: int
    stats: dict[str, int] = field(default_factory=dict)


def definitions_fingerprint(definitions: Definitions) -> str:
    """A hash of everything in the definitions that can change a result."""
    payload = {
        "space": space_payload(definitions.space),
        "traits": [_definition_payload(t.raw, t.key) for t in definitions.traits],
        "audiences": [
            {**_definition_payload(a.raw, a.key), "created_at": str(a.created_at)}
            for a in definitions.audiences
        ],
    }
    encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=_canonical)
    return hashlib.sha256(encoded).hexdigest()[:24]


def space_payload(space: SpaceConfig) -> dict[str, Any]:
    """space.yaml's settings as plain data, the same in every process.

    Not repr(): a frozenset's repr follows string hashing, which differs per process, so every
    new process would see "definitions changed" and recompute in full."""
    return asdict(replace(space, file=""))


def space_fingerprint(space: SpaceConfig) -> str:
    """A hash of space.yaml's settings (canonical: sets sorted, keys sorted)."""
    encoded = orjson.dumps(space_payload(space), option=orjson.OPT_SORT_KEYS, default=_canonical)
    return hashlib.sha256(encoded).hexdigest()[:16]


def _canonical(value: object) -> object:
    """orjson's fallback: sets as sorted lists, anything else as its text."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    return str(value)


def definition_hash(raw: dict[str, Any]) -> str:
    """The hash of one trait or audience definition (its YAML content, key order ignored)."""
    return hashlib.sha256(orjson.dumps(raw, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()[
        :16
    ]


def _definition_payload(raw: dict[str, Any], key: str) -> dict[str, str]:
    return {"key": key, "hash": definition_hash(raw)}


def _compile(definitions: Definitions, as_of: datetime) -> ir.Space:
    space, issues = compile_space(definitions, as_of)
    if issues:
        raise DefinitionsError(issues)
    return space


def full_compute(
    events: Events,
    trait_updates: pl.DataFrame,
    definitions: Definitions,
    as_of: datetime,
    compute_fn: ComputeFn = compute,
) -> Refresh:
    """Compute every table from scratch and the state an incremental run needs next.

    `events`: a frame, or a scan of normalized Parquet (the Polars engine then reads it a
    bucket of profiles at a time). `compute_fn`: the engine (`engines.engine_compute`); Polars
    by default."""
    space = _compile(definitions, as_of)
    if isinstance(events, pl.LazyFrame) and (compute_fn is not compute or sql_traits(definitions)):
        events = events.collect(engine="streaming")  # other engines and SQL traits read frames
    if isinstance(events, pl.LazyFrame):
        result = compute(events, trait_updates, definitions.space, space, as_of)
    else:
        sql_rows = run_sql_traits(definitions, events, trait_updates, as_of)
        result = compute_fn(events, trait_updates, definitions.space, space, as_of,
                            sql_traits=sql_rows)  # fmt: skip
    messages = (
        events.lazy()
        .filter(in_time(as_of))
        .select("seq", *MESSAGE_KEY, "type", "group_id", "ids", "previous_id")
    )
    profiles = result.message_profiles.lazy()
    clock = _Clock()  # what the state costs a full run, beside the engine (`ms_<part>`)
    state_messages, links = pl.collect_all(
        [_message_state(messages, profiles), _links(messages, profiles)]
    )
    clock.lap("state_messages_links")
    ties = full_ties(events, as_of)
    clock.lap("state_ties")
    state = EngineState(
        as_of=as_of,
        fingerprint=definitions_fingerprint(definitions),
        tables=result.tables(),
        messages=state_messages,
        json_columns={k: sorted(v) for k, v in result.json_columns.items()},
        links=links,
        ties=ties,
    )
    return Refresh(
        tables=result.tables(),
        state=state,
        mode="full",
        reason="",
        profiles_recomputed=result.user_traits.height,
        accounts_recomputed=result.account_traits.height,
        messages_recomputed=state_messages.height,
        stats={**result.stats, **clock.laps},
    )


def _message_state(messages: pl.LazyFrame, profiles: pl.LazyFrame) -> pl.LazyFrame:
    """source, line, profile_id, group_id (group calls only) of each message, in seq order."""
    return (
        messages.select(
            "seq",
            *MESSAGE_KEY,
            pl.when(pl.col("type") == "group").then(pl.col("group_id")).alias("group_id"),
        )
        .join(profiles, on="seq", how="inner", maintain_order="left")
        .select(*MESSAGE_KEY, "profile_id", "group_id")
    )


def _links(messages: pl.LazyFrame, profiles: pl.LazyFrame) -> pl.LazyFrame:
    """value, id_type, profile_id: each identifier value a profile's messages hold, with the
    type it was given (null for an alias's previousId). A superset of the identifier graph's
    edges (types ignored there); the types tell a later refresh the type a previousId was
    first seen as (`delta.identity`)."""
    values = typed_values(messages)
    return (
        values.join(profiles, on="seq", how="inner")
        .select("value", "id_type", "profile_id")
        .unique()
    )


def refresh(
    events: Events,
    trait_updates: pl.DataFrame,
    definitions: Definitions,
    as_of: datetime,
    previous: EngineState | None,
    compute_fn: ComputeFn | None = None,
) -> Refresh:
    """Bring the tables to `as_of` over `events`, incrementally from `previous` when possible.

    Args:
        events: every normalized event (old and new), as `ingest` returns them (sorted by seq),
            or a scan of them (`engine.source.scan_events`): a refresh then reads only the
            columns it needs, and a full run reads it a bucket of profiles at a time.
        trait_updates: their trait updates.
        definitions: the loaded definitions (created_at defaults already pinned by the caller).
        as_of: the new as-of.
        previous: the state the previous run left, or None.
        compute_fn: another engine than Polars (`engines.engine_compute`): every run is then
            a full computation by it (the incremental path is Polars').

    Returns:
        The tables (equal to a full `compute` on the same data), the new state and counts of
        what was recomputed.
    """
    if compute_fn is not None:
        out = full_compute(events, trait_updates, definitions, as_of, compute_fn)
        out.reason = "another engine than polars computes in full"
        return out
    reason = _full_reason(definitions, as_of, previous)
    if reason is not None or previous is None:
        out = full_compute(events, trait_updates, definitions, as_of)
        out.reason = reason or "no previous state"
        return out
    try:
        return _incremental(events, trait_updates, definitions, as_of, previous)
    except NeedsFull as why:
        out = full_compute(events, trait_updates, definitions, as_of)
        out.reason = str(why)
        return out


def _full_reason(
    definitions: Definitions, as_of: datetime, previous: EngineState | None
) -> str | None:
    if previous is None:
        return "no previous state"
    if previous.links is None or "id_type" not in previous.links.columns or previous.ties is None:
        return "state without typed identifier links or ties (written by an older version)"
    if previous.fingerprint != definitions_fingerprint(definitions):
        return "definitions changed"
    if as_of < previous.as_of:
        return "as-of moved backwards"
    if any(t.kind == "score" for t in definitions.traits):
        # A score ranks every entity of its level: one new event can move anyone's score.
        return "score traits rank every entity of their level"
    if any(t.kind == "sql" for t in definitions.traits):
        return "SQL traits read sources a refresh does not track"
    return None


def _closure(links: pl.DataFrame, values: pl.Series, profiles: pl.Series) -> pl.Series:
    """Previous profiles sharing a value with `values` or with `profiles`, to a fixpoint."""
    current = pl.concat(
        [profiles, links.filter(pl.col("value").is_in(values.implode()))["profile_id"]]
    ).unique()
    while True:
        held = links.filter(pl.col("profile_id").is_in(current.implode()))["value"].unique()
        grown = pl.concat(
            [current, links.filter(pl.col("value").is_in(held.implode()))["profile_id"]]
        ).unique()
        if grown.len() == current.len():
            return current
        current = grown


def _values(messages: pl.DataFrame) -> pl.Series:
    return pl.concat(
        [
            messages["ids"].list.eval(pl.element().struct.field("id_value")).explode(),
            messages["previous_id"],
        ]
    ).drop_nulls()


def _replace_profiles(frame: pl.DataFrame, resolved: pl.DataFrame) -> pl.DataFrame:
    """`frame` (seq-sorted) with the profile_id of the resolved seqs replaced."""
    if resolved.height == 0:
        return frame
    positions = frame["seq"].search_sorted(resolved["seq"])
    profile = frame["profile_id"].scatter(positions, resolved["profile_id"])
    return frame.with_columns(profile)


def _profile_identities(
    identities: pl.DataFrame,
    fresh_identities: pl.DataFrame,
    profiles: pl.Series,
    touched: pl.Series,
) -> pl.DataFrame:
    """The identifier rows of `profiles`: resolved anew for the touched components, else the
    previous run's."""
    still = pl.col("profile_id").is_in(profiles.implode()) & ~pl.col("profile_id").is_in(
        touched.implode()
    )
    return pl.concat([identities.filter(still), fresh_identities])


def _known(
    identities: pl.DataFrame,
    fresh_identities: pl.DataFrame,
    profiles: pl.Series,
    touched: pl.Series,
) -> pl.DataFrame:
    """profile_id, known (holds a user_id or an email) of each profile: from the resolved
    identities for the touched components, else from the previous ones."""
    rows = _profile_identities(identities, fresh_identities, profiles, touched)
    known = rows.group_by("profile_id").agg(
        pl.col("id_type").is_in(KNOWN_TYPES).any().alias("known")
    )
    return (
        profiles.to_frame("profile_id")
        .join(known, on="profile_id", how="left")
        .with_columns(pl.col("known").fill_null(False))
    )


@dataclass
class _Resolved:
    """Identity after the new messages: the touched components resolved again."""

    frame: pl.DataFrame  # `_Current.frame` with the re-resolved messages' profile_id
    touched: pl.Series  # previous profiles whose component gained or lost a message
    rows: pl.DataFrame | None  # IDENTITY_COLUMNS of the re-resolved messages (None: continued)
    identity: IdentityResult  # their resolution
    profiles: pl.Series  # the profiles they now form
    links: Callable[[], pl.DataFrame] | None = None  # the next links, when continued


def _scan_rows(scanned: Events, seqs: pl.Series, columns: list[str]) -> pl.DataFrame:
    """These columns (seq first) of the messages with these seqs, in seq order. From a scan,
    only the row groups holding them are decoded (seq is sorted: their statistics rule the
    others out), so a day of new messages, stored together, costs a few row groups."""
    if isinstance(scanned, pl.DataFrame):
        return rows_of(scanned, seqs, columns)
    wanted = seqs.unique()
    rows = scanned.filter(pl.col("seq").is_in(wanted.implode())).select(columns).collect()
    if rows.height != wanted.len() or not rows["seq"].is_sorted():
        raise NeedsFull("the events scan is not in seq order")
    return rows


def _resolve_touched(
    scanned: Events,
    cur: Current,
    fresh_rows: pl.DataFrame,
    previous: EngineState,
    config: SpaceConfig,
) -> _Resolved:
    """Identity after the new messages: continued from the previous profiles when it provably
    equals resolving again (`delta.identity`); else the new messages and every previous
    profile sharing an identifier value with them (or having lost a message) resolved again,
    as whole components."""
    assert previous.links is not None
    identities = previous.tables["identities"]
    if cur.removed.height == 0:
        continued = continue_identity(fresh_rows, cur.frame, identities, previous.links, config,
                                      previous.as_of)  # fmt: skip
        if continued is not None:
            return _Resolved(
                frame=_replace_profiles(cur.frame, continued.identity.message_profiles),
                touched=continued.touched,
                rows=None,
                identity=continued.identity,
                profiles=continued.profiles,
                links=continued.links,
            )
    touched = _closure(previous.links, _values(fresh_rows), cur.removed["profile_id"].unique())
    in_touched = pl.col("profile_id").is_in(touched.implode())
    old_seqs = cur.frame.select("seq", "profile_id").filter(in_touched)["seq"]
    old_rows = _scan_rows(scanned, old_seqs, IDENTITY_COLUMNS)
    rows = pl.concat([fresh_rows, old_rows]).sort("seq")
    identity = resolve_identities(rows.select(IDENTITY_COLUMNS), config)
    resolved = identity.message_profiles
    return _Resolved(
        frame=_replace_profiles(cur.frame, resolved),
        touched=touched,
        rows=rows,
        identity=identity,
        profiles=resolved["profile_id"].unique(),
    )


@dataclass
class _Reads:
    """What the user and account tables read, compiled at the previous and the new as-of."""

    users: list[Read]
    accounts: list[Read]
    old_users: list[Read]
    old_accounts: list[Read]

    @classmethod
    def of(cls, space: ir.Space, old_space: ir.Space) -> _Reads:
        return cls(user_reads(space), account_reads(space), user_reads(old_space),
                   account_reads(old_space))  # fmt: skip


def _crossed(
    frame: pl.DataFrame, reads: _Reads, t0: datetime, t1: datetime, none: pl.Series
) -> tuple[pl.Series, pl.Series]:
    """Profiles with an event that crossed a window edge or a moved `backfill: false` cut of
    something the user tables (first) or the account tables (second) read."""
    user_band = band_mask(reads.old_users, reads.users, t0, t1)
    account_band = band_mask(reads.old_accounts, reads.accounts, t0, t1)
    users = accounts = none
    if user_band is None and account_band is None:
        return users, accounts
    # A timestamp filter first (cheap), then names and types on the few rows left.
    near = [
        band_mask(reads.old_users, reads.users, t0, t1, names=False),
        band_mask(reads.old_accounts, reads.accounts, t0, t1, names=False),
    ]
    crossed = (
        frame.select("timestamp", "type", "event", "profile_id")
        .filter(pl.any_horizontal(m for m in near if m is not None))
        .filter(pl.col("type").is_in(EVENT_TYPES))
    )
    if user_band is not None:
        users = crossed.filter(user_band)["profile_id"].unique()
    if account_band is not None:
        accounts = crossed.filter(account_band)["profile_id"].unique()
    return users, accounts


@dataclass
class _Scope:
    """The entities a refresh recomputes and the messages its two engine passes read."""

    profiles: pl.Series  # user rows recomputed (new ids)
    gone_profiles: pl.Series  # old profile ids whose user rows go
    accounts: pl.Series  # account rows recomputed
    everyone: pl.Series  # profiles of either pass (the account pass: the accounts' members)
    candidates: pl.DataFrame  # seq, profile_id, user_part, account_part of the passes' messages

    @property
    def empty(self) -> bool:
        return self.profiles.len() == 0 and self.accounts.len() == 0


def _scope(
    resolved: _Resolved,
    removed: pl.DataFrame,
    old_messages: pl.DataFrame,
    crossed: tuple[pl.Series, pl.Series],
    accounts_read: list[Read],
) -> _Scope:
    """User rows: the re-resolved profiles and those with a crossed event. Account rows:
    accounts with a new or lost group call, of members whose identity changed, or of members
    with an event across an edge of what the account tables read."""
    frame, touched = resolved.frame, resolved.touched
    user_crossed, account_crossed = crossed
    profiles = pl.concat([resolved.profiles, user_crossed]).unique()
    # Narrow selects before each filter over all messages: a filter copies every column it
    # is handed.
    groups = frame.select("group_id", "profile_id").filter(pl.col("group_id").is_not_null())
    old_groups = (
        old_messages.select("group_id", "profile_id")
        .filter(pl.col("group_id").is_not_null())
        .filter(pl.col("profile_id").is_in(touched.implode()))["group_id"]
    )
    changed = pl.concat([resolved.profiles, account_crossed])
    accounts = pl.concat(
        [
            removed["group_id"].drop_nulls(),
            old_groups,
            groups.filter(pl.col("profile_id").is_in(changed.implode()))["group_id"],
        ]
    ).unique()
    members = groups.filter(pl.col("group_id").is_in(accounts.implode()))["profile_id"].unique()
    everyone = pl.concat([profiles, members]).unique()
    # The account pass reads its members' events that account results read and every
    # non-event message (custom traits, group calls); not every user result of every member.
    account_part = pl.col("profile_id").is_in(members.implode()) & (
        ~pl.col("type").is_in(EVENT_TYPES) | pl.col("event").is_in(event_names(accounts_read))
    )
    # One membership test over all messages, then the finer ones over the few rows left.
    candidates = (
        frame.select("seq", "profile_id", "type", "event")
        .filter(pl.col("profile_id").is_in(everyone.implode()))
        .with_columns(
            user_part=pl.col("profile_id").is_in(profiles.implode()), account_part=account_part
        )
        .filter(pl.col("user_part") | pl.col("account_part"))
        .select("seq", "profile_id", "user_part", "account_part")
    )
    return _Scope(
        profiles=profiles,
        gone_profiles=pl.concat([touched, user_crossed]).unique(),
        accounts=accounts,
        everyone=everyone,
        candidates=candidates,
    )


def _unchanged(previous: EngineState, as_of: datetime) -> Refresh:
    """Nothing to recompute: the previous tables at the new as-of."""
    tables = {name: restamp(frame, name, as_of) for name, frame in previous.tables.items()}
    state = replace(previous, as_of=as_of, tables=tables)
    return Refresh(tables, state, "incremental", "nothing changed", 0, 0, 0)


_ORDER = "_processing_order"  # a pass message's place in SPEC's processing order
# Read by the engine only to resolve identity, which a pass over known profiles skips.
_IDENTITY_ONLY = ("ids", "previous_id")


# Every message's thin columns; identifiers (and messageIds, wide random text) are read for
# the messages that need them alone (`_identity_rows`, `_pass_events`).
_THIN = ["seq", *MESSAGE_KEY, "type", "event", "timestamp", "group_id", "previous_id"]


def _refresh_frame(events: Events) -> pl.DataFrame:
    """The events as a frame: of a scan, only the message and identifier columns (every
    message's); the passes' property columns are read later for their rows alone."""
    if isinstance(events, pl.DataFrame):
        return events
    return events.select(list(dict.fromkeys(_THIN))).collect()


def _pass_columns(columns: list[str], space: ir.Space) -> list[str]:
    """The event columns an engine pass over known profiles reads: the message columns but
    identifiers, and the property/context columns (flattened, or the JSON text where a path
    has no column) the space names. Rows are gathered column by column, so every column left
    out (raw JSON text, identifier lists) is time saved."""
    flat = needed_flat_columns(space, set(columns))
    json_text = [c for c, need in (("properties", flat.needs_properties),
                                   ("context", flat.needs_context)) if need]  # fmt: skip
    # No messageIds: the passes are handed their processing order (`delta.ties`).
    thin = [c for c in MESSAGE_COLUMNS if c not in _IDENTITY_ONLY and c != "message_id"]
    return [*thin, *json_text, *sorted(flat.columns)]


def _pass_events(
    events: pl.DataFrame, scanned: Events, scope: _Scope, space: ir.Space, ties: pl.DataFrame
) -> pl.DataFrame:
    """The columns the passes read of their messages, with profile_id, user_part, account_part
    (and the identifier columns as nulls: the engine selects them before it knows it may skip
    identity). From a scan, the property columns are read for those rows alone: decoding
    them costs about what reading them whole does, but only those rows are held."""
    seqs = scope.candidates["seq"]
    columns = _pass_columns(scanned.collect_schema().names(), space)
    if isinstance(scanned, pl.DataFrame):
        rows = rows_of(scanned, seqs, columns)
    else:
        wide = [c for c in columns if c not in events.columns]
        rows = rows_of(events, seqs, [c for c in columns if c in events.columns])
        read = scanned.select("seq", *wide).filter(pl.col("seq").is_in(seqs.implode())).collect()
        if not read["seq"].equals(rows["seq"]):  # the scan is in seq order, each seq once
            raise NeedsFull("the events scan is not in seq order")
        rows = rows.hstack(read.drop("seq").get_columns()).select(columns)
    schema = scanned.collect_schema()
    skipped = (pl.lit(None, dtype=schema[c]).alias(c) for c in _IDENTITY_ONLY)
    tags = scope.candidates.select("profile_id", "user_part", "account_part")
    order = pass_order(rows, ties).alias(_ORDER)
    return rows.with_columns(*skipped, *tags.get_columns(), order)


def _run_passes(
    pass_events: pl.DataFrame,
    updates: pl.DataFrame,
    known: pl.DataFrame,
    anchors: pl.DataFrame | None,
    definitions: Definitions,
    space: ir.Space,
    as_of: datetime,
    keep_json: dict[str, list[str]],
) -> dict[str, ComputeResult]:
    """The user tables over every message of the profiles to recompute; the account tables
    over the members of the accounts to recompute (only what `users:` nodes reach of their
    user results). Profiles are known: no identity resolution (`delta.known`)."""
    results: dict[str, ComputeResult] = {}
    for part, part_space in (("user", user_space(space)), ("account", account_space(space))):
        part_events = pass_events.filter(f"{part}_part").drop("user_part", "account_part")
        order = part_events[_ORDER]
        part_events = part_events.drop(_ORDER)
        part_updates = updates.filter(pl.col("seq").is_in(part_events["seq"].implode()))
        results[part] = run_known(
            part_events,
            part_updates,
            known,
            definitions.space,
            part_space,
            as_of,
            keep_json=keep_json,
            with_user_traits=part == "user",
            identities=anchors,
            order=order,
        )
    return results


def _incremental(
    scanned: Events,
    trait_updates: pl.DataFrame,
    definitions: Definitions,
    as_of: datetime,
    previous: EngineState,
) -> Refresh:
    assert previous.links is not None
    t0 = previous.as_of
    space = _compile(definitions, as_of)
    reads = _Reads.of(space, _compile(definitions, t0))
    clock = _Clock()
    events = _refresh_frame(scanned)
    clock.lap("read")
    cur = current_messages(events, as_of, previous.messages)
    clock.lap("keys")
    fresh_rows = _scan_rows(scanned, cur.fresh, IDENTITY_COLUMNS)
    resolved = _resolve_touched(scanned, cur, fresh_rows, previous, definitions.space)
    clock.lap("identity")
    ties = _ties(scanned, cur, fresh_rows, previous)
    clock.lap("ties")
    crossed = _crossed(resolved.frame, reads, t0, as_of, resolved.profiles.clear())
    clock.lap("bands")
    scope = _scope(resolved, cur.removed, previous.messages, crossed, reads.accounts)
    if scope.empty and resolved.touched.len() == 0:
        return _unchanged(previous, as_of)
    identities = previous.tables["identities"]
    # Work that does not depend on the engine passes runs beside them (Polars releases the
    # GIL; a pass alone keeps about 1.3 of the 2 cores busy): the rows of the previous tables
    # that stay and the identifier links of the next state.
    with ThreadPoolExecutor(max_workers=2) as pool:
        kept = pool.submit(kept_rows, previous.tables, identity_profiles=resolved.touched,
                           profiles=scope.gone_profiles, accounts=scope.accounts)  # fmt: skip
        links = pool.submit(_next_links, previous.links, resolved)
        pass_updates = pool.submit(
            lambda: trait_updates.filter(pl.col("seq").is_in(scope.candidates["seq"].implode()))
        )
        pass_events = _pass_events(events, scanned, scope, space, ties)
        known = _known(identities, resolved.identity.identities, scope.everyone, resolved.touched)
        anchors = _anchors(space, identities, resolved, scope)
        clock.lap("scope")
        results = _run_passes(pass_events, pass_updates.result(), known, anchors, definitions,
                              space, as_of, previous.json_columns)  # fmt: skip
        clock.lap("engine")
        tables, json_columns = _merged(kept.result(), previous, results, resolved, scope, space,
                                       as_of)  # fmt: skip
        clock.lap("merge")
    state = EngineState(
        as_of=as_of,
        fingerprint=previous.fingerprint,
        tables=tables,
        messages=resolved.frame.select(*MESSAGE_KEY, "profile_id", "group_id"),
        json_columns=json_columns,
        links=links.result(),
        ties=next_ties(cur, ties),
    )
    clock.lap("state")
    stats = _refresh_stats(results, clock, resolved.profiles.len(), crossed[0].len(),
                           resolved.rows is None)  # fmt: skip
    return _refreshed(state, scope, pass_events.height, resolved.frame.height, stats)


def _ties(
    scanned: Events, cur: Current, fresh_rows: pl.DataFrame, previous: EngineState
) -> pl.DataFrame:
    """seq, message_id of the current messages whose timestamp another shares."""
    assert previous.ties is not None
    return current_ties(cur, previous.ties, fresh_rows,
                        read=lambda seqs: _scan_rows(scanned, seqs, ["seq", "message_id"]))  # fmt: skip


def _anchors(
    space: ir.Space, identities: pl.DataFrame, resolved: _Resolved, scope: _Scope
) -> pl.DataFrame | None:
    """`sample` nodes hash each profile's anchor identifier: the pass gets the real rows."""
    if not uses_samples(space):
        return None
    return _profile_identities(
        identities, resolved.identity.identities, scope.everyone, resolved.touched
    )


def _refresh_stats(
    results: dict[str, ComputeResult],
    clock: _Clock,
    profiles_identity: int,
    profiles_crossed: int,
    continued: bool,
) -> dict[str, Any]:
    """Each pass's own figures, the step seconds and the profiles the refresh touched."""
    return {
        **{f"user_pass_{k}": v for k, v in results["user"].stats.items()},
        **{f"account_pass_{k}": v for k, v in results["account"].stats.items()},
        **clock.laps,
        "profiles_identity": profiles_identity,
        "profiles_crossed": profiles_crossed,
        "identity_continued": int(continued),
    }


def _refreshed(
    state: EngineState, scope: _Scope, recomputed: int, messages: int, stats: dict[str, int]
) -> Refresh:
    """The outcome of an incremental refresh (logged: what it recomputed)."""
    profiles, accounts = scope.profiles.len(), scope.accounts.len()
    log.info("incremental: %d of %d messages, %d profiles, %d accounts recomputed",
             recomputed, messages, profiles, accounts)  # fmt: skip
    return Refresh(tables=state.tables, state=state, mode="incremental", reason="",
                   profiles_recomputed=profiles, accounts_recomputed=accounts,
                   messages_recomputed=recomputed, stats=stats)  # fmt: skip


def _next_links(old: pl.DataFrame, resolved: _Resolved) -> pl.DataFrame:
    """The next state's identifier links: the touched profiles' replaced by the new ones'."""
    if resolved.links is not None:
        return resolved.links()
    assert resolved.rows is not None
    return pl.concat(
        [
            old.filter(~pl.col("profile_id").is_in(resolved.touched.implode())),
            _links(resolved.rows.lazy(), resolved.identity.message_profiles.lazy()).collect(),
        ]
    )


def _merged(
    kept: dict[str, pl.DataFrame],
    previous: EngineState,
    results: dict[str, ComputeResult],
    resolved: _Resolved,
    scope: _Scope,
    space: ir.Space,
    as_of: datetime,
) -> tuple[dict[str, pl.DataFrame], dict[str, list[str]]]:
    """The previous tables' kept rows with the recomputed entities' rows merged in."""
    new_rows = _recomputedrows(
        results["user"], results["account"], resolved.identity.identities, scope.accounts
    )
    return merge_tables(
        kept,
        previous.json_columns,
        new_rows,
        {
            "user_traits": results["user"].json_columns["user_traits"],
            "account_traits": results["account"].json_columns["account_traits"],
        },
        space=space,
        as_of=as_of,
    )


class _Clock:
    """Milliseconds per step, reported in `Refresh.stats` as `ms_<step>`."""

    def __init__(self) -> None:
        self.laps: dict[str, int] = {}
        self.last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[f"ms_{name}"] = round((now - self.last) * 1000)
        self.last = now


def _recomputedrows(
    users: ComputeResult,
    accounts_pass: ComputeResult,
    identities: pl.DataFrame,
    accounts: pl.Series,
) -> dict[str, pl.DataFrame]:
    """The recomputed entities' rows: user rows from the user pass (it holds only the
    recomputed profiles), account rows from the account pass (its members' group calls can
    name accounts not recomputed, whose rows read partial data, and go)."""
    theirs = pl.col("account_id").is_in(accounts.implode())
    return {
        "identities": identities,
        "user_traits": users.user_traits,
        "account_traits": accounts_pass.account_traits.filter(theirs),
        "memberships": pl.concat(
            [
                users.memberships.filter(pl.col("level") == "user"),
                accounts_pass.memberships.filter(
                    (pl.col("level") == "account") & pl.col("entity_id").is_in(accounts.implode())
                ),
            ]
        ),
        "account_user_memberships": accounts_pass.account_user_memberships.filter(theirs),
    }


__all__ = [
    "TABLES",
    "Events",
    "EngineState",
    "Refresh",
    "definition_hash",
    "definitions_fingerprint",
    "space_fingerprint",
    "full_compute",
    "load_state",
    "refresh",
    "save_state",
]
