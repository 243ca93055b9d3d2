"""What a destination should hold now, and the changes from what it acknowledged.

A *unit* is one (audience_key, level, entity_id) the destination tracks: a member profile of a
user audience; for an account audience, the account itself (group calls, level ``account``)
and/or each profile of its member accounts (identify/track calls, level ``user``; a profile in two
member accounts is one unit). Each unit carries the JSON of identifiers it is sent under.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from audience_pipeline.destinations.config import AudienceLink, Destination
from audience_pipeline.destinations.identifiers import (
    default_strategies,
    first_seen,
    ordered_strategies,
    select_identifiers,
)
from audience_pipeline.destinations.ledger import KEYS, SYNCED_SCHEMA
from audience_pipeline.destinations.payloads import AudienceInfo
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse import Run, require_run

CHANGE_ORDER = {"exited": 0, "entered": 1, "resynced": 2}
PLAN_COLUMNS = ["batch", "audience_key", "level", "entity_id", "change", "ids", "as_of"]


def connected_audiences(
    destination: Destination, definitions: Definitions
) -> dict[str, AudienceInfo]:
    """The audiences a destination receives (all of the space's when it says ``all``)."""
    links = destination.audiences
    if links is None:
        links = tuple(AudienceLink(a.key, destination.send, destination.account_send)
                      for a in definitions.audiences)  # fmt: skip
    out: dict[str, AudienceInfo] = {}
    for link in links:
        audience = definitions.audience(link.key)
        if audience is not None:
            out[link.key] = AudienceInfo(link.key, audience.name, audience.level, link)
    return out


def iso(moment: datetime) -> str:
    """Segment's timestamp text: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def snapshot_as_of(memberships: pl.DataFrame, run: Run) -> str:
    """When the memberships were computed (their as_of), for timestamps and messageIds."""
    if memberships.height and "as_of" in memberships.columns:
        value = memberships["as_of"].max()
        if isinstance(value, datetime):
            return iso(value)
    if run.as_of is not None:
        return iso(run.as_of)
    changes = run.table("membership_changes")
    if changes is not None and changes.height:
        value = changes["as_of"].max()
        if isinstance(value, datetime):
            return iso(value)
    mtime = run.path("memberships").stat().st_mtime
    return iso(datetime.fromtimestamp(mtime, UTC))


def _json_text(column: str) -> pl.Expr:
    encoded = pl.struct(pl.col(column).alias("x")).struct.json_encode()
    return encoded.str.slice(5, encoded.str.len_chars() - 6)  # characters, not bytes


def current_units(
    destination: Destination,
    definitions: Definitions,
    audiences: dict[str, AudienceInfo],
    warehouse_dir: Path,
) -> tuple[pl.DataFrame, str]:
    """``audience_key, level, entity_id, ids`` the destination should hold, and the snapshot time.

    Raises:
        FileNotFoundError: the warehouse has no memberships table (run compute first).
    """
    run = require_run(warehouse_dir)  # resolved once: every table below is of this run
    memberships = run.table("memberships")
    assert memberships is not None
    as_of = snapshot_as_of(memberships, run)
    account_keys = [k for k, a in audiences.items() if a.level == "account"
                    and "group" in a.link.account_send]  # fmt: skip
    parts: list[pl.DataFrame] = []
    profiles = _profiles_to_send(run, memberships, audiences)
    if profiles.height:
        parts.append(_user_units(run, profiles, destination, definitions))
    accounts = memberships.filter(
        (pl.col("level") == "account") & pl.col("audience_key").is_in(account_keys)
    )
    if accounts.height:
        parts.append(accounts.select(
            "audience_key", pl.lit("account").alias("level"), "entity_id",
            (pl.lit('{"group_id":[') + _json_text("entity_id") + pl.lit("]}")).alias("ids"),
        ))  # fmt: skip
    units = pl.concat(parts) if parts else pl.DataFrame(schema=SYNCED_SCHEMA)
    return units.cast(SYNCED_SCHEMA).unique(KEYS, keep="first"), as_of  # type: ignore[arg-type]


def _profiles_to_send(
    run: Run, memberships: pl.DataFrame, audiences: dict[str, AudienceInfo]
) -> pl.DataFrame:
    """audience_key, profile_id: members of user audiences, and the member profiles of account
    audiences sent per member (identify/track)."""
    profile_keys = [k for k, a in audiences.items() if a.level == "user"]
    member_keys = [k for k, a in audiences.items() if a.level == "account"
                   and any(c != "group" for c in a.link.account_send)]  # fmt: skip
    profiles = memberships.filter(
        (pl.col("level") == "user") & pl.col("audience_key").is_in(profile_keys)
    ).select("audience_key", pl.col("entity_id").alias("profile_id"))
    if member_keys:
        members = run.table("account_user_memberships")
        if members is not None:
            profiles = pl.concat([
                profiles,
                members.filter(pl.col("audience_key").is_in(member_keys))
                .select("audience_key", "profile_id").unique(maintain_order=True),
            ])  # fmt: skip
    return profiles


def _user_units(
    run: Run, profiles: pl.DataFrame, destination: Destination, definitions: Definitions
) -> pl.DataFrame:
    """One unit per (audience, profile) with the identifiers the destination's strategies pick."""
    identities = run.table("identities")
    if identities is None:
        identities = pl.DataFrame(schema={"profile_id": pl.String, "id_type": pl.String,
                                          "id_value": pl.String})  # fmt: skip
    strategies = ordered_strategies(
        destination.identifiers or default_strategies(definitions.space), definitions.space
    )
    needs_order = any(s != "all" for s in strategies.values())
    order = first_seen(run.folder, identities) if needs_order else None
    wanted = identities.join(profiles.select("profile_id").unique(), on="profile_id", how="semi")
    ids = select_identifiers(wanted, strategies, order)
    return profiles.join(ids, on="profile_id", how="inner").select(
        "audience_key",
        pl.lit("user").alias("level"),
        pl.col("profile_id").alias("entity_id"),
        "ids",
    )  # fmt: skip


def plan_changes(
    units: pl.DataFrame, synced: pl.DataFrame, as_of: str, batch_size: int
) -> pl.DataFrame:
    """Changes that bring ``synced`` to ``units``, exits first, numbered into batches.

    Exits go first so that when profiles merge (one id leaves, another enters under the same
    identifiers) a receiver keyed by identifier ends with the entry.
    """
    entered = units.join(synced, on=KEYS, how="anti").with_columns(
        pl.lit("entered").alias("change")
    )
    exited = synced.join(units, on=KEYS, how="anti").with_columns(pl.lit("exited").alias("change"))
    resynced = (
        units.join(synced.rename({"ids": "old_ids"}), on=KEYS, how="inner")
        .filter(pl.col("ids") != pl.col("old_ids"))
        .drop("old_ids")
        .with_columns(pl.lit("resynced").alias("change"))
    )
    changes = pl.concat([exited, entered, resynced], how="diagonal").select(*KEYS, "change", "ids")
    rank = pl.col("change").replace_strict(CHANGE_ORDER, return_dtype=pl.Int8)
    return (
        changes.sort(rank, "audience_key", "level", "entity_id")
        .with_columns(
            (pl.int_range(0, pl.len(), dtype=pl.Int64) // batch_size + 1).alias("batch"),
            pl.lit(as_of).alias("as_of"),
        )
        .select(PLAN_COLUMNS)
    )
