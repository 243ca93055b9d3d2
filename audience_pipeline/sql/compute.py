"""`compute --engine duckdb`: the same tables as the Polars engine, computed inside DuckDB.

Normalized events go into DuckDB once; identity components, latest custom traits, accounts and
members are SQL there; then the compiled SQL of the space (see `compiler`) computes every trait
and audience. Only the final shaping of trait columns to native types is shared with the Polars
engine, so that both write identical tables.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
from sqlglot import exp

# The final table shaping is the Polars engine's, so that both engines write identical tables.
from audience_pipeline.engine.compute import (
    KNOWN_TYPES,
    ComputeResult,
    _account_user_memberships,
    _memberships,
)
from audience_pipeline.engine.native import native_traits
from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.compiler import SpaceSql, build_space_sql
from audience_pipeline.sql.dialects import DuckDB
from audience_pipeline.sql.identity import resolve_identities_sql
from audience_pipeline.sql.relations import ENTITY, Inputs, bind_as_of
from audience_pipeline.sqltraits.columns import expand_columns, with_sql_rows
from audience_pipeline.sqltraits.match import MatchedSqlTraits, matched_sql_traits
from audience_pipeline.sqltraits.run import SqlTraitResult
from audience_pipeline.values import flat_tag, loads

log = logging.getLogger(__name__)


# Fixed statements over our own tables (no definition or data text enters them).
_LATEST = """
SELECT owner, key, value, tagged FROM (
  SELECT o.owner, u.key, u.value,
    CASE WHEN starts_with(u.tagged, '"') THEN json_extract_string(u.tagged, '$')
         ELSE 'o' || u.value END AS tagged,
    ROW_NUMBER() OVER (PARTITION BY o.owner, u.key ORDER BY o.timestamp DESC,
      (o.message_id IS NULL) DESC, o.message_id DESC, o.seq DESC) AS rn
  FROM _ap_updates u JOIN _ap_owners o ON o.seq = u.seq
) WHERE rn = 1
"""


def _register(con: duckdb.DuckDBPyConnection, name: str, frame: pl.DataFrame) -> None:
    # A registered Arrow table is scanned in place: no copy of the events' JSON text.
    con.register(name, frame.to_arrow())


def _flattened(latest: pl.DataFrame, owner: str) -> pl.DataFrame:
    """Latest custom traits, plus the dotted keys of object values (`trait.address.city`)."""
    rows = [
        (entity, f"{key}.{path}", value)
        for entity, key, tagged in latest.filter(pl.col("tagged").str.starts_with("o"))
        .select(owner, "key", "tagged")
        .iter_rows()
        for path, value in flat_tag(loads(tagged[1:])).items()
    ]
    base = latest.select(owner, "key", "tagged")
    if not rows:
        return base
    extra = pl.DataFrame(rows, schema=base.schema, orient="row")
    return pl.concat([base, extra])


def prepare_inputs(
    con: duckdb.DuckDBPyConnection,
    events: pl.DataFrame,
    trait_updates: pl.DataFrame,
    space_config: SpaceConfig,
    as_of: datetime,
    inputs: Inputs | None = None,
    sql_traits: list[SqlTraitResult] | None = None,
) -> dict[str, object]:
    """Create the SQL backend's input tables (see `relations`) in DuckDB.

    Returns the intermediate results the output tables need: ``identity``, ``user_latest``,
    ``account_latest`` (Polars frames) and ``flat_columns`` (stored path columns).
    """
    names = inputs or Inputs()
    messages = events.filter(pl.col("timestamp") <= as_of)
    identity = resolve_identities_sql(
        con,
        messages.select("seq", "message_id", "type", "timestamp", "ids", "previous_id"),
        space_config,
    )
    flat = [c for c in messages.columns if c.startswith(("p.", "c."))]
    # DuckDB matches column names case-insensitively (and renames `p.plan` next to `p.Plan`), but
    # JSON keys are case-sensitive: keys that differ only in case are read from the JSON instead.
    folded = Counter(c.lower() for c in flat)
    flat = [c for c in flat if folded[c.lower()] == 1]
    base = messages.select(
        "seq", "message_id", "type", "event", "timestamp", "group_id", "properties", "context",
        *flat,
    )  # fmt: skip
    _register(con, "_ap_messages", base)
    _register(con, "_ap_profiles_of", identity.message_profiles)
    _register(con, "_ap_identities", identity.identities)
    _register(con, names.identities, identity.identities)
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _ap_msgs AS SELECT m.*, p.profile_id FROM _ap_messages m "
        "JOIN _ap_profiles_of p ON p.seq = m.seq"
    )
    # The stored path columns are named by event keys (any text): sqlglot quotes them.
    events_query = (
        exp.select(
            "profile_id", "timestamp", "message_id", "seq", "event", "properties", "context",
            *(exp.column(c, quoted=True) for c in flat),
        )
        .from_("_ap_msgs")
        .where(exp.column("type").isin("track", "page", "screen"))
    )  # fmt: skip
    con.execute(
        f'CREATE OR REPLACE TEMP VIEW "{names.events}" AS {events_query.sql("duckdb")}'  # noqa: S608
    )
    known = ", ".join(f"'{t}'" for t in KNOWN_TYPES)
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE "{names.profiles}" AS '  # noqa: S608
        "SELECT o.profile_id, COALESCE(k.known, FALSE) AS known FROM "
        "(SELECT DISTINCT profile_id FROM _ap_msgs) o LEFT JOIN "
        f"(SELECT profile_id, bool_or(id_type IN ({known})) AS known FROM _ap_identities "
        "GROUP BY profile_id) k ON k.profile_id = o.profile_id"
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW _ap_groups AS SELECT seq, timestamp, message_id, "
        "group_id AS account_id, profile_id FROM _ap_msgs WHERE type = 'group' "
        "AND group_id IS NOT NULL"
    )
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE "{names.accounts}" AS '  # noqa: S608
        "SELECT DISTINCT account_id FROM _ap_groups"
    )
    con.execute(
        f'CREATE OR REPLACE TEMP TABLE "{names.account_members}" AS '  # noqa: S608
        "SELECT DISTINCT account_id, profile_id FROM _ap_groups"
    )
    accounts = con.sql(f'SELECT account_id FROM "{names.accounts}"').pl()  # noqa: S608
    sql = matched_sql_traits(sql_traits, identity.identities, accounts["account_id"].to_list(),
                             space_config)  # fmt: skip
    updates = trait_updates.select("seq", "kind", "key", "value", "tagged")
    latest: dict[str, pl.DataFrame] = {}
    for kind, owner, source, target in (
        ("user", "profile_id", "_ap_msgs", names.user_traits),
        ("account", "account_id", "_ap_groups", names.account_traits),
    ):
        _register(con, "_ap_updates", updates.filter(pl.col("kind") == kind))
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _ap_owners AS "  # noqa: S608
            f"SELECT seq, timestamp, message_id, {owner} AS owner FROM {source}"
        )
        frame = con.sql(_LATEST).pl().rename({"owner": owner})
        frame = frame.cast({"value": pl.String, "tagged": pl.String})
        if sql is not None:  # SQL traits read as custom traits holding one object each
            frame = with_sql_rows(frame, sql.rows[kind], sql.keys[kind])
        latest[kind] = frame
        _register(con, target, _flattened(frame, owner))
    return {
        "identity": identity,
        "user_latest": latest["user"],
        "account_latest": latest["account"],
        "flat_columns": set(flat),
        "messages": messages.height,
        "sql_traits": sql,
    }


def run_space_sql(
    con: duckdb.DuckDBPyConnection, compiled: SpaceSql, as_of: datetime
) -> dict[str, pl.DataFrame]:
    """Run both levels' SQL in DuckDB; returns the user and account frames."""
    literal = compiled.dialect.timestamp(as_of.isoformat())
    frames: dict[str, pl.DataFrame] = {}
    for level, frame in (("user", compiled.user_frame), ("account", compiled.account_frame)):
        if frame is None:
            continue
        query = bind_as_of(compiled.level_query(level), literal)  # type: ignore[arg-type]
        text = compiled.dialect.render(query, pretty=False)
        # The account level reads the user frame as a table.
        con.execute(f'CREATE OR REPLACE TEMP TABLE "{frame}" AS {text}')  # noqa: S608
        frames[level] = con.sql(f'SELECT * FROM "{frame}"').pl()  # noqa: S608
    return frames


