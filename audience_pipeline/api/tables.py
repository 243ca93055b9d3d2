"""One generation of the Profile API's tables: a pinned warehouse run, indexed in memory.

Everything a request needs is looked up here without I/O: identifiers -> row (dicts), a row's
traits (`DataFrame.row`), its identifiers, links, metadata and recent events (slices of frames
sorted by row, with offsets), and each audience's members (sorted Series, keyset paging). A
generation is built once and never changed; the store swaps whole generations.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl

from audience_pipeline.message_types import EVENT_TYPES
from audience_pipeline.snapshot import Snapshot, SnapshotMissing
from audience_pipeline.spec.models import Definitions

log = logging.getLogger(__name__)

USERS, ACCOUNTS = "users", "accounts"
CUSTOM, COMPUTED, AUDIENCE = "custom_trait", "computed_trait", "audience"


@dataclass(frozen=True)
class TraitColumn:
    name: str
    position: int  # in the traits frame's row tuple
    kind: str  # CUSTOM | COMPUTED | AUDIENCE
    json_text: bool  # stored as JSON text (mixed JSON types): decode before sending


def _offsets(rows: pl.Series, n: int) -> list[int]:
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
    )
    return [0, *_as_list(counts.cum_sum())]


CHUNK = 20_000


def _yield_gil() -> None:
    # A reload runs beside the request thread; without a pause here the request thread, which
    # gives the GIL up at every socket call, waits a whole switch interval to get it back each
    # time (the "convoy effect"), and serving slows to a crawl during a reload.
    time.sleep(0.0005)


def _as_list(series: pl.Series) -> list[Any]:
    """`Series.to_list` in chunks: one call on millions of values holds the GIL for a second,
    stalling every request while a reload builds the next generation in the background."""
    out: list[Any] = []
    for start in range(0, series.len(), CHUNK):
        out.extend(series.slice(start, CHUNK).to_list())
        _yield_gil()
    return out


def _as_dict(keys: pl.Series, values: pl.Series) -> dict[Any, Any]:
    """dict(zip(keys, values)), built in chunks for the same reason."""
    out: dict[Any, Any] = {}
    for start in range(0, keys.len(), CHUNK):
        chunk = zip(keys.slice(start, CHUNK).to_list(), values.slice(start, CHUNK).to_list(),
                    strict=True)  # fmt: skip
        out.update(chunk)
        _yield_gil()
    return out


@dataclass
class Collection:
    """Users (profiles) or accounts: ids in row order and everything keyed by row."""

    name: str
    ids: list[str]
    index: dict[str, int]
    traits: pl.DataFrame
    columns: list[TraitColumn]  # sorted by name
    external: pl.DataFrame  # row, type, id, created_at (sorted by row, type, id)
    external_offsets: list[int]
    links: pl.DataFrame  # row, other_row, created_at (sorted by row, other id)
    link_offsets: list[int]
    metadata: pl.DataFrame  # created_at, updated_at, first_message_id, last_message_id by row
    events: pl.DataFrame | None = None  # row, timestamp, seq, type, event, message_id, ...
    event_offsets: list[int] = field(default_factory=list)

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
    id_index: dict[str, dict[str, int]]  # id_type -> id_value -> user row
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


def build_generation(
    number: int, snapshot: Snapshot, definitions: Definitions, *, events_days: int
) -> Generation:
    """Read a pinned run into memory indexes."""
    started = time.perf_counter()
    identities = snapshot.table("identities")
    user_traits = snapshot.table("user_traits")
    account_traits = snapshot.table("account_traits")
    memberships = snapshot.table("memberships", ["audience_key", "level", "entity_id"])

    levels: dict[str, str] = {a.key: a.level for a in definitions.audiences}
    for key, level in memberships.select("audience_key", "level").unique().iter_rows():
        levels.setdefault(key, level)
    computed: dict[str, str] = {t.key: t.level for t in definitions.traits}
    user_ids = _as_list(user_traits["profile_id"])
    account_ids = _as_list(account_traits["account_id"])
    # Frames from the Series, not from the Python lists (that copy holds the GIL for a second).
    user_rows = user_traits.select(
        "profile_id", pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("row")
    )
    account_rows = account_traits.select(
        "account_id", pl.int_range(0, pl.len(), dtype=pl.UInt32).alias("row")
    )
    steps = {"tables": time.perf_counter() - started}
    messages = _messages(snapshot)
    user_meta, account_meta, links, first_seen = _message_facts(
        messages, user_rows, account_rows, len(user_ids), len(account_ids)
    )
    steps["messages"] = time.perf_counter() - started - sum(steps.values())
    external = identities.join(user_rows, on="profile_id", how="inner")
    if first_seen is not None:
        external = external.join(first_seen, on=["id_type", "id_value"], how="left")
    else:
        external = external.with_columns(
            pl.lit(None, dtype=pl.Datetime("us", "UTC")).alias("created_at")
        )
    external = external.select(
        "row", pl.col("id_type").alias("type"), pl.col("id_value").alias("id"), "created_at"
    ).sort("row", "type", "id")
    id_index: dict[str, dict[str, int]] = {}
    for (id_type,), part in external.partition_by("type", as_dict=True).items():
        id_index[str(id_type)] = _as_dict(part["id"], part["row"])

    account_external = (
        account_rows.select(
            "row", pl.lit("group_id").alias("type"), pl.col("account_id").alias("id")
        )
        .join(account_meta.select("row", pl.col("created_at")), on="row", how="left")
        .sort("row")
    )

    user_links = links.select(pl.col("user_row").alias("row"), pl.col("account_row").alias("other_row"),
                              "created_at").sort("row", "other_row")  # fmt: skip
    account_links = links.select(pl.col("account_row").alias("row"), pl.col("user_row").alias("other_row"),
                                 "created_at").sort("row", "other_row")  # fmt: skip

    users = Collection(
        name=USERS,
        ids=user_ids,
        index=_as_dict(user_traits["profile_id"], user_rows["row"]),
        traits=user_traits.drop("profile_id"),
        columns=_columns(
            user_traits,
            "profile_id",
            "user",
            computed,
            levels,
            snapshot.json_columns("user_traits"),
        ),  # fmt: skip
        external=external,
        external_offsets=_offsets(external["row"], len(user_ids)),
        links=user_links,
        link_offsets=_offsets(user_links["row"], len(user_ids)),
        metadata=user_meta.drop("row"),
    )
    accounts = Collection(
        name=ACCOUNTS,
        ids=account_ids,
        index=_as_dict(account_traits["account_id"], account_rows["row"]),
        traits=account_traits.drop("account_id"),
        columns=_columns(
            account_traits,
            "account_id",
            "account",
            computed,
            levels,
            snapshot.json_columns("account_traits"),
        ),  # fmt: skip
        external=account_external,
        external_offsets=list(range(len(account_ids) + 1)),
        links=account_links,
        link_offsets=_offsets(account_links["row"], len(account_ids)),
        metadata=account_meta.drop("row"),
    )
    steps["indexes"] = time.perf_counter() - started - sum(steps.values())
    if messages is not None and events_days > 0:
        users.events, users.event_offsets = _recent_events(
            messages, user_rows, snapshot.as_of, events_days, len(user_ids)
        )
    members = {
        str(key): part["entity_id"].sort()
        for (key,), part in memberships.partition_by("audience_key", as_dict=True).items()
    }
    seconds = time.perf_counter() - started
    steps["events"] = seconds - sum(steps.values())
    log.info(
        "generation %d built in %s", number, ", ".join(f"{k} {v:.1f}s" for k, v in steps.items())
    )
    return Generation(
        number=number,
        snapshot=snapshot,
        definitions=definitions,
        as_of=snapshot.as_of,
        loaded_at=datetime.now().astimezone(),
        load_seconds=seconds,
        users=users,
        accounts=accounts,
        id_index=id_index,
        members=members,
        audience_levels=levels,
        events_days=events_days,
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


def _message_facts(
    messages: pl.LazyFrame | None,
    user_rows: pl.DataFrame,
    account_rows: pl.DataFrame,
    n_users: int,
    n_accounts: int,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame | None]:
    """Per profile and account: first/last message; user-account links; identifier first seen."""
    utc = pl.Datetime("us", "UTC")
    meta_schema: dict[str, pl.DataType] = {
        "row": pl.UInt32(),
        "created_at": utc,
        "updated_at": utc,
        "first_message_id": pl.String(),
        "last_message_id": pl.String(),
    }
    if messages is None:
        empty_links = pl.DataFrame(
            schema={"user_row": pl.UInt32, "account_row": pl.UInt32, "created_at": utc}
        )
        return (
            _aligned(pl.DataFrame(schema=meta_schema), n_users),
            _aligned(pl.DataFrame(schema=meta_schema), n_accounts),
            empty_links,
            None,
        )
    base = messages.select(
        "seq", "profile_id", "timestamp", "message_id", "type", "group_id", "ids"
    )

    def first_last(frame: pl.LazyFrame, key: str) -> pl.LazyFrame:
        # arg_min/arg_max per group instead of a global sort (3x faster on 13M messages); on a
        # timestamp tie, either message may be named.
        ts = pl.col("timestamp")
        return frame.group_by(key).agg(
            ts.min().alias("created_at"),
            ts.max().alias("updated_at"),
            pl.col("message_id").get(ts.arg_min()).alias("first_message_id"),
            pl.col("message_id").get(ts.arg_max()).alias("last_message_id"),
        )

    by_user = (
        first_last(base, "profile_id")
        .join(user_rows.lazy(), on="profile_id", how="inner")
        .drop("profile_id")
    )
    groups = base.filter((pl.col("type") == "group") & pl.col("group_id").is_not_null())
    by_account = (
        first_last(groups, "group_id")
        .join(account_rows.lazy(), left_on="group_id", right_on="account_id", how="inner")
        .drop("group_id")
    )
    links = (
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
    first_seen = (
        base.select("timestamp", "ids")
        .explode("ids")
        .drop_nulls("ids")
        .unnest("ids")
        .group_by("id_type", "id_value")
        .agg(pl.col("timestamp").min().alias("created_at"))
    )
    user_meta, account_meta, links_frame, seen = pl.collect_all(
        [by_user, by_account, links, first_seen]
    )
    return _aligned(user_meta, n_users), _aligned(account_meta, n_accounts), links_frame, seen


def _aligned(meta: pl.DataFrame, n: int) -> pl.DataFrame:
    """One metadata row per entity row, in row order (nulls where nothing is known)."""
    rows = pl.DataFrame({"row": pl.int_range(0, n, eager=True, dtype=pl.UInt32)})
    return rows.join(meta.with_columns(pl.col("row").cast(pl.UInt32)), on="row", how="left").sort(
        "row"
    )


def _recent_events(
    messages: pl.LazyFrame, user_rows: pl.DataFrame, as_of: datetime, days: int, n: int
) -> tuple[pl.DataFrame, list[int]]:
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
    "Generation",
    "TraitColumn",
    "build_generation",
]
