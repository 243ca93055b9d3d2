"""The sync ledger of one destination: what it has acknowledged, and what is on its way.

One SQLite file per destination (``<warehouse>/_destinations/<name>.sqlite``), so destinations
never wait on each other's locks. Three tables:

- ``synced``: per (audience_key, level, entity_id) the identifiers it was last sent under. This is
  the destination's state as far as we know it; the next sync sends the diff against it.
- ``outbox``: planned changes, grouped into numbered batches. A batch is planned once and then
  sent with the same content (and so the same messageIds) until it is acknowledged.
- ``runs``: one row per sync attempt (status, counts, error) for reports and the sensor.

Acknowledging a batch (applying it to ``synced`` and deleting it from ``outbox``) is one
transaction, so a crash at any point either leaves the batch pending (it is sent again with the
same messageIds) or applied (it is never sent again).
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

LEDGER_DIR = "_destinations"
KEYS = ["audience_key", "level", "entity_id"]
SYNCED_SCHEMA = {"audience_key": pl.String, "level": pl.String, "entity_id": pl.String,
                 "ids": pl.String}  # fmt: skip
OUTBOX_SCHEMA = {
    "seq": pl.Int64, "batch": pl.Int64, "audience_key": pl.String, "level": pl.String,
    "entity_id": pl.String, "change": pl.String, "ids": pl.String, "as_of": pl.String,
}  # fmt: skip

_DDL = """
CREATE TABLE IF NOT EXISTS synced (
    audience_key TEXT NOT NULL, level TEXT NOT NULL, entity_id TEXT NOT NULL,
    ids TEXT NOT NULL, as_of TEXT NOT NULL,
    PRIMARY KEY (audience_key, level, entity_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY, batch INTEGER NOT NULL, audience_key TEXT NOT NULL,
    level TEXT NOT NULL, entity_id TEXT NOT NULL, change TEXT NOT NULL, ids TEXT NOT NULL,
    as_of TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_batch ON outbox (batch);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
    sent INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
    pending INTEGER NOT NULL DEFAULT 0, snapshot_as_of TEXT, error TEXT
);
"""


class LedgerBusy(RuntimeError):
    """Another sync of the same destination holds the ledger."""


@dataclass(frozen=True)
class LastRun:
    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str
    snapshot_as_of: str | None


def ledger_path(warehouse_dir: str | Path, destination: str) -> Path:
    return Path(warehouse_dir) / LEDGER_DIR / f"{destination}.sqlite"


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Ledger:
    """Open with :meth:`locked`; all writes are short transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a batch's ack is one unit.
        self.con = sqlite3.connect(path, isolation_level=None, timeout=30)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=FULL")
        self.con.executescript(_DDL)

    @classmethod
    @contextmanager
    def locked(cls, path: Path) -> Iterator[Ledger]:
        """The ledger, held exclusively by this process for the duration (else LedgerBusy)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(str(path) + ".lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as error:
                msg = f"another sync of {path.stem} is running"
                raise LedgerBusy(msg) from error
            ledger = cls(path)
            try:
                yield ledger
            finally:
                ledger.con.close()
        finally:
            os.close(lock_fd)  # closing releases the flock

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.con.execute("BEGIN IMMEDIATE")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # --- state -----------------------------------------------------------------------------

    def synced(self) -> pl.DataFrame:
        rows = self.con.execute("SELECT audience_key, level, entity_id, ids FROM synced").fetchall()
        return pl.DataFrame(rows, schema=SYNCED_SCHEMA, orient="row")

    def forget_audiences(self, keep: set[str]) -> list[str]:
        """Drop the synced state of audiences no longer connected (a reconnect backfills)."""
        known = [r[0] for r in self.con.execute("SELECT DISTINCT audience_key FROM synced")]
        dropped = [k for k in known if k not in keep]
        with self.transaction() as con:
            con.executemany("DELETE FROM synced WHERE audience_key = ?", [(k,) for k in dropped])
        return dropped

    # --- outbox ----------------------------------------------------------------------------

    def pending_count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def enqueue(self, changes: pl.DataFrame) -> int:
        """Append planned changes (columns of OUTBOX_SCHEMA but seq) in one transaction."""
        if changes.is_empty():
            return 0
        start_seq = int(self.con.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0])
        start_batch = int(
            self.con.execute("SELECT coalesce(max(batch), 0) FROM outbox").fetchone()[0]
        )
        # Batch numbers keep increasing across plans only within the outbox; after it drains
        # they restart, which is fine: a batch's identity is its content, not its number.
        frame = changes.select(
            (pl.int_range(1, pl.len() + 1, dtype=pl.Int64) + start_seq).alias("seq"),
            (pl.col("batch") + start_batch).alias("batch"),
            *[c for c in OUTBOX_SCHEMA if c not in ("seq", "batch")],
        )
        with self.transaction() as con:
            con.executemany(
                "INSERT INTO outbox (seq, batch, audience_key, level, entity_id, change, ids, "
                "as_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                frame.iter_rows(),
            )
        return frame.height

    def batch_sizes(self) -> list[tuple[int, int]]:
        """(batch, rows) of every pending batch, in order."""
        query = "SELECT batch, count(*) FROM outbox GROUP BY batch ORDER BY batch"
        return [(int(b), int(n)) for b, n in self.con.execute(query)]

    def batches(self, first: int, last: int) -> pl.DataFrame:
        """The outbox rows of batches ``first`` to ``last`` in one read, in order."""
        rows = self.con.execute(
            "SELECT seq, batch, audience_key, level, entity_id, change, ids, as_of FROM outbox "
            "WHERE batch BETWEEN ? AND ? ORDER BY seq",
            (first, last),
        ).fetchall()
        return pl.DataFrame(rows, schema=OUTBOX_SCHEMA, orient="row")

    def batch(self, batch: int) -> pl.DataFrame:
        rows = self.con.execute(
            "SELECT seq, batch, audience_key, level, entity_id, change, ids, as_of FROM outbox "
            "WHERE batch = ? ORDER BY seq",
            (batch,),
        ).fetchall()
        return pl.DataFrame(rows, schema=OUTBOX_SCHEMA, orient="row")

    def acknowledge(self, batch: int) -> int:
        """The destination has the batch: apply it to ``synced`` and drop it, atomically."""
        with self.transaction() as con:
            # Point deletes by primary key: a row-value IN (subquery) scans all of synced.
            exits = con.execute(
                "SELECT audience_key, level, entity_id FROM outbox "
                "WHERE batch = ? AND change = 'exited'",
                (batch,),
            ).fetchall()
            con.executemany(
                "DELETE FROM synced WHERE audience_key = ? AND level = ? AND entity_id = ?", exits
            )
            con.execute(
                "INSERT OR REPLACE INTO synced (audience_key, level, entity_id, ids, as_of) "
                "SELECT audience_key, level, entity_id, ids, as_of FROM outbox "
                "WHERE batch = ? AND change IN ('entered', 'resynced') ORDER BY seq",
                (batch,),
            )
            done = con.execute("DELETE FROM outbox WHERE batch = ?", (batch,)).rowcount
        return int(done)

    # --- runs ------------------------------------------------------------------------------

    def start_run(self) -> int:
        with self.transaction() as con:
            cur = con.execute(
                "INSERT INTO runs (started_at, status) VALUES (?, 'running')", (_now(),)
            )
        return int(cur.lastrowid or 0)

    def finish_run(self, run_id: int, status: str, *, sent: int, failed: int, pending: int,
                   snapshot_as_of: str | None, error: str | None) -> None:  # fmt: skip
        with self.transaction() as con:
            con.execute(
                "UPDATE runs SET finished_at = ?, status = ?, sent = ?, failed = ?, pending = ?, "
                "snapshot_as_of = ?, error = ? WHERE run_id = ?",
                (_now(), status, sent, failed, pending, snapshot_as_of, error, run_id),
            )

    def last_run(self, *, status: str | None = None) -> LastRun | None:
        query = "SELECT run_id, started_at, finished_at, status, snapshot_as_of FROM runs"
        params: tuple[str, ...] = ()
        if status is not None:
            query += " WHERE status = ?"
            params = (status,)
        row = self.con.execute(query + " ORDER BY run_id DESC LIMIT 1", params).fetchone()
        if row is None:
            return None
        finished = datetime.fromisoformat(row[2]) if row[2] else None
        return LastRun(int(row[0]), datetime.fromisoformat(row[1]), finished, row[3], row[4])


def read_last_run(warehouse_dir: str | Path, destination: str) -> LastRun | None:
    """The latest run without taking the lock (for sensors and reports)."""
    path = ledger_path(warehouse_dir, destination)
    if not path.exists():
        return None
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        row = con.execute(
            "SELECT run_id, started_at, finished_at, status, snapshot_as_of FROM runs "
            "ORDER BY run_id DESC LIMIT 1"
        ).fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()
    if row is None:
        return None
    finished = datetime.fromisoformat(row[2]) if row[2] else None
    return LastRun(int(row[0]), datetime.fromisoformat(row[1]), finished, row[3], row[4])