def _frame_or_empty(frames: dict[str, pl.DataFrame], level: str, entities: pl.DataFrame,
                    owner: str) -> pl.DataFrame:  # fmt: skip
    if level in frames:
        return frames[level]
    return entities.select(pl.col(owner).alias(ENTITY))


MEMORY_LIMIT_ENV = "AUDIENCE_PIPELINE_DUCKDB_MEMORY_LIMIT"


def _duckdb_config() -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB's settings: with `AUDIENCE_PIPELINE_DUCKDB_MEMORY_LIMIT` (e.g. `6GB`), a memory
    limit and a temp directory to spill to. DuckDB's own default is 80% of RAM, too much when
    the process also holds the Polars frames it was handed."""
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if not limit:
        return {}
    spill = Path(tempfile.gettempdir()) / "audience_pipeline_duckdb"
    return {"memory_limit": limit, "temp_directory": str(spill)}


def compute_duckdb(
    events: pl.DataFrame,
    trait_updates: pl.DataFrame,
    space_config: SpaceConfig,
    space_ir: ir.Space,
    as_of: datetime,
    sql_traits: list[SqlTraitResult] | None = None,
) -> ComputeResult:
    """Compute identities, traits and memberships as of `as_of` inside DuckDB.

    Args:
        events: normalized events (see `audience_pipeline.ingest`).
        trait_updates: normalized trait updates.
        space_config: identifier rules.
        space_ir: compiled traits and audiences.
        as_of: the evaluation time.
        sql_traits: the rows of the space's `kind: sql` traits.

    Returns:
        The same tables, with the same dtypes, as `engine.compute.compute`.
    """
    started = time.perf_counter()
    con = duckdb.connect(config=_duckdb_config())
    try:
        prepared = prepare_inputs(con, events, trait_updates, space_config, as_of,
                                  sql_traits=sql_traits)  # fmt: skip
        compiled = build_space_sql(space_ir, DuckDB(), flat_columns=prepared["flat_columns"])  # type: ignore[arg-type]
        frames = run_space_sql(con, compiled, as_of)
        profiles = con.sql('SELECT profile_id FROM "ap_profiles" ORDER BY profile_id').pl()
        accounts = con.sql('SELECT account_id FROM "ap_accounts" ORDER BY account_id').pl()
        members = con.sql('SELECT account_id, profile_id FROM "ap_account_members"').pl()
    finally:
        con.close()
    result = assemble_result(prepared, frames, profiles, accounts, members, space_ir, as_of)
    log.info("duckdb compute in %.2fs", time.perf_counter() - started)
    return result


def assemble_result(
    prepared: dict[str, object],
    frames: dict[str, pl.DataFrame],
    profiles: pl.DataFrame,
    accounts: pl.DataFrame,
    members: pl.DataFrame,
    space_ir: ir.Space,
    as_of: datetime,
) -> ComputeResult:
    """The output tables from the level frames an SQL engine computed (shared by the DuckDB and
    PostgreSQL engines, so that every engine writes the Polars engine's tables and dtypes).

    `prepared`: ``identity``, ``user_latest``, ``account_latest`` and ``messages`` (as
    `prepare_inputs` returns them); `profiles`, `accounts`, `members`: the entity relations.
    """
    identity = prepared["identity"]
    user_latest: pl.DataFrame = prepared["user_latest"]  # type: ignore[assignment]
    account_latest: pl.DataFrame = prepared["account_latest"]  # type: ignore[assignment]
    user_frame = _frame_or_empty(frames, "user", profiles, "profile_id")
    account_frame = _frame_or_empty(frames, "account", accounts, "account_id")
    user_audiences = [a for a in space_ir.audiences if a.level == "user"]
    account_audiences = [a for a in space_ir.audiences if a.level == "account"]
    memberships = pl.concat([
        _memberships(user_frame, user_audiences, "user", as_of),
        _memberships(account_frame, account_audiences, "account", as_of),
    ])  # fmt: skip
    user_keys = set(user_latest["key"].unique().to_list())
    account_keys = set(account_latest["key"].unique().to_list())
    user_traits, user_json = native_traits(
        user_frame.sort(ENTITY), user_latest, "profile_id", space_ir, "user", user_keys,
        user_audiences,
    )  # fmt: skip
    account_traits, account_json = native_traits(
        account_frame.sort(ENTITY), account_latest, "account_id", space_ir, "account",
        account_keys, account_audiences,
    )  # fmt: skip
    sql: MatchedSqlTraits | None = prepared["sql_traits"]  # type: ignore[assignment]
    if sql is not None:
        user_traits, more = expand_columns(user_traits.rename({ENTITY: "profile_id"}), "profile_id",
                                           sql.rows["user"], sql.fields["user"])  # fmt: skip
        user_traits = user_traits.rename({"profile_id": ENTITY})
        user_json = (user_json - set(sql.fields["user"])) | more
        account_traits, more = expand_columns(account_traits.rename({ENTITY: "account_id"}),
                                              "account_id", sql.rows["account"],
                                              sql.fields["account"])  # fmt: skip
        account_traits = account_traits.rename({"account_id": ENTITY})
        account_json = (account_json - set(sql.fields["account"])) | more
    stats = {
        "messages": int(prepared["messages"]),  # type: ignore[call-overload]
        **(sql.stats() if sql is not None else {}),
        "profiles": profiles.height,
        "accounts": accounts.height,
        **{f"identity_{k}": v for k, v in identity.stats.items()},  # type: ignore[attr-defined]
    }
    return ComputeResult(
        as_of=as_of,
        identities=identity.identities,  # type: ignore[attr-defined]
        user_traits=user_traits.rename({ENTITY: "profile_id"}).sort("profile_id"),
        account_traits=account_traits.rename({ENTITY: "account_id"}).sort("account_id"),
        memberships=memberships,
        account_user_memberships=_account_user_memberships(memberships, members),
        message_profiles=identity.message_profiles,  # type: ignore[attr-defined]
        stats=stats,
        json_columns={"user_traits": user_json, "account_traits": account_json},
    )
