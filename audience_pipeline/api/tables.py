"""One generation of the Profile API's tables: a pinned warehouse run, indexed in memory.

Everything a request needs is looked up here without I/O: identifiers -> row (dicts), a row's
traits (`DataFrame.row`), its identifiers, links, metadata and recent events (slices of frames
sorted by row, with offsets), and each audience's members (sorted Series, keyset paging). A
generation is built once and never changed; the store swaps whole generations.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from audience_pipeline.message_types import EVENT_TYPES
from audience_pipeline.progress import Laps
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse.snapshot import Snapshot, SnapshotMissing

log = logging.getLogger(__name__)

USERS, ACCOUNTS = "users", "accounts"
# Per level: the traits table and its entity column.
TRAIT_TABLES = {"user": ("user_traits", "profile_id"), "account": ("account_traits", "account_id")}
CUSTOM, COMPUTED, AUDIENCE = "custom_trait", "computed_trait", "audience"


@dataclass(frozen=True)
class TraitColumn:
    name: str
    position: int  # in the traits frame's row tuple
    kind: str  # CUSTOM | COMPUTED | AUDIENCE
    json_text: bool  # stored as JSON text (mixed JSON types): decode before sending


def _offsets(rows: pl.Series, n: int) -> pl.Series:
    """Start offsets (length n + 1) of each row's run in a frame sorted by `rows`."""
    counts = (
        pl.DataFrame({"row": pl.int_range(0, n, eager=True, dtype=pl.UInt32)})
        .join(
            rows.rename("row").cast(pl.UInt32).to_frame().group_by("row").len(),
            on="row",
            how="left",
        )
        .sort("row")["len"]
        .fill_null(0)
        .cast(pl.Int64)
    )
    return pl.concat([pl.Series("offset", [0], dtype=pl.Int64), counts.cum_sum()]).rename("offset")


class KeyIndex:
    """key -> row over keys sorted by Polars, with no Python object per key.

    A dict of a million Python strings takes seconds of GIL time to build, which stalls every
    request while a reload runs; this is two Arrow columns (built off the GIL, or in another
    process: see api/builder.py) plus every BLOCK-th key as a Python list. A lookup bisects
    that list, then the one block of keys it points to: about 10 us.
    """

    BLOCK = 64

    def __init__(self, keys: pl.Series, rows: pl.Series) -> None:
        self.keys = keys  # sorted ascending (Polars' order: by bytes, as Python's for str)
        self.rows = rows
        self._firsts: list[str] = keys.gather_every(self.BLOCK).to_list()

    @classmethod
    def of(cls, keys: pl.Series, rows: pl.Series) -> KeyIndex:
        frame = pl.DataFrame({"key": keys, "row": rows}).sort("key")
        return cls(frame["key"], frame["row"])

    def get(self, key: str, default: int | None = None) -> int | None:
        if not isinstance(key, str):
            return default
        block = bisect_right(self._firsts, key) - 1
        if block < 0:
            return default
        start = block * self.BLOCK
        keys = self.keys.slice(start, self.BLOCK).to_list()
        at = bisect_left(keys, key)
        if at < len(keys) and keys[at] == key:
            return int(self.rows[start + at])
        return default

    def __len__(self) -> int:
        return self.keys.len()


@dataclass
class Collection:
    """Users (profiles) or accounts: ids in row order and everything keyed by row.

    `ids` and the offsets are Polars Series (indexing gives Python values), `index` a
    :class:`KeyIndex`: nothing in a generation is a per-entity Python object.
    """

    name: str
    ids: pl.Series
    index: KeyIndex
    traits: pl.DataFrame
    columns: list[TraitColumn]  # sorted by name
    external: pl.DataFrame  # row, type, id, created_at (sorted by row, type, id)
    external_offsets: pl.Series
    links: pl.DataFrame  # row, other_row, created_at (sorted by row, other id)
    link_offsets: pl.Series
    metadata: pl.DataFrame  # created_at, updated_at, first_message_id, last_message_id by row
    events: pl.DataFrame | None = None  # row, timestamp, seq, type, event, message_id, ...
    event_offsets: pl.Series = field(default_factory=lambda: pl.Series("offset", [], pl.Int64))

    def __post_init__(self) -> None:
        self.column_names = [c.name for c in self.columns]

    def row_of(self, entity_id: str) -> int | None:
        return self.index.get(entity_id)


