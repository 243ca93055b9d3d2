"""`postgres`: current membership upserted into a table, every change appended to a log.

Tables (created if missing; schema ``settings.schema``, names prefixed by
``settings.table_prefix``, default ``audience_``):

- ``<prefix>memberships``: destination, audience_key, level, entity_id, external_ids (jsonb),
  as_of, synced_at; primary key (destination, audience_key, level, entity_id).
- ``<prefix>membership_changes``: message_id (primary key), destination, audience_key, level,
  entity_id, change (entered / exited), external_ids, as_of, synced_at.

Each batch is one transaction (COPY of the batch as CSV into a temporary table, then one upsert,
one delete and one append, each a single statement over it), and is
idempotent: a resent batch upserts the same rows and its log rows are skipped by message_id.
The DSN comes from the environment variable named by ``settings.dsn_env``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import polars as pl
import psycopg
from psycopg import sql

from audience_pipeline.destinations.base import SendContext
from audience_pipeline.destinations.hashing import sha256_hex
from audience_pipeline.destinations.retry import (
    PermanentError,
    RateLimiter,
    RetryStats,
    TransientError,
    call_with_retries,
)


class PostgresSender:
    def __init__(self, ctx: SendContext) -> None:
        settings = ctx.destination.settings
        self.ctx = ctx
        self.dsn = ctx.destination.secret("dsn_env") or ""
        schema = str(settings.get("schema", "public"))
        prefix = str(settings.get("table_prefix", "audience_"))
        self.schema = sql.Identifier(schema)
        self.members = sql.Identifier(schema, prefix + "memberships")
        self.changes = sql.Identifier(schema, prefix + "membership_changes")
        self.limiter = RateLimiter(ctx.destination.rate_limit)
        self.stats = RetryStats()
        self.conn: psycopg.Connection | None = None
        self.messages = 0
        self.requests = 0
        self._ready = False

    @property
    def retries(self) -> int:
        return self.stats.retries

    def _connection(self) -> psycopg.Connection:
        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(
                self.dsn, connect_timeout=int(self.ctx.destination.timeout_seconds)
            )
            self._ready = False
        if not self._ready:
            with self.conn.transaction():
                self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(self.schema))
                self.conn.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (destination text NOT NULL, "
                    "audience_key text NOT NULL, level text NOT NULL, entity_id text NOT NULL, "
                    "external_ids jsonb NOT NULL, as_of timestamptz NOT NULL, "
                    "synced_at timestamptz NOT NULL, "
                    "PRIMARY KEY (destination, audience_key, level, entity_id))"
                ).format(self.members))  # fmt: skip
                self.conn.execute(sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (message_id text PRIMARY KEY, "
                    "destination text NOT NULL, audience_key text NOT NULL, level text NOT NULL, "
                    "entity_id text NOT NULL, change text NOT NULL, external_ids jsonb NOT NULL, "
                    "as_of timestamptz NOT NULL, synced_at timestamptz NOT NULL)"
                ).format(self.changes))  # fmt: skip
                self.conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS ap_batch (message_id text, audience_key text, "
                    "level text, entity_id text, change text, external_ids jsonb, as_of timestamptz)"
                )
            self._ready = True
        return self.conn

    def _csv(self, batch: pl.DataFrame) -> bytes:
        """The batch as CSV for COPY, messageIds hashed column-wise (as ``message_id`` would)."""
        text = pl.concat_str(
            [pl.lit(self.ctx.destination.name), "audience_key", "level", "entity_id", "change",
             "as_of", "ids", pl.lit("row"), pl.lit("0")], separator="\x1f",
        )  # fmt: skip
        rows = batch.select(text.alias("text"), "audience_key", "level", "entity_id", "change",
                            "ids", "as_of")  # fmt: skip
        mids = "ap-" + sha256_hex(rows["text"]).str.slice(0, 32)
        return (
            rows.with_columns(mids.alias("text"))
            .write_csv(include_header=False, quote_style="always")
            .encode()
        )

    def send(self, batch: pl.DataFrame) -> None:
        data = self._csv(batch)
        name = self.ctx.destination.name
        kinds = set(batch["change"].unique().to_list())

        def attempt() -> None:
            self.requests += 1
            try:
                conn = self._connection()
                with conn.transaction():
                    conn.execute("TRUNCATE ap_batch")
                    with conn.cursor().copy(
                        "COPY ap_batch (message_id, audience_key, level, entity_id, change, "
                        "external_ids, as_of) FROM STDIN (FORMAT csv)"
                    ) as copy:
                        copy.write(data)
                    # Statements with nothing to do are skipped: the batch table has no
                    # statistics, so even an empty DELETE ... USING could scan the memberships.
                    if kinds & {"entered", "resynced"}:
                        conn.execute(sql.SQL(
                            "INSERT INTO {} AS m (destination, audience_key, level, entity_id, "
                            "external_ids, as_of, synced_at) SELECT %s, audience_key, level, "
                            "entity_id, external_ids, as_of, now() FROM ap_batch "
                            "WHERE change IN ('entered', 'resynced') "
                            "ON CONFLICT (destination, audience_key, level, entity_id) DO UPDATE "
                            "SET external_ids = EXCLUDED.external_ids, as_of = EXCLUDED.as_of, "
                            "synced_at = EXCLUDED.synced_at"
                        ).format(self.members), (name,))  # fmt: skip
                    if "exited" in kinds:
                        conn.execute("ANALYZE ap_batch")  # so exits delete by primary key
                        conn.execute(sql.SQL(
                            "DELETE FROM {} AS m USING ap_batch AS b WHERE m.destination = %s "
                            "AND b.change = 'exited' AND m.audience_key = b.audience_key "
                            "AND m.level = b.level AND m.entity_id = b.entity_id"
                        ).format(self.members), (name,))  # fmt: skip
                    if kinds & {"entered", "exited"}:
                        conn.execute(sql.SQL(
                            "INSERT INTO {} (message_id, destination, audience_key, level, "
                            "entity_id, change, external_ids, as_of, synced_at) SELECT "
                            "message_id, %s, audience_key, level, entity_id, change, "
                            "external_ids, as_of, now() FROM ap_batch "
                            "WHERE change IN ('entered', 'exited') "
                            "ON CONFLICT (message_id) DO NOTHING"
                        ).format(self.changes), (name,))  # fmt: skip
            except psycopg.OperationalError as error:
                self._drop()
                msg = f"database connection: {str(error).strip()[:200]}"
                raise TransientError(msg) from error
            except psycopg.Error as error:
                self._drop()
                raise PermanentError(str(error).strip()[:300]) from error

        call_with_retries(attempt, self.ctx.policy, stats=self.stats, limiter=self.limiter,
                          what=f"{name}: postgres batch")  # fmt: skip
        self.messages += batch.height

    def _drop(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(psycopg.Error):
                self.conn.close()
        self.conn = None

    def finish(self, synced: Callable[[], pl.DataFrame]) -> None:
        return None

    def close(self) -> None:
        self._drop()
