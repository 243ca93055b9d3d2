"""`compute --engine postgres`: the same tables as the Polars engine, computed inside PostgreSQL.

The run's normalized messages are loaded once (COPY) into temporary tables of one session;
identity (`postgres_identity`), the profiles, accounts, members and latest custom traits, and the
compiled SQL of every trait and audience (`compiler`, postgres dialect) then run in PostgreSQL.
What comes back is the size of the outputs (one row per profile or account, and the latest
custom traits), shaped into the output tables by the code the DuckDB engine uses.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

import polars as pl
import psycopg

from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.assemble import assemble_result
from audience_pipeline.sql.compiler import SpaceSql, build_space_sql
from audience_pipeline.sql.custom_traits import flattened
from audience_pipeline.sql.dialects import Postgres
from audience_pipeline.sql.postgres_identity import resolve_identities_pg
from audience_pipeline.sql.postgres_tables import connect, fetch, load_temp
from audience_pipeline.sql.relations import Inputs, bind_as_of
from audience_pipeline.sqltraits.columns import with_sql_rows
from audience_pipeline.sqltraits.match import matched_sql_traits
from audience_pipeline.sqltraits.run import SqlTraitResult
from audience_pipeline.tables.result import KNOWN_TYPES, ComputeResult

log = logging.getLogger(__name__)

# Fixed statements over our own temporary tables (no definition or data text enters them).
_KNOWN = ", ".join(f"'{t}'" for t in KNOWN_TYPES)
_RELATIONS = (
    "CREATE TEMP TABLE _ap_msgs AS SELECT m.*, p.profile_id FROM _ap_messages m "
    "JOIN _ap_profiles_of p ON p.seq = m.seq",
    "CREATE TEMP VIEW ap_events AS SELECT profile_id, timestamp, message_id, seq, event, "
    "properties, context FROM _ap_msgs WHERE type IN ('track', 'page', 'screen')",
    "CREATE TEMP TABLE ap_profiles AS SELECT o.profile_id, COALESCE(k.known, FALSE) AS known "
    "FROM (SELECT DISTINCT profile_id FROM _ap_msgs) o LEFT JOIN (SELECT profile_id, "
    f"bool_or(id_type IN ({_KNOWN})) AS known FROM _ap_identities GROUP BY profile_id) k "
    "ON k.profile_id = o.profile_id",
    "CREATE TEMP VIEW _ap_groups AS SELECT seq, timestamp, message_id, group_id AS account_id, "
    "profile_id FROM _ap_msgs WHERE type = 'group' AND group_id IS NOT NULL",
    "CREATE TEMP TABLE ap_accounts AS SELECT DISTINCT account_id FROM _ap_groups",
    "CREATE TEMP TABLE ap_account_members AS SELECT DISTINCT account_id, profile_id "
    "FROM _ap_groups",
)
# Per (owner, key) the latest non-null custom trait value (as `sql.compute._LATEST`).
_LATEST = """
SELECT owner, key, value, tagged FROM (
  SELECT o.owner, u.key, u.value,
    CASE WHEN left(u.tagged, 1) = '"' THEN u.tagged::json #>> '{{}}'
         ELSE 'o' || u.value END AS tagged,
    ROW_NUMBER() OVER (PARTITION BY o.owner, u.key ORDER BY o.timestamp DESC,
      (o.message_id IS NULL) DESC, o.message_id DESC, o.seq DESC) AS rn
  FROM _ap_updates u JOIN (SELECT seq, timestamp, message_id, {owner} AS owner FROM {source}) o
    ON o.seq = u.seq WHERE u.kind = '{kind}'
) r WHERE rn = 1
"""
_LEVELS = (
    ("user", "profile_id", "_ap_msgs", "ap_user_traits"),
    ("account", "account_id", "_ap_groups", "ap_account_traits"),
)


def prepare_inputs_pg(cur: psycopg.Cursor, events: pl.DataFrame, trait_updates: pl.DataFrame,
                      space_config: SpaceConfig, as_of: datetime,
                      sql_traits: list[SqlTraitResult] | None = None) -> dict[str, object]:  # fmt: skip
    """Create the SQL backend's input relations (see `relations`) as temporary tables (as
    `sql.compute.prepare_inputs` does in DuckDB, SQL trait rows included)."""
    messages = events.filter(pl.col("timestamp") <= as_of)
    identity = resolve_identities_pg(
        cur,
        messages.select("seq", "message_id", "type", "timestamp", "ids", "previous_id"),
        space_config,
    )
    base = messages.select(
        "seq", "message_id", "type", "event", "timestamp", "group_id", "properties", "context"
    )
    load_temp(cur, "_ap_messages", base)
    load_temp(cur, Inputs().identities, identity.identities)  # read by `sample` nodes
    for statement in _RELATIONS:
        cur.execute(statement)
    accounts = fetch(cur, "SELECT account_id FROM ap_accounts")
    sql = matched_sql_traits(sql_traits, identity.identities, accounts["account_id"].to_list(),
                             space_config)  # fmt: skip
    load_temp(cur, "_ap_updates", trait_updates.select("seq", "kind", "key", "value", "tagged"))
    latest: dict[str, pl.DataFrame] = {}
    for kind, owner, source, target in _LEVELS:
        query = _LATEST.format(owner=owner, source=source, kind=kind)
        frame = fetch(cur, query).rename({"owner": owner})
        frame = frame.cast({"value": pl.String, "tagged": pl.String})
        if sql is not None:  # SQL traits read as custom traits holding one object each
            frame = with_sql_rows(frame, sql.rows[kind], sql.keys[kind])
        latest[kind] = frame
        load_temp(cur, target, flattened(frame, owner))
    for name in ("ap_profiles", "ap_accounts", "ap_account_members", "ap_user_traits",
                 "ap_account_traits", "_ap_msgs"):  # fmt: skip
        cur.execute(f"ANALYZE {name}")
    return {
        "identity": identity,
        "user_latest": latest["user"],
        "account_latest": latest["account"],
        "messages": messages.height,
        "sql_traits": sql,
    }


def run_space_sql_pg(cur: psycopg.Cursor, compiled: SpaceSql,
                     as_of: datetime) -> dict[str, pl.DataFrame]:  # fmt: skip
    """Run both levels' SQL; each level's frame is a temporary table (the account level reads
    the user frame), returned as a Polars frame."""
    literal = compiled.dialect.timestamp(as_of.isoformat())
    frames: dict[str, pl.DataFrame] = {}
    for level, frame in (("user", compiled.user_frame), ("account", compiled.account_frame)):
        if frame is None:
            continue
        query = bind_as_of(compiled.level_query(level), literal)  # type: ignore[arg-type]
        text = compiled.dialect.render(query, pretty=False)
        cur.execute(f'DROP TABLE IF EXISTS "{frame}"')
        cur.execute(f'CREATE TEMP TABLE "{frame}" AS {text}')
        frames[level] = fetch(cur, f'SELECT * FROM "{frame}"')
    return frames


def compute_postgres(
    events: pl.DataFrame,
    trait_updates: pl.DataFrame,
    space_config: SpaceConfig,
    space_ir: ir.Space,
    as_of: datetime,
    sql_traits: list[SqlTraitResult] | None = None,
    *,
    dsn: str,
) -> ComputeResult:
    """Compute identities, traits and memberships as of `as_of` inside PostgreSQL.

    Args:
        events: normalized events (see `audience_pipeline.ingest`).
        trait_updates: normalized trait updates.
        space_config: identifier rules.
        space_ir: compiled traits and audiences.
        as_of: the evaluation time.
        dsn: the PostgreSQL server to compute in (temporary tables of one session only).

    Returns:
        The same tables, with the same dtypes, as `engine.compute.compute`.
    """
    started = time.perf_counter()
    inputs = Inputs()
    with connect(dsn) as con, con.cursor() as cur:
        # Timestamps read and written in UTC, whatever the server's default.
        cur.execute("SET LOCAL TIME ZONE 'UTC'")
        # JIT compiles each statement's plan: seconds per statement, never paid back here.
        cur.execute("SET LOCAL jit = off")
        prepared = prepare_inputs_pg(cur, events, trait_updates, space_config, as_of,
                                     sql_traits)  # fmt: skip
        compiled = build_space_sql(space_ir, Postgres(), inputs=inputs)
        frames = run_space_sql_pg(cur, compiled, as_of)
        profiles = fetch(cur, "SELECT profile_id FROM ap_profiles").sort("profile_id")
        accounts = fetch(cur, "SELECT account_id FROM ap_accounts").sort("account_id")
        members = fetch(cur, "SELECT account_id, profile_id FROM ap_account_members")
        con.rollback()  # nothing of the session is kept: the temporary tables go with it
    result = assemble_result(prepared, frames, profiles, accounts, members, space_ir, as_of)
    log.info("postgres compute in %.2fs", time.perf_counter() - started)
    return result
