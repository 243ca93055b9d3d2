"""The Polars engine's entry point: normalized events + compiled space -> output tables."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.engine.aggregate import ORDER
from audience_pipeline.engine.buckets import (
    BucketedEvents,
    account_bucket,
    choose_buckets,
    profile_bucket,
)
from audience_pipeline.engine.columns import ENTITY, EventColumns, needed_flat_columns
from audience_pipeline.engine.latest import Latest, owners_latest
from audience_pipeline.engine.levels import Entities, Lap, evaluate_levels
from audience_pipeline.engine.memory import memory_limit as process_memory_limit
from audience_pipeline.engine.native import native_traits
from audience_pipeline.engine.samples import profile_anchors
from audience_pipeline.engine.traitvalues import computed_column
from audience_pipeline.identity import IdentityResult, resolve_identities
from audience_pipeline.identity.prepare import processing_rank
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.naming import audience_column
from audience_pipeline.ir.walk import iter_conditions
from audience_pipeline.message_types import EVENT_TYPES
from audience_pipeline.progress import Laps
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sqltraits.columns import expand_columns, with_sql_rows
from audience_pipeline.sqltraits.match import MatchedSqlTraits, matched_sql_traits
from audience_pipeline.sqltraits.run import SqlTraitResult
from audience_pipeline.tables.memberships import (
    account_user_memberships as _account_user_memberships,
)
from audience_pipeline.tables.memberships import memberships as _memberships
from audience_pipeline.tables.result import KNOWN_TYPES, ComputeResult

log = logging.getLogger(__name__)

MESSAGE_COLUMNS = ("seq", "message_id", "type", "event", "timestamp", "group_id")
IDENTITY_COLUMNS = ("seq", "message_id", "type", "timestamp", "ids", "previous_id")
LEVELS = ("user", "account")
CATEGORICAL_COLUMNS = ("type", "event", "group_id")


def compute(
    events: pl.DataFrame | pl.LazyFrame,
    trait_updates: pl.DataFrame,
    space_config: SpaceConfig,
    space: ir.Space,
    as_of: datetime,
    identity: IdentityResult | None = None,
    keep_json: Mapping[str, Collection[str]] | None = None,
    with_user_traits: bool = True,
    sql_traits: list[SqlTraitResult] | None = None,
    sample_identities: pl.DataFrame | None = None,
    *,
    memory_limit: int | None = None,
    buckets: int | None = None,
    spill_dir: Path | None = None,
) -> ComputeResult:
    """Compute identities, traits and memberships as of `as_of` from normalized events.

    `events`: the normalized events in memory, or a lazy scan of them (`scan_normalized`): then
    only the thin message columns are held at once, and each bucket's event columns are read
    from a spill written in one streaming pass.
    `memory_limit` (bytes; the process's `engine.memory.memory_limit()` when None): the levels
    are evaluated in as many profile buckets (and account buckets) as keep one bucket's
    evaluation within what the limit leaves (`choose_buckets`); `buckets` sets that number.
    `spill_dir`: where the spill of a lazy input goes (a temporary folder inside it; the
    system's temporary folder by default).

    `identity`: the profiles of the messages at or before as-of when the caller already knows
    them (an incremental pass, `delta.known`); resolved from the messages otherwise.
    `keep_json`: per traits table, trait columns to store as JSON text even when their values
    here share one type (an incremental pass: the previous run's JSON-text columns).
    `with_user_traits`: False leaves the user_traits table empty (an incremental pass that
    only wants the account tables; building every member's traits row is most of its cost).
    `sql_traits`: the rows of the space's `kind: sql` traits (`sqltraits.run_sql_traits`).
    `sample_identities`: the profiles' identifier rows for `sample` anchors when `identity`
    holds stand-ins (an incremental pass); `identity.identities` otherwise.
    """
    with tempfile.TemporaryDirectory(prefix="audience-spill-", dir=spill_dir) as spill:
        return _compute(events, trait_updates, space_config, space, as_of, identity,
                        keep_json or {}, with_user_traits, sql_traits, sample_identities,
                        _Buckets(memory_limit or process_memory_limit(), buckets, Path(spill)))  # fmt: skip


@dataclass(frozen=True)
class _Buckets:
    memory_limit: int
    count: int | None
    spill: Path

    def choose(self, events: int, messages: int) -> int:
        if self.count is not None:
            return max(1, self.count)
        return choose_buckets(events, messages, self.memory_limit)


def _compute(
    events: pl.DataFrame | pl.LazyFrame,
    trait_updates: pl.DataFrame,
    space_config: SpaceConfig,
    space: ir.Space,
    as_of: datetime,
    identity: IdentityResult | None,
    keep_json: Mapping[str, Collection[str]],
    with_user_traits: bool,
    sql_traits: list[SqlTraitResult] | None,
    sample_identities: pl.DataFrame | None,
    bucketing: _Buckets,
) -> ComputeResult:
    lap = _stage_timer()
    # Only the columns some stage reads, cut before filtering: the filter copies what it keeps.
    flat = needed_flat_columns(space, set(events.collect_schema().names()))
    in_time = _in_time(events, as_of)
    resolved = identity is None
    if identity is None:
        # A lazy input: identity reads its identifier columns in streaming passes, as integers.
        lazy = events.lazy() if in_time is None else events.lazy().filter(in_time)
        identity = resolve_identities(lazy.select(IDENTITY_COLUMNS), space_config)
    lap("identity")
    # messageIds only for a processing order the identity did not give (a caller's identity).
    thin = [c for c in MESSAGE_COLUMNS if c != "message_id" or identity.order is None]
    coded = _coded_messages(_messages_in_time(events, in_time, thin), identity)
    # A caller's identity stays whole (the caller holds it); one resolved here keeps only what
    # the output tables read through the levels (its per-message columns are the message frame's).
    identity, message_profiles = _slim(identity) if resolved else (identity, None)
    owners = _owners(coded, identity, trait_updates, sql_traits, space_config, lap)
    n_messages = coded.messages.height
    anchors = _user_anchors(identity, sample_identities, space_config, coded.code_of())
    names = coded.names
    thin_events = _thin_events(coded, space, lazy=isinstance(events, pl.LazyFrame))
    # The message frame goes before the spill is written: the event plan is all the levels read.
    del coded
    user_events = _user_events(events, thin_events, in_time, flat, bucketing)
    del thin_events
    spill = bucketing.spill if isinstance(events, pl.LazyFrame) else None
    user_frame, account_frame = _levels(space, as_of, owners, user_events, flat, spill, anchors,
                                        lap)  # fmt: skip
    del user_events  # no later stage reads events
    user_frame = _table_columns(user_frame, space, "user")
    tables = _Tables.of(user_frame, account_frame, owners, names, space, as_of)
    lap("memberships")
    tables.traits(owners, space, keep_json, with_user_traits)
    tables.release()
    lap("native traits")
    return _result(as_of, identity, message_profiles, owners, tables, n_messages)


def _result(
    as_of: datetime,
    identity: IdentityResult,
    message_profiles: Callable[[], pl.DataFrame] | None,
    owners: _Owners,
    tables: _Tables,
    n_messages: int,
) -> ComputeResult:
    """The run's output tables, sorted as they are written, and its counts."""
    stats = {
        "messages": n_messages,
        "profiles": owners.universe.height,
        "accounts": owners.latest.account_ids.height,
        **{f"identity_{k}": v for k, v in identity.stats.items()},
        **(owners.sql.stats() if owners.sql is not None else {}),
    }
    return ComputeResult(
        as_of=as_of,
        identities=identity.identities.sort("profile_id", "id_type", "id_value"),
        user_traits=tables.user_traits.sort("profile_id"),
        account_traits=tables.account_traits.sort("account_id"),
        memberships=tables.memberships,
        account_user_memberships=tables.account_users,
        message_profiles=identity.message_profiles
        if message_profiles is None
        else message_profiles(),
        stats=stats,
        json_columns={"user_traits": tables.user_json, "account_traits": tables.account_json},
    )


def _slim(identity: IdentityResult) -> tuple[IdentityResult, Callable[[], pl.DataFrame] | None]:
    """`identity` without its per-message columns (message profiles, codes, order), and how to
    build its message_profiles again from seqs and 4-byte profile codes (None: kept whole).

    The profile id of every message as text was the largest thing a run held through its
    levels (24 bytes a message); the output table is built from the codes at the end.
    """
    codes, names = identity.codes, identity.code_names
    if codes is None or names is None or names.len() >= 2**32:
        return identity, None
    seqs = identity.message_profiles.get_column("seq")
    small = codes.cast(pl.UInt32)

    def message_profiles() -> pl.DataFrame:
        return pl.DataFrame({"seq": seqs, "profile_id": names.gather(small)})

    empty = identity.message_profiles.clear()
    return replace(identity, message_profiles=empty, order=None, codes=None), message_profiles


def _in_time(events: pl.DataFrame | pl.LazyFrame, as_of: datetime) -> pl.Expr | None:
    """The filter that keeps the messages at or before as-of (None: every message is)."""
    in_time = pl.col("timestamp") <= as_of
    if isinstance(events, pl.LazyFrame):
        return in_time
    late = events.height and events["timestamp"].max() > as_of  # type: ignore[operator]
    return in_time if late else None


def _messages_in_time(
    events: pl.DataFrame | pl.LazyFrame, in_time: pl.Expr | None, columns: list[str]
) -> pl.DataFrame:
    """The thin message columns of the messages at or before as-of.

    Profiles and trait updates read only these (identity read its own columns); the wide
    property columns are cut once, for the track/page/screen events alone (a filter copies what
    it keeps).
    """
    if isinstance(events, pl.LazyFrame):
        lazy = events if in_time is None else events.filter(in_time)
        # The few distinct message types, event names and groupIds as Categorical (4 bytes a
        # message instead of a 16-byte string view each): read whole, they were most of this
        # frame at 30M messages.
        return lazy.select(
            pl.col(c).cast(pl.Categorical) if c in CATEGORICAL_COLUMNS else pl.col(c)
            for c in columns
        ).collect(engine="streaming")
    messages = events.select(columns)
    return messages if in_time is None else messages.filter(in_time)


@dataclass(frozen=True)
class _Coded:
    """The messages with their profile's code (`profile_id`) and processing order (`ORDER`)."""

    messages: pl.DataFrame
    names: pl.Series  # names[code]: the profile id of a code
    aligned: bool  # the messages are the identity's rows, in its (seq) order

    def code_of(self) -> pl.DataFrame:
        """_id (profile id), profile_id (its code)."""
        codes = pl.int_range(0, self.names.len(), eager=True)
        return pl.DataFrame({"_id": self.names, "profile_id": codes})


def _coded_messages(messages: pl.DataFrame, identity: IdentityResult) -> _Coded:
    """Inside the engine a profile is a dense integer code (joins and group-bys on integers, not
    22-character ids); `names[code]` turns codes back into profile ids in the output tables."""
    profiles = identity.message_profiles
    codes, names = _profile_codes(identity)
    aligned = messages["seq"].equals(profiles["seq"])  # identity keeps the seq-sorted input rows
    if aligned:
        messages = messages.with_columns(codes.alias("profile_id"))
    else:
        coded = profiles.select("seq", codes.alias("profile_id"))
        messages = messages.join(coded, on="seq", how="inner", maintain_order="left")
    # Processing order as one integer: "latest" and "first" become arg max / arg min per group
    # instead of sorts by (timestamp, messageId, seq).
    if identity.order is not None and aligned:
        messages = messages.with_columns(identity.order.alias(ORDER))
    else:
        messages = messages.with_columns(processing_rank(messages).alias(ORDER))
    # The processing order is all that messageIds were read for (no level reads them).
    return _Coded(messages.drop("message_id", strict=False), names, aligned)


def _universe(identity: IdentityResult, coded: _Coded) -> pl.DataFrame:
    """profile_id (code), _known (the profile holds an identifier of a known type), sorted."""
    universe = (
        identity.identities.group_by("profile_id")
        .agg(pl.col("id_type").is_in(KNOWN_TYPES).any().alias("_known"))
        .join(coded.code_of(), left_on="profile_id", right_on="_id", how="inner", suffix="_code")
        .select(pl.col("profile_id_code").alias("profile_id"), "_known")
    )
    # Every profile with a message holds at least one identifier, but be safe: union message owners
    # (codes are dense, so one marker array finds them without a hash table over every message).
    present = pl.zeros(coded.names.len(), dtype=pl.Boolean, eager=True)
    present = present.scatter(coded.messages.get_column("profile_id"), True)
    owners = present.arg_true().cast(pl.Int64).alias("profile_id").to_frame()
    return (
        owners.join(universe, on="profile_id", how="left")
        .with_columns(pl.col("_known").fill_null(False))
        .sort("profile_id")
    )


@dataclass(frozen=True)
class _Owners:
    """Both levels' entities with their custom traits (SQL traits among them)."""

    universe: pl.DataFrame  # profile_id (code), _known
    latest: Latest  # profile codes; the SQL traits' rows merged in
    sql: MatchedSqlTraits | None
    users: Entities
    accounts: Entities


def _owners(
    coded: _Coded,
    identity: IdentityResult,
    trait_updates: pl.DataFrame,
    sql_traits: list[SqlTraitResult] | None,
    space_config: SpaceConfig,
    lap: Lap,
) -> _Owners:
    universe = _universe(identity, coded)
    lap("universe")
    latest = owners_latest(coded.messages, trait_updates)
    sql = matched_sql_traits(sql_traits, identity.identities,
                             latest.account_ids["account_id"].to_list(), space_config)  # fmt: skip
    if sql is not None:  # SQL traits read as custom traits holding one object each
        user_rows = sql.rows["user"].join(coded.code_of(), left_on="profile_id", right_on="_id")
        user_rows = user_rows.select(pl.col("profile_id_right").alias("profile_id"),
                                     "key", "value", "tagged")  # fmt: skip
        latest = replace(
            latest,
            users=with_sql_rows(latest.users, user_rows, sql.keys["user"]),
            accounts=with_sql_rows(latest.accounts, sql.rows["account"], sql.keys["account"]),
        )
    lap("latest traits")
    users = Entities.of(latest.users, "profile_id", universe)
    accounts = Entities.of(latest.accounts, "account_id", latest.account_ids)
    lap("custom wide")
    return _Owners(universe, latest, sql, users, accounts)


@dataclass(frozen=True)
class _ThinEvents:
    """What the user-event plan takes from the message frame.

    `frame`: either the event messages' profile_id, timestamp, seq, `ORDER` and event (an Enum),
    the thin side of a join on seq; or, `first_seq` set, profile_id and `ORDER` of every
    message at row seq - first_seq (dense seqs of a scan: the scan's rows look their code up
    by position, no join and no copy of the event rows).
    """

    frame: pl.DataFrame
    first_seq: int | None
    events: int
    messages: int
    names: list[str]  # the Enum's categories: every event name of the events and the space
    aligned: bool
    profiles: int  # profile codes are 0..profiles-1


def _thin_events(coded: _Coded, space: ir.Space, *, lazy: bool) -> _ThinEvents:
    messages = coded.messages
    is_event = pl.col("type").is_in(EVENT_TYPES)
    found = messages.select(pl.col("event").filter(is_event).drop_nulls().unique())
    names = sorted(set(found.to_series().cast(pl.String).to_list()) | _event_names(space))
    n_events = int(messages.select(is_event.sum()).item())
    seqs = messages.get_column("seq")
    if lazy and coded.aligned and _dense(seqs):
        first = int(seqs.min())  # type: ignore[arg-type]
        span = int(seqs.max()) - first + 1  # type: ignore[arg-type]
        at = seqs - first
        frame = pl.DataFrame({
            "profile_id": pl.zeros(span, dtype=pl.Int64, eager=True)
            .scatter(at, messages.get_column("profile_id")),
            ORDER: pl.zeros(span, dtype=pl.Int64, eager=True).scatter(at, messages.get_column(ORDER)),
        })  # fmt: skip
        return _ThinEvents(frame, first, n_events, messages.height, names, coded.aligned,
                           coded.names.len())  # fmt: skip
    thin = messages.filter(is_event).select("profile_id", "timestamp", "seq", ORDER, "event")
    # Event names as an Enum: the dozens of name masks compare small integers, not strings.
    thin = thin.with_columns(pl.col("event").cast(pl.Enum(names)))
    return _ThinEvents(thin, None, n_events, messages.height, names, coded.aligned,
                       coded.names.len())  # fmt: skip


def _dense(seqs: pl.Series) -> bool:
    """Seqs that an array indexed by seq holds without much waste (a normalized run's line
    counter)."""
    if seqs.len() == 0:
        return False
    first, last = seqs.min(), seqs.max()
    assert isinstance(first, int) and isinstance(last, int)
    return last - first < 2 * seqs.len() + 1024


def _user_events(
    events: pl.DataFrame | pl.LazyFrame,
    thin: _ThinEvents,
    in_time: pl.Expr | None,
    flat: EventColumns,
    bucketing: _Buckets,
) -> BucketedEvents:
    """The user level's events in as many profile buckets as `bucketing` chooses."""
    is_event = pl.col("type").is_in(EVENT_TYPES)
    count = bucketing.choose(thin.events, thin.messages)
    # A lazy input is read again only for the events' wide columns, streamed into the spill.
    spill = bucketing.spill if isinstance(events, pl.LazyFrame) else None
    keep = is_event if in_time is None else in_time & is_event
    wide = [*_json_text(flat), *sorted(flat.columns)]
    if thin.first_seq is not None:
        at = pl.col("seq") - thin.first_seq
        plan = (
            events.lazy()
            .filter(keep)
            .select(
                pl.lit(thin.frame.get_column("profile_id")).gather(at).alias("profile_id"),
                "timestamp",
                "seq",
                pl.lit(thin.frame.get_column(ORDER)).gather(at).alias(ORDER),
                pl.col("event").cast(pl.Enum(thin.names)),
                *wide,
            )
        )
    else:
        plan = _event_plan(events, thin.frame, keep, wide, aligned=thin.aligned and spill is None)
    return BucketedEvents(plan.rename({"profile_id": ENTITY}), count,
                          profile_bucket(count, thin.profiles),
                          spill / "users" if spill else None)  # fmt: skip


def _json_text(flat: EventColumns) -> list[str]:
    """The JSON text columns (properties, context) some definition reads whole."""
    return [c for c, need in (("properties", flat.needs_properties),
                              ("context", flat.needs_context)) if need]  # fmt: skip


def _account_columns(space: ir.Space, flat: EventColumns) -> list[str]:
    """The user event columns the account level reads (its traits' and audiences' paths): each
    event is repeated once per account of its profile, so carry only these."""
    account_space = ir.Space(
        tuple(t for t in space.traits if t.level == "account"),
        tuple(a for a in space.audiences if a.level == "account"),
    )
    account_flat = needed_flat_columns(account_space, set(flat.columns))
    json_text = _json_text(flat)
    return [ENTITY, "timestamp", "seq", ORDER, "event",
            *[c for c in _json_text(account_flat) if c in json_text],
            *sorted(account_flat.columns)]  # fmt: skip


def _user_anchors(
    identity: IdentityResult,
    sample_identities: pl.DataFrame | None,
    space_config: SpaceConfig,
    code_of: pl.DataFrame,
) -> Callable[[Mapping[ir.Condition, str]], pl.DataFrame]:
    """The profiles' `sample` anchors (entity_id = code), read when a user sample asks."""

    def anchors(samples: Mapping[ir.Condition, str]) -> pl.DataFrame:
        rows = identity.identities if sample_identities is None else sample_identities
        found = profile_anchors(rows, space_config.identifier_types()).join(
            code_of, left_on="profile_id", right_on="_id", how="inner", suffix="_code"
        )
        return found.select(pl.col("profile_id_code").alias(ENTITY), "id_type", "id_value")

    return anchors


def _levels(
    space: ir.Space,
    as_of: datetime,
    owners: _Owners,
    user_events: BucketedEvents,
    flat: EventColumns,
    spill: Path | None,
    anchors: Callable[[Mapping[ir.Condition, str]], pl.DataFrame],
    lap: Lap,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The user and account frames (traits, leaves, audiences) of every entity; the levels'
    events are dropped on return."""
    # Account events are member events again, one copy per account: as many buckets as the
    # profiles had (each bucket of accounts holds about as many events as one of profiles).
    count = max(1, min(user_events.count, owners.latest.account_ids.height))

    def account_events(plan: pl.LazyFrame) -> BucketedEvents:
        return BucketedEvents(plan, count, account_bucket(count),
                              spill / "accounts" if spill else None)  # fmt: skip

    levels = evaluate_levels(
        space, as_of, users=owners.users, user_events=user_events, accounts=owners.accounts,
        members=owners.latest.members, account_events=account_events, user_anchors=anchors,
        account_columns=_account_columns(space, flat), lap=lap,
    )  # fmt: skip
    return levels.user_frame, levels.account_frame


@dataclass
class _Tables:
    """The output tables built from the level frames (profile codes turned back into ids)."""

    user_frame: pl.DataFrame
    account_frame: pl.DataFrame
    user_latest: pl.DataFrame
    memberships: pl.DataFrame
    account_users: pl.DataFrame
    user_traits: pl.DataFrame = field(default_factory=pl.DataFrame)
    account_traits: pl.DataFrame = field(default_factory=pl.DataFrame)
    user_json: set[str] = field(default_factory=set)
    account_json: set[str] = field(default_factory=set)

    @classmethod
    def of(
        cls,
        user_frame: pl.DataFrame,
        account_frame: pl.DataFrame,
        owners: _Owners,
        names: pl.Series,
        space: ir.Space,
        as_of: datetime,
    ) -> _Tables:
        """The memberships tables (the traits tables come with `traits`)."""
        user_frame = _with_ids(user_frame, ENTITY, names)
        members = _with_ids(owners.latest.members, "profile_id", names)
        audiences = _level_audiences(space)
        memberships = pl.concat([
            _memberships(user_frame, audiences["user"], "user", as_of),
            _memberships(account_frame, audiences["account"], "account", as_of),
        ])  # fmt: skip
        return cls(user_frame, account_frame, _with_ids(owners.latest.users, "profile_id", names),
                   memberships, _account_user_memberships(memberships, members))  # fmt: skip

    def release(self) -> None:
        """Let the level frames and latest traits go once the traits tables are built (the
        result's sorts and message profiles come after)."""
        self.user_frame = self.account_frame = self.user_latest = pl.DataFrame()

    def traits(
        self,
        owners: _Owners,
        space: ir.Space,
        keep_json: Mapping[str, Collection[str]],
        with_user_traits: bool,
    ) -> None:
        """The user_traits and account_traits tables, SQL traits as `<key>.<field>` columns."""
        audiences = _level_audiences(space)
        if with_user_traits:
            self.user_traits, self.user_json = native_traits(
                self.user_frame, self.user_latest, "profile_id", space, "user",
                owners.users.custom_keys, audiences["user"], keep_json.get("user_traits", ()),
            )  # fmt: skip
            self.user_traits = self.user_traits.rename({ENTITY: "profile_id"})
        else:
            self.user_traits = pl.DataFrame(schema={"profile_id": pl.String})
        self.account_traits, self.account_json = native_traits(
            self.account_frame, owners.latest.accounts, "account_id", space, "account",
            owners.accounts.custom_keys, audiences["account"],
            keep_json.get("account_traits", ()),
        )  # fmt: skip
        self.account_traits = self.account_traits.rename({ENTITY: "account_id"})
        sql = owners.sql
        if sql is None:
            return
        user_fields = sql.fields["user"] if with_user_traits else {}
        self.user_traits, more = expand_columns(self.user_traits, "profile_id", sql.rows["user"],
                                                user_fields)  # fmt: skip
        self.user_json = (self.user_json - set(sql.fields["user"])) | more
        self.account_traits, more = expand_columns(self.account_traits, "account_id",
                                                   sql.rows["account"], sql.fields["account"])  # fmt: skip
        self.account_json = (self.account_json - set(sql.fields["account"])) | more


def _table_columns(frame: pl.DataFrame, space: ir.Space, level: str) -> pl.DataFrame:
    """The level frame's columns the output tables read (entity, computed traits, audiences):
    the leaves' and custom traits' columns (most of a wide frame) go before the tables."""
    keep = [ENTITY, *(computed_column(t.key) for t in space.traits if t.level == level),
            *(audience_column(a.key) for a in space.audiences if a.level == level)]  # fmt: skip
    return frame.select(list(dict.fromkeys(keep)))


def _level_audiences(space: ir.Space) -> dict[str, list[ir.Audience]]:
    return {level: [a for a in space.audiences if a.level == level] for level in LEVELS}


def _event_plan(
    events: pl.DataFrame | pl.LazyFrame,
    thin: pl.DataFrame,
    keep: pl.Expr,
    wide: list[str],
    *,
    aligned: bool,
) -> pl.LazyFrame:
    """The levels' events: the thin columns (profile code, order, event name, ...) with the wide
    property columns of the same events (those `keep` keeps of `events`).

    `aligned`: `thin` holds the rows of `events.filter(keep)` in order (a frame in memory), so
    the wide columns are set beside them instead of joined on seq.
    """
    if aligned:
        assert isinstance(events, pl.DataFrame)
        return thin.hstack(events.lazy().filter(keep).select(wide).collect()).lazy()
    wide_events = events.lazy().filter(keep).select("seq", *wide)
    if isinstance(events, pl.DataFrame):
        wide_events = wide_events.collect().lazy()
        return thin.lazy().join(wide_events, on="seq", how="left", maintain_order="left")
    # Streamed: the thin frame is the join's small side, the scan's wide rows flow past it.
    # Forced: with `auto` the streaming join may hold the scan's side instead.
    joined = wide_events.join(thin.lazy(), on="seq", how="inner", build_side="force_right")
    return joined.select(*thin.columns, *wide)


def _profile_codes(identity: IdentityResult) -> tuple[pl.Series, pl.Series]:
    """Dense Int64 codes aligned with identity.message_profiles, and each code's profile id."""
    if identity.codes is not None and identity.code_names is not None:
        return identity.codes.cast(pl.Int64), identity.code_names
    ids = identity.message_profiles.get_column("profile_id")
    names = ids.unique().sort()
    lookup = pl.DataFrame({"profile_id": names, "code": pl.int_range(0, names.len(), eager=True)})
    codes = ids.to_frame().join(lookup, on="profile_id", how="left", maintain_order="left")
    return codes.get_column("code"), names


def _with_ids(frame: pl.DataFrame, column: str, names: pl.Series) -> pl.DataFrame:
    """Profile codes in `column` -> profile ids."""
    return frame.with_columns(names.gather(frame.get_column(column)).alias(column))


def _event_names(space: ir.Space) -> set[str]:
    """Every event name a trait, event condition or funnel step of the space names."""
    names = {name for trait in space.traits for name in trait.events}
    for audience in space.audiences:
        for node in iter_conditions(audience.condition):
            if isinstance(node, ir.EventCond):
                names.update(node.events)
            elif isinstance(node, ir.Funnel):
                names.update(name for step in node.steps for name in step.events)
            elif isinstance(node, ir.Behaviour):
                names.update(node.events)
    return names


def _stage_timer() -> Lap:
    """`lap(stage)`: logs the seconds since the previous stage ended (debug)."""
    laps = Laps()

    def lap(stage: str) -> float:
        seconds = laps.lap(stage)
        log.debug("compute stage %s: %.2fs", stage, seconds)
        return seconds

    return lap


__all__ = ["KNOWN_TYPES", "ComputeResult", "compute", "computed_column"]