@dataclass
class Generation:
    """A whole pinned run, ready to serve."""

    number: int
    snapshot: Snapshot
    definitions: Definitions
    as_of: datetime
    loaded_at: datetime
    load_seconds: float
    users: Collection
    accounts: Collection
    id_index: dict[str, KeyIndex]  # id_type -> id_value -> user row
    members: dict[str, pl.Series]  # audience key -> sorted entity ids
    audience_levels: dict[str, str]
    events_days: int
    _explainer: Any = None
    _explainer_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def space(self) -> str:
        return self.definitions.space.space

    def collection(self, name: str) -> Collection:
        return self.users if name == USERS else self.accounts

    def explainer(self, definitions_dir: str) -> Any:
        """The run's Explainer, built on first use (compiling definitions takes a moment)."""
        with self._explainer_lock:
            if self._explainer is None:
                from audience_pipeline.explain import Explainer

                self._explainer = Explainer(self.snapshot, definitions_dir)
            return self._explainer


Frames = dict[str, pl.DataFrame]
"""Everything a generation holds, as plain frames (what api/builder.py hands between processes):
tables, indexes (``index.<name>``: key, row sorted by key), offsets (one ``offset`` column)."""


def build_generation(
    number: int, snapshot: Snapshot, definitions: Definitions, *, events_days: int
) -> Generation:
    """Read a pinned run into memory indexes (in this process)."""
    started = Laps().started
    frames = compute_frames(snapshot, definitions, events_days=events_days)
    return assemble_generation(
        number, snapshot, definitions, frames, events_days=events_days, started=started
    )


def compute_frames(snapshot: Snapshot, definitions: Definitions, *, events_days: int) -> Frames:
    """All the Polars work of a generation: its tables, indexes and offsets as frames."""
    laps = Laps()
    user_traits = snapshot.table("user_traits")
    account_traits = snapshot.table("account_traits")
    user_rows, account_rows = _rows(user_traits, "profile_id"), _rows(account_traits, "account_id")
    n_users, n_accounts = user_traits.height, account_traits.height
    laps.lap("tables")
    messages = _messages(snapshot)
    user_meta, account_meta, links, first_seen = _message_facts(
        messages, user_rows, account_rows, n_users, n_accounts
    )
    laps.lap("messages")
    external = _external_ids(snapshot.table("identities"), user_rows, first_seen)
    frames: Frames = {
        "user_traits": user_traits,
        "account_traits": account_traits,
        "index.users": _index(user_rows, "profile_id"),
        "index.accounts": _index(account_rows, "account_id"),
        "external.users": external,
        "offsets.users.external": _offsets(external["row"], n_users).to_frame(),
    }
    for (id_type,), part in external.partition_by("type", as_dict=True).items():
        frames[f"index.id.{id_type}"] = part.select(pl.col("id").alias("key"), "row").sort("key")
    frames["external.accounts"] = (
        account_rows.select(
            "row", pl.lit("group_id").alias("type"), pl.col("account_id").alias("id")
        )
        .join(account_meta.select("row", pl.col("created_at")), on="row", how="left")
        .sort("row")
    )
    frames.update(_link_frames(links, n_users, n_accounts))
    frames["metadata.users"] = user_meta.drop("row")
    frames["metadata.accounts"] = account_meta.drop("row")
    laps.lap("indexes")
    if messages is not None and events_days > 0:
        events, offsets = _recent_events(messages, user_rows, snapshot.as_of, events_days, n_users)
        frames["events.users"] = events
        frames["offsets.users.events"] = offsets.to_frame()
    memberships = snapshot.table("memberships", ["audience_key", "level", "entity_id"])
    frames["members"] = memberships.select("audience_key", "level", "entity_id").sort(
        "audience_key", "entity_id"
    )
    laps.lap("events")
    log.info("generation frames built in %s", laps.describe())
    return frames


