"""The churn guard: hold an audience's changes when one sync would move it too much.

A destination's ``max_change`` is a share of the audience's previous size at the destination
(a float: ``0.25`` allows entered + exited up to a quarter of the members it acknowledged) or a
count of changes (an integer: ``500``). A sync whose entered + exited for one audience exceed
it sends nothing for that audience: the planned changes are kept in the ledger's
``held_changes`` with a ``holds`` row carrying the numbers, and ``sync DEST --approve KEY``
later sends exactly those changes. The first sync of an audience (its backfill) is never held.

Sizes and changes are counted in the units the destination tracks (``units.py``): member
profiles of a user audience; the accounts and/or member profiles of an account audience.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import polars as pl

from audience_pipeline.destinations.ledger import Ledger

HELD_COLUMNS = ["audience_key", "level", "entity_id", "change", "ids", "as_of"]
HELD_SCHEMA = {c: pl.String for c in HELD_COLUMNS}
COUNTED = ("entered", "exited")  # resyncs do not change membership and never count

_DDL = """
CREATE TABLE IF NOT EXISTS holds (
    hold_id INTEGER PRIMARY KEY, run_id INTEGER, audience_key TEXT NOT NULL,
    held_at TEXT NOT NULL, snapshot_as_of TEXT, previous_size INTEGER NOT NULL,
    entered INTEGER NOT NULL, exited INTEGER NOT NULL, max_change REAL NOT NULL,
    change_limit REAL NOT NULL, status TEXT NOT NULL, resolved_at TEXT
);
CREATE TABLE IF NOT EXISTS held_changes (
    seq INTEGER PRIMARY KEY, audience_key TEXT NOT NULL, level TEXT NOT NULL,
    entity_id TEXT NOT NULL, change TEXT NOT NULL, ids TEXT NOT NULL, as_of TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS seen_audiences (
    audience_key TEXT PRIMARY KEY, first_planned_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Hold:
    """One audience's changes held back by ``max_change``."""

    audience_key: str
    previous_size: int
    entered: int
    exited: int
    max_change: float | int
    change_limit: float  # entered + exited allowed
    snapshot_as_of: str

    def describe(self) -> str:
        """One line for people: the numbers and what the limit allowed."""
        kind = "share" if isinstance(self.max_change, float) else "count"
        return (
            f"{self.audience_key}: +{self.entered} / -{self.exited} against {self.previous_size} "
            f"synced exceeds max_change {self.max_change} ({kind}: at most "
            f"{_number(self.change_limit)} changes)"
        )

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def change_limit(max_change: float | int, previous_size: int) -> float:
    """How many entries + exits one sync may carry for an audience of ``previous_size``."""
    if isinstance(max_change, float):
        return max_change * previous_size
    return float(max_change)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class HoldStore:
    """The guard's tables inside a destination's ledger (same SQLite file and lock)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.con: sqlite3.Connection = ledger.con
        self.con.executescript(_DDL)

    def open_holds(self) -> dict[str, Hold]:
        rows = self.con.execute(
            "SELECT audience_key, previous_size, entered, exited, max_change, change_limit, "
            "snapshot_as_of FROM holds WHERE status = 'held' ORDER BY hold_id"
        ).fetchall()
        return {r[0]: Hold(r[0], int(r[1]), int(r[2]), int(r[3]), _stored(r[4]), float(r[5]),
                           r[6] or "") for r in rows}  # fmt: skip

    def seen(self) -> set[str]:
        return {r[0] for r in self.con.execute("SELECT audience_key FROM seen_audiences")}

    def mark_seen(self, keys: set[str]) -> None:
        with self.ledger.transaction() as con:
            con.executemany(
                "INSERT OR IGNORE INTO seen_audiences (audience_key, first_planned_at) "
                "VALUES (?, ?)",
                [(k, _now()) for k in sorted(keys)],
            )

    def forget(self, keep: set[str]) -> None:
        """Disconnected audiences: drop their holds and history (a reconnect backfills)."""
        seen = self.seen()
        held = {r[0] for r in self.con.execute("SELECT DISTINCT audience_key FROM held_changes")}
        gone = sorted((seen | held | set(self.open_holds())) - keep)
        if not gone:
            return
        with self.ledger.transaction() as con:
            rows = [(k,) for k in gone]
            con.executemany("DELETE FROM seen_audiences WHERE audience_key = ?", rows)
            for key in gone:
                self._close(con, key, "disconnected")

    def record(self, run_id: int, holds: list[Hold], rows: pl.DataFrame) -> None:
        """Replace each audience's open hold with this sync's (its changes are the newest)."""
        with self.ledger.transaction() as con:
            for hold in holds:
                self._close(con, hold.audience_key, "superseded")
                con.execute(
                    "INSERT INTO holds (run_id, audience_key, held_at, snapshot_as_of, "
                    "previous_size, entered, exited, max_change, change_limit, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'held')",
                    (run_id, hold.audience_key, _now(), hold.snapshot_as_of, hold.previous_size,
                     hold.entered, hold.exited, hold.max_change, hold.change_limit),
                )  # fmt: skip
            con.executemany(
                "INSERT INTO held_changes (audience_key, level, entity_id, change, ids, as_of) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                rows.select(HELD_COLUMNS).iter_rows(),
            )

    def close(self, keys: list[str], status: str) -> None:
        """End the open holds of ``keys`` (``approved``, or ``superseded`` when a later sync sent
        the audience within the limit) and drop their held changes."""
        with self.ledger.transaction() as con:
            for key in keys:
                self._close(con, key, status)

    def held_changes(self, keys: list[str]) -> pl.DataFrame:
        """The held changes of ``keys``, in their planned order.

        Raises:
            ValueError: a key has no open hold.
        """
        open_keys = self.open_holds()
        missing = [k for k in keys if k not in open_keys]
        if missing:
            held = ", ".join(sorted(open_keys)) or "none"
            msg = f"--approve: no held changes for {', '.join(missing)} (held: {held})"
            raise ValueError(msg)
        rows = [
            row
            for key in keys
            for row in self.con.execute(
                "SELECT audience_key, level, entity_id, change, ids, as_of FROM held_changes "
                "WHERE audience_key = ? ORDER BY seq",
                (key,),
            )
        ]
        return pl.DataFrame(rows, schema=HELD_SCHEMA, orient="row")

    @staticmethod
    def _close(con: sqlite3.Connection, key: str, status: str) -> None:
        con.execute(
            "UPDATE holds SET status = ?, resolved_at = ? WHERE audience_key = ? AND status = 'held'",
            (status, _now(), key),
        )
        con.execute("DELETE FROM held_changes WHERE audience_key = ?", (key,))


def _stored(value: float) -> float | int:
    # SQLite REAL loses the int/float distinction that decides count vs share; counts are whole.
    return int(value) if float(value).is_integer() else float(value)


def holds_for(
    plan: pl.DataFrame,
    synced: pl.DataFrame,
    known: set[str],
    max_change: float | int,
    snapshot_as_of: str,
) -> list[Hold]:
    """The audiences of ``plan`` whose entered + exited exceed ``max_change``.

    Args:
        plan: planned changes (``audience_key``, ``change``, ...).
        synced: what the destination acknowledged (one row per unit).
        known: audiences synced before; the others are backfills and never held.
        max_change: share (float) or count (int).
        snapshot_as_of: the memberships snapshot the plan brings the destination to.
    """
    counted = plan.filter(pl.col("change").is_in(COUNTED))
    if counted.is_empty():
        return []
    per_audience = counted.group_by("audience_key").agg(
        (pl.col("change") == "entered").sum().alias("entered"),
        (pl.col("change") == "exited").sum().alias("exited"),
    )
    sizes = dict(synced.group_by("audience_key").len().iter_rows())
    holds = []
    for key, entered, exited in per_audience.sort("audience_key").iter_rows():
        if key not in known:
            continue
        previous = int(sizes.get(key, 0))
        limit = change_limit(max_change, previous)
        if entered + exited > limit:
            holds.append(Hold(key, previous, int(entered), int(exited), max_change, limit,
                              snapshot_as_of))  # fmt: skip
    return holds


def renumber(rows: pl.DataFrame, batch_size: int) -> pl.DataFrame:
    """Rows in their order, numbered into batches of ``batch_size`` from 1."""
    return rows.with_columns(
        (pl.int_range(0, pl.len(), dtype=pl.Int64) // batch_size + 1).alias("batch")
    )


__all__ = ["Hold", "HoldStore", "change_limit", "holds_for", "renumber"]
