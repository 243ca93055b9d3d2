"""Daily membership snapshots, and "who was a member on day D" read from SCD-2 history.

A day's snapshot is the membership as the last run of that day (in the space's timezone) left
it. History rows are stamped with run as-ofs, so the state at the end of day D is every row with
valid_from before the next day's start and valid_to (exit) at or after it, or still open.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import polars as pl

KEYS = ["audience_key", "level", "entity_id"]
SNAPSHOTS_SCHEMA = {
    "snapshot_date": pl.Date,
    "audience_key": pl.String,
    "level": pl.String,
    "entity_id": pl.String,
}


def day_of(as_of: datetime, timezone: str) -> date:
    """The calendar day of an as-of in the space's timezone."""
    return as_of.astimezone(ZoneInfo(timezone)).date()


def day_end(day: date, timezone: str) -> datetime:
    """The first instant after `day` in the space's timezone (the next day's midnight)."""
    return datetime.combine(day + timedelta(days=1), time(), tzinfo=ZoneInfo(timezone))


def take_snapshot(
    previous: pl.DataFrame | None, memberships: pl.DataFrame, as_of: datetime, timezone: str
) -> pl.DataFrame:
    """Snapshots with the day of `as_of` replaced by the current memberships.

    Args:
        previous: the snapshots table so far (or None).
        memberships: the memberships of the run (audience_key, level, entity_id, ...).
        as_of: the run's as-of; its day in `timezone` names the snapshot.
        timezone: the space's timezone.

    Returns:
        snapshot_date, audience_key, level, entity_id; one day's rows per run day, sorted.
    """
    day = day_of(as_of, timezone)
    today = memberships.select(pl.lit(day).alias("snapshot_date"), *KEYS)
    kept = (
        previous.filter(pl.col("snapshot_date") != day)
        if previous is not None
        else pl.DataFrame(schema=SNAPSHOTS_SCHEMA)
    )
    return pl.concat([kept.cast(SNAPSHOTS_SCHEMA), today.cast(SNAPSHOTS_SCHEMA)]).sort(  # type: ignore[arg-type]
        "snapshot_date", *KEYS
    )


def members_on(history: pl.DataFrame, day: date, timezone: str) -> pl.DataFrame:
    """Who was in each audience at the end of `day`, from membership_history (SCD-2)."""
    end = day_end(day, timezone)
    stamp = pl.lit(end).cast(pl.Datetime("us", "UTC"))
    return (
        history.filter(
            (pl.col("valid_from") < stamp)
            & (pl.col("valid_to").is_null() | (pl.col("valid_to") >= stamp))
        )
        .select(KEYS)
        .unique()
        .sort(KEYS)
    )


def snapshot_of(snapshots: pl.DataFrame, day: date) -> pl.DataFrame:
    """The snapshot rows of one day, without the date column."""
    return snapshots.filter(pl.col("snapshot_date") == day).select(KEYS).sort(KEYS)


__all__ = ["day_end", "day_of", "members_on", "snapshot_of", "take_snapshot"]