def _rows(traits: pl.DataFrame, entity: str) -> pl.DataFrame:
    """entity id, row: each entity's row in its traits table."""
    return traits.select(entity, pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("row"))


def _index(rows: pl.DataFrame, entity: str) -> pl.DataFrame:
    return rows.select(pl.col(entity).alias("key"), "row").sort("key")


def _external_ids(
    identities: pl.DataFrame, user_rows: pl.DataFrame, first_seen: pl.DataFrame | None
) -> pl.DataFrame:
    """row, type, id, created_at (the identifier's first message) of every user identifier."""
    external = identities.join(user_rows, on="profile_id", how="inner")
    if first_seen is not None:
        external = external.join(first_seen, on=["id_type", "id_value"], how="left")
    else:
        external = external.with_columns(
            pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("created_at")
        )
    return external.select(
        "row", pl.col("id_type").alias("type"), pl.col("id_value").alias("id"), "created_at"
    ).sort("row", "type", "id")


def _link_frames(links: pl.DataFrame, n_users: int, n_accounts: int) -> Frames:
    """User -> account and account -> user links (row, other_row, created_at), with offsets."""
    frames: Frames = {}
    for name, row, other in (("users", "user_row", "account_row"),
                             ("accounts", "account_row", "user_row")):  # fmt: skip
        linked = links.select(pl.col(row).alias("row"), pl.col(other).alias("other_row"),
                              "created_at").sort("row", "other_row")  # fmt: skip
        frames[f"links.{name}"] = linked
        n = n_users if name == "users" else n_accounts
        frames[f"offsets.{name}.links"] = _offsets(linked["row"], n).to_frame()
    return frames


def assemble_generation(
    number: int,
    snapshot: Snapshot,
    definitions: Definitions,
    frames: Frames,
    *,
    events_days: int,
    started: float,
) -> Generation:
    """A generation over frames from :func:`compute_frames` (cheap: no per-entity work)."""
    members_frame = frames["members"]
    levels = _audience_levels(definitions, members_frame)
    computed = _computed_levels(definitions, frames["user_traits"], frames["account_traits"])
    users = _collection(USERS, "user", frames, snapshot, computed, levels)
    accounts = _collection(ACCOUNTS, "account", frames, snapshot, computed, levels)
    if "events.users" in frames:
        users.events = frames["events.users"]
        users.event_offsets = frames["offsets.users.events"]["offset"]
    id_index = {
        name.removeprefix("index.id."): _key_index(frames, name)
        for name in frames
        if name.startswith("index.id.")
    }
    members = {
        str(key): part["entity_id"]
        for (key,), part in members_frame.partition_by("audience_key", as_dict=True).items()
    }
    return Generation(
        number=number,
        snapshot=snapshot,
        definitions=definitions,
        as_of=snapshot.as_of,
        loaded_at=datetime.now().astimezone(),
        load_seconds=Laps(started).total,
        users=users,
        accounts=accounts,
        id_index=id_index,
        members=members,
        audience_levels=levels,
        events_days=events_days,
    )


def _audience_levels(definitions: Definitions, members: pl.DataFrame) -> dict[str, str]:
    """Audience key -> level: the definitions', then the run's for audiences no longer defined."""
    levels: dict[str, str] = {a.key: a.level for a in definitions.audiences}
    for key, level in members.select("audience_key", "level").unique().iter_rows():
        levels.setdefault(key, level)
    return levels


