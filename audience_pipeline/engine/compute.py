"""The Polars engine's entry point: normalized events + compiled space -> output tables."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.engine.aggregate import ORDER
from audience_pipeline.engine.audiences import (
    NodeColumns,
    audience_column,
    collect_leaves,
    condition_expr,
)
from audience_pipeline.engine.buckets import (
    BucketedEvents,
    account_bucket,
    choose_buckets,
    evaluate_bucketed,
    profile_bucket,
)
from audience_pipeline.engine.columns import ENTITY, needed_flat_columns
from audience_pipeline.engine.level import LevelResult
from audience_pipeline.engine.memory import memory_limit as process_memory_limit
from audience_pipeline.engine.native import native_traits
from audience_pipeline.engine.samples import account_anchors, profile_anchors, with_sample_columns
from audience_pipeline.engine.traitvalues import computed_column, custom_column
from audience_pipeline.identity import IdentityResult, resolve_identities
from audience_pipeline.identity.prepare import processing_rank
from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.walk import iter_conditions
from audience_pipeline.message_types import EVENT_TYPES
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sqltraits.columns import expand_columns, with_sql_rows
from audience_pipeline.sqltraits.match import matched_sql_traits
from audience_pipeline.sqltraits.run import SqlTraitResult
from audience_pipeline.tables.memberships import (
    account_user_memberships as _account_user_memberships,
)
from audience_pipeline.tables.memberships import memberships as _memberships
from audience_pipeline.tables.result import KNOWN_TYPES, ComputeResult

log = logging.getLogger(__name__)

MESSAGE_COLUMNS = (
    "seq",
    "message_id",
    "type",
    "event",
    "timestamp",
    "ids",
    "previous_id",
    "group_id",
)


def latest_traits(updates: pl.DataFrame, owner: str) -> pl.DataFrame:
    """Per (owner, key) the latest non-null value by (timestamp, messageId, read order).

    `updates`: key, value, tagged, <ORDER> (the message's processing order), <owner>.
    Returns owner, key, value (raw JSON), tagged (tagged text).
    """
    return (
        updates.group_by(owner, "key")
        .agg(pl.col("value", "tagged").sort_by(ORDER).last())
        .with_columns(_flat_scalar(pl.col("tagged"), pl.col("value")).alias("tagged"))
    )


def _flat_scalar(tagged: pl.Expr, raw: pl.Expr) -> pl.Expr:
    """Nested-tagged JSON of a trait value -> a flat-tagged scalar (containers: ``o`` + raw JSON).

    A JSON string without a backslash is its text between the quotes; only the others go
    through the JSON reader (which costs most of this step when every row takes it: a
    when/then computes each branch over every row, so it gets the escaped rows alone).
    """
    text = tagged.str.starts_with('"')
    escaped = tagged.str.contains("\\", literal=True)
    decoded = pl.when(text & escaped).then(tagged).str.json_path_match("$")
    plain = tagged.str.slice(1, tagged.str.len_chars() - 2)
    return (
        pl.when(text & ~escaped).then(plain).when(text).then(decoded).otherwise(pl.lit("o") + raw)
    )


def custom_wide(
    latest: pl.DataFrame, owner: str, entities: pl.DataFrame
) -> tuple[pl.DataFrame, set[str]]:
    keys = set(latest["key"].unique().to_list()) if latest.height else set()
    if not keys:
        return entities.select(pl.col(owner).alias(ENTITY)), keys
    wide = latest.pivot(on="key", index=owner, values="tagged")
    wide = wide.rename({k: custom_column(k) for k in keys}).rename({owner: ENTITY})
    return entities.select(pl.col(owner).alias(ENTITY)).join(wide, on=ENTITY, how="left"), keys


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
    clock = time.perf_counter()
    # Only the columns some stage reads, cut before filtering: the filter copies what it keeps.
    flat = needed_flat_columns(space, set(events.collect_schema().names()))
    json_text = [c for c, need in (("properties", flat.needs_properties),
                                   ("context", flat.needs_context)) if need]  # fmt: skip
    wide = [*json_text, *sorted(flat.columns)]
    # Identity, profiles and trait updates read only the thin message columns; the wide property
    # columns are cut once, for the track/page/screen events alone (a filter copies what it keeps).
    in_time: pl.Expr | None = None
    if isinstance(events, pl.LazyFrame):
        in_time = pl.col("timestamp") <= as_of
        messages = events.select(*MESSAGE_COLUMNS).filter(in_time).collect(engine="streaming")
    else:
        messages = events.select(*MESSAGE_COLUMNS)
        if messages.height and messages["timestamp"].max() > as_of:  # type: ignore[operator]
            in_time = pl.col("timestamp") <= as_of
            messages = messages.filter(in_time)
    if identity is None:
        identity = resolve_identities(
            messages.select("seq", "message_id", "type", "timestamp", "ids", "previous_id"),
            space_config,
        )
    clock = _lap(clock, "identity")
    messages = messages.drop("ids", "previous_id")  # only identity reads them (the widest)
    profiles = identity.message_profiles
    # Inside the engine a profile is a dense integer code (joins and group-bys on integers, not
    # 22-character ids); `names[code]` turns codes back into profile ids in the output tables.
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
    messages = messages.drop("message_id")

    code_of = pl.DataFrame({"_id": names, "profile_id": pl.int_range(0, names.len(), eager=True)})
    universe = (
        identity.identities.group_by("profile_id")
        .agg(pl.col("id_type").is_in(KNOWN_TYPES).any().alias("_known"))
        .join(code_of, left_on="profile_id", right_on="_id", how="inner", suffix="_code")
        .select(pl.col("profile_id_code").alias("profile_id"), "_known")
    )
    # Every profile with a message holds at least one identifier, but be safe: union message owners.
    owners = messages.select("profile_id").unique()
    universe = (
        owners.join(universe, on="profile_id", how="left")
        .with_columns(pl.col("_known").fill_null(False))
        .sort("profile_id")
    )

    clock = _lap(clock, "universe")
    # One join gives every update its message's processing order, owner and account.
    is_group = (pl.col("type") == "group") & pl.col("group_id").is_not_null()
    updates = trait_updates.select("seq", "kind", "key", "value", "tagged").join(
        messages.select(
            "seq", ORDER, "profile_id", pl.when(is_group).then(pl.col("group_id")).alias("_acct")
        ),
        on="seq",
        how="inner",
    )
    user_latest = latest_traits(updates.filter(pl.col("kind") == "user"), "profile_id")
    groups = messages.filter(is_group)
    accounts = groups.select(pl.col("group_id").alias("account_id")).unique().sort("account_id")
    members = groups.select(pl.col("group_id").alias("account_id"), "profile_id").unique()
    account_latest = latest_traits(
        updates.filter((pl.col("kind") == "account") & pl.col("_acct").is_not_null()).rename(
            {"_acct": "account_id"}
        ),
        "account_id",
    )

    sql = matched_sql_traits(sql_traits, identity.identities,
                             accounts["account_id"].to_list(), space_config)  # fmt: skip
    if sql is not None:  # SQL traits read as custom traits holding one object each
        user_rows = sql.rows["user"].join(code_of, left_on="profile_id", right_on="_id")
        user_rows = user_rows.select(pl.col("profile_id_right").alias("profile_id"),
                                     "key", "value", "tagged")  # fmt: skip
        user_latest = with_sql_rows(user_latest, user_rows, sql.keys["user"])
        account_latest = with_sql_rows(account_latest, sql.rows["account"], sql.keys["account"])
    clock = _lap(clock, "latest traits")
    user_custom, user_custom_keys = custom_wide(user_latest, "profile_id", universe)
    account_custom, account_custom_keys = custom_wide(account_latest, "account_id", accounts)

    clock = _lap(clock, "custom wide")
    leaves = collect_leaves(space)
    is_event = pl.col("type").is_in(EVENT_TYPES)
    thin_events = messages.filter(is_event).select("profile_id", "timestamp", "seq", ORDER, "event")
    n_messages = messages.height
    # Event names as an Enum: the dozens of name masks compare small integers, not strings.
    event_names = set(thin_events["event"].drop_nulls().unique().to_list()) | _event_names(space)
    thin_events = thin_events.with_columns(pl.col("event").cast(pl.Enum(sorted(event_names))))
    count = bucketing.choose(thin_events.height, n_messages)
    # A lazy input is read again only for the events' wide columns, streamed into the spill.
    spill = bucketing.spill if isinstance(events, pl.LazyFrame) else None
    keep = is_event if in_time is None else in_time & is_event
    event_plan = _event_plan(events, thin_events, keep, wide, aligned=aligned and spill is None)
    del messages, groups, updates, thin_events  # the event plan is all the levels read
    user_events = BucketedEvents(event_plan.rename({"profile_id": ENTITY}), count,
                                 profile_bucket(count), spill / "users" if spill else None)  # fmt: skip
    users = evaluate_bucketed(
        user_events,
        entities=universe.select(pl.col("profile_id").alias(ENTITY)),
        custom=user_custom,
        custom_keys=user_custom_keys,
        traits=[t for t in space.traits if t.level == "user"],
        conditions=leaves.of("user", ir.EventCond),  # type: ignore[arg-type]
        funnels=leaves.of("user", ir.Funnel),  # type: ignore[arg-type]
        as_of=as_of,
    )
    clock = _lap(clock, f"user level ({count} buckets)")
    user_frame = users.frame.join(universe.rename({"profile_id": ENTITY}), on=ENTITY, how="left")
    user_samples = leaves.of("user", ir.Sample)
    if user_samples:
        rows = identity.identities if sample_identities is None else sample_identities
        anchors = profile_anchors(rows, space_config.identifier_types()).join(
            code_of, left_on="profile_id", right_on="_id", how="inner", suffix="_code"
        )
        anchors = anchors.select(pl.col("profile_id_code").alias(ENTITY), "id_type", "id_value")
        user_frame = with_sample_columns(user_frame, user_samples, anchors)
    user_audiences = [a for a in space.audiences if a.level == "user"]
    for audience in user_audiences:
        in_universe = pl.lit(True) if audience.include_anonymous else pl.col("_known")
        expr = in_universe & condition_expr(audience.condition, "user", leaves, users.traits)
        user_frame = user_frame.with_columns(expr.alias(audience_column(audience.key)))

    clock = _lap(clock, "user audiences")
    account_audiences = [a for a in space.audiences if a.level == "account"]
    # Each event is repeated once per account of its profile: carry only the columns the
    # account level reads (its traits' and audiences' paths), kept in event order.
    account_space = ir.Space(
        tuple(t for t in space.traits if t.level == "account"), tuple(account_audiences)
    )
    account_flat = needed_flat_columns(account_space, set(flat.columns))
    account_columns = [
        ENTITY, "timestamp", "seq", ORDER, "event",
        *[c for c, need in (("properties", account_flat.needs_properties),
                            ("context", account_flat.needs_context)) if need and c in json_text],
        *sorted(account_flat.columns),
    ]  # fmt: skip
    account_plan = (
        user_events.scan()
        .select(account_columns)
        .join(members.lazy().rename({"profile_id": ENTITY}), on=ENTITY, how="inner",
              maintain_order="left")
        .drop(ENTITY)
        .rename({"account_id": ENTITY})
    )  # fmt: skip
    account_count = _account_buckets(count, accounts.height)
    account_events = BucketedEvents(account_plan, account_count, account_bucket(account_count),
                                    spill / "accounts" if spill else None)  # fmt: skip
    account_level = evaluate_bucketed(
        account_events,
        entities=accounts.select(pl.col("account_id").alias(ENTITY)),
        custom=account_custom,
        custom_keys=account_custom_keys,
        traits=[t for t in space.traits if t.level == "account"],
        conditions=leaves.of("account", ir.EventCond),  # type: ignore[arg-type]
        funnels=leaves.of("account", ir.Funnel),  # type: ignore[arg-type]
        as_of=as_of,
    )
    del event_plan, user_events, account_plan, account_events  # no later stage reads events
    clock = _lap(clock, f"account level ({account_count} buckets)")
    account_frame = users_conditions(account_level, user_frame, members, leaves, users)
    account_frame = with_sample_columns(
        account_frame, leaves.of("account", ir.Sample), account_anchors(account_frame)
    )
    for audience in account_audiences:
        expr = condition_expr(audience.condition, "account", leaves, account_level.traits)
        account_frame = account_frame.with_columns(expr.alias(audience_column(audience.key)))

    clock = _lap(clock, "account audiences")
    user_frame = _with_ids(user_frame, ENTITY, names)
    user_latest = _with_ids(user_latest, "profile_id", names)
    members = _with_ids(members, "profile_id", names)
    memberships = _memberships(user_frame, user_audiences, "user", as_of)
    memberships = pl.concat(
        [memberships, _memberships(account_frame, account_audiences, "account", as_of)]
    )
    account_users = _account_user_memberships(memberships, members)

    clock = _lap(clock, "memberships")
    if with_user_traits:
        user_traits, user_json = native_traits(
            user_frame, user_latest, "profile_id", space, "user", user_custom_keys,
            user_audiences, keep_json.get("user_traits", ()),
        )  # fmt: skip
        user_traits = user_traits.rename({ENTITY: "profile_id"})
    else:
        user_traits, user_json = pl.DataFrame(schema={"profile_id": pl.String}), set()
    account_traits, account_json = native_traits(
        account_frame, account_latest, "account_id", space, "account", account_custom_keys,
        account_audiences, keep_json.get("account_traits", ()),
    )  # fmt: skip
    account_traits = account_traits.rename({ENTITY: "account_id"})
    if sql is not None:
        user_traits, more = expand_columns(user_traits, "profile_id", sql.rows["user"],
                                           sql.fields["user"] if with_user_traits else {})  # fmt: skip
        user_json = (user_json - set(sql.fields["user"])) | more
        account_traits, more = expand_columns(account_traits, "account_id", sql.rows["account"],
                                              sql.fields["account"])  # fmt: skip
        account_json = (account_json - set(sql.fields["account"])) | more
    clock = _lap(clock, "native traits")
    stats = {
        "messages": n_messages,
        "profiles": universe.height,
        "accounts": accounts.height,
        **{f"identity_{k}": v for k, v in identity.stats.items()},
        **(sql.stats() if sql is not None else {}),
    }
    return ComputeResult(
        as_of=as_of,
        identities=identity.identities.sort("profile_id", "id_type", "id_value"),
        user_traits=user_traits.sort("profile_id"),
        account_traits=account_traits.sort("account_id"),
        memberships=memberships,
        account_user_memberships=account_users,
        message_profiles=profiles,
        stats=stats,
        json_columns={"user_traits": user_json, "account_traits": account_json},
    )


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
    return wide_events.join(thin.lazy(), on="seq", how="inner").select(*thin.columns, *wide)


def _account_buckets(profile_buckets: int, accounts: int) -> int:
    """Account events are member events again, one copy per account: as many buckets as the
    profiles had (each bucket of accounts holds about as many events as one of profiles)."""
    return max(1, min(profile_buckets, accounts))


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


def _lap(started: float, stage: str) -> float:
    now = time.perf_counter()
    log.debug("compute stage %s: %.2fs", stage, now - started)
    return now


def users_conditions(
    account_level: LevelResult,
    user_frame: pl.DataFrame,
    members: pl.DataFrame,
    leaves: NodeColumns,
    users: LevelResult,
) -> pl.DataFrame:
    """users: any / all / none -> one column per node on the account frame."""
    frame = account_level.frame
    for node, col in leaves.of("account", ir.UsersCond).items():
        assert isinstance(node, ir.UsersCond)
        holds = user_frame.select(
            pl.col(ENTITY).alias("profile_id"),
            condition_expr(node.condition, "user", leaves, users.traits).alias("_holds"),
        )
        per_account = (
            members.join(holds, on="profile_id", how="left")
            .with_columns(pl.col("_holds").fill_null(False))
            .group_by("account_id")
            .agg(pl.col("_holds").any().alias("_any"), pl.col("_holds").all().alias("_all"))
            .rename({"account_id": ENTITY})
        )
        frame = frame.join(per_account, on=ENTITY, how="left").with_columns(
            pl.col("_any").fill_null(False), pl.col("_all").fill_null(False)
        )
        value = {"any": pl.col("_any"), "all": pl.col("_all"), "none": ~pl.col("_any")}[node.mode]
        frame = frame.with_columns(value.alias(col)).drop("_any", "_all")
    return frame


__all__ = ["ComputeResult", "compute", "computed_column"]