def _computed_levels(
    definitions: Definitions, user_traits: pl.DataFrame, account_traits: pl.DataFrame
) -> dict[str, str]:
    """Computed trait column -> level."""
    computed: dict[str, str] = {t.key: t.level for t in definitions.traits}
    # A SQL trait is stored as one `<key>.<field>` column per field: each is a computed trait.
    for trait in (t for t in definitions.traits if t.kind == "sql"):
        stored = user_traits if trait.level == "user" else account_traits
        computed.update({c: trait.level for c in stored.columns if c.startswith(trait.key + ".")})
    return computed


def _key_index(frames: Frames, name: str) -> KeyIndex:
    frame = frames[name]
    return KeyIndex(frame["key"], frame["row"])


def _collection(
    name: str,
    level: str,
    frames: Frames,
    snapshot: Snapshot,
    computed: dict[str, str],
    levels: dict[str, str],
) -> Collection:
    """The users or accounts collection over the generation's frames."""
    table, entity = TRAIT_TABLES[level]
    traits = frames[table]
    if level == "user":
        external_offsets = frames["offsets.users.external"]["offset"]
    else:  # one external id (the group_id) per account
        external_offsets = pl.int_range(0, traits.height + 1, eager=True).alias("offset")
    columns = _columns(traits, entity, level, computed, levels, snapshot.json_columns(table))
    return Collection(
        name=name,
        ids=traits[entity],
        index=_key_index(frames, f"index.{name}"),
        traits=traits.drop(entity),
        columns=columns,
        external=frames[f"external.{name}"],
        external_offsets=external_offsets,
        links=frames[f"links.{name}"],
        link_offsets=frames[f"offsets.{name}.links"]["offset"],
        metadata=frames[f"metadata.{name}"],
    )


def _columns(
    frame: pl.DataFrame,
    entity: str,
    level: str,
    computed: dict[str, str],
    audiences: dict[str, str],
    json_columns: tuple[str, ...],
) -> list[TraitColumn]:
    names = [c for c in frame.columns if c != entity]
    out = []
    for position, name in enumerate(names):
        if computed.get(name) == level:
            kind = COMPUTED
        elif audiences.get(name) == level and frame.schema[name] == pl.Boolean:
            kind = AUDIENCE
        else:
            kind = CUSTOM
        out.append(TraitColumn(name, position, kind, name in json_columns))
    return sorted(out, key=lambda c: c.name)


def _messages(snapshot: Snapshot) -> pl.LazyFrame | None:
    if not snapshot.has_inputs:
        log.warning("events, metadata and links are not available: %s", snapshot.inputs_problem)
        return None
    try:
        return snapshot.messages()
    except SnapshotMissing as error:
        log.warning("events are not available: %s", error)
        return None


_UTC = pl.Datetime("us", "UTC")
_META_SCHEMA: dict[str, pl.DataType] = {
    "row": pl.UInt32(),
    "created_at": _UTC,
    "updated_at": _UTC,
    "first_message_id": pl.String(),
    "last_message_id": pl.String(),
}


def _message_facts(
    messages: pl.LazyFrame | None,
    user_rows: pl.DataFrame,
    account_rows: pl.DataFrame,
    n_users: int,
    n_accounts: int,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """Per profile and account: first/last message; user-account links; identifier first seen."""
    if messages is None:
        empty_links = pl.DataFrame(
            schema={"user_row": pl.UInt32, "account_row": pl.UInt32, "created_at": _UTC}
        )
        return (
            _aligned(pl.DataFrame(schema=_META_SCHEMA), n_users),
            _aligned(pl.DataFrame(schema=_META_SCHEMA), n_accounts),
            empty_links,
            None,
        )
    base = messages.select(
        "seq", "profile_id", "timestamp", "message_id", "type", "group_id", "ids"
    )
    by_user = (
        _first_last(base, "profile_id")
        .join(user_rows.lazy(), on="profile_id", how="inner")
        .drop("profile_id")
    )
    groups = base.filter((pl.col("type") == "group") & pl.col("group_id").is_not_null())
    by_account = (
        _first_last(groups, "group_id")
        .join(account_rows.lazy(), left_on="group_id", right_on="account_id", how="inner")
        .drop("group_id")
    )
    user_meta, account_meta, links_frame, seen = pl.collect_all(
        [by_user, by_account, _links(groups, user_rows, account_rows), _first_seen(base)]
    )
    return _aligned(user_meta, n_users), _aligned(account_meta, n_accounts), links_frame, seen


def _first_last(frame: pl.LazyFrame, key: str) -> pl.LazyFrame:
    """created_at, updated_at, first_message_id, last_message_id per `key`."""
    # arg_min/arg_max per group instead of a global sort (3x faster on 13M messages); on a
    # timestamp tie, either message may be named.
    ts = pl.col("timestamp")
    return frame.group_by(key).agg(
        ts.min().alias("created_at"),
        ts.max().alias("updated_at"),
        pl.col("message_id").get(ts.arg_min()).alias("first_message_id"),
        pl.col("message_id").get(ts.arg_max()).alias("last_message_id"),
    )


def _links(
    groups: pl.LazyFrame, user_rows: pl.DataFrame, account_rows: pl.DataFrame
) -> pl.LazyFrame:
    """user_row, account_row, created_at (the first group call) of every membership."""
    return (
        groups.group_by("profile_id", "group_id")
        .agg(pl.col("timestamp").min().alias("created_at"))
        .join(user_rows.lazy().rename({"row": "user_row"}), on="profile_id", how="inner")
        .join(
            account_rows.lazy().rename({"row": "account_row"}),
            left_on="group_id",
            right_on="account_id",
            how="inner",
        )  # fmt: skip
        .select("user_row", "account_row", "created_at")
    )


def _first_seen(base: pl.LazyFrame) -> pl.LazyFrame:
    """id_type, id_value, created_at: each identifier's first message."""
    return (
        base.select("timestamp", "ids")
        .explode("ids")
        .drop_nulls("ids")
        .unnest("ids")
        .group_by("id_type", "id_value")
        .agg(pl.col("timestamp").min().alias("created_at"))
    )


def _aligned(meta: pl.DataFrame, n: int) -> pl.DataFrame:
    """One metadata row per entity row, in row order (nulls where nothing is known)."""
    rows = pl.DataFrame({"row": pl.int_range(0, n, eager=True, dtype=pl.UInt32)})
    return rows.join(meta.with_columns(pl.col("row").cast(pl.UInt32)), on="row", how="left").sort(
        "row"
    )


def _recent_events(
    messages: pl.LazyFrame, user_rows: pl.DataFrame, as_of: datetime, days: int, n: int
) -> tuple[pl.DataFrame, pl.Series]:
    """The last `days` days of track/page/screen calls before as-of, sorted by (row, time)."""
    since = as_of - timedelta(days=days)
    events = (
        messages.filter(
            pl.col("type").is_in(EVENT_TYPES)
            & (pl.col("timestamp") > since)
            & (pl.col("timestamp") <= as_of)
        )
        .select(
            "profile_id",
            "seq",
            "timestamp",
            "type",
            "event",
            "message_id",
            "properties",
            "context",
            "ids",
        )  # fmt: skip
        .join(user_rows.lazy(), on="profile_id", how="inner")
        .drop("profile_id")
        .sort("row", "timestamp", "seq")
        .collect()
    )
    return events, _offsets(events["row"], n)


__all__ = [
    "ACCOUNTS",
    "AUDIENCE",
    "COMPUTED",
    "CUSTOM",
    "USERS",
    "Collection",
    "Frames",
    "Generation",
    "KeyIndex",
    "TraitColumn",
    "assemble_generation",
    "build_generation",
    "compute_frames",
]
