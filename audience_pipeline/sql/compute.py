"""`compute --engine duckdb`: the same tables as the Polars engine, computed inside DuckDB.

The normalized messages come either as the run's Parquet files, which DuckDB scans itself
(`compute_duckdb_normalized`: the messages never sit in the process as frames, and DuckDB spills
to disk under its memory limit), or as frames a caller already holds (`compute_duckdb`). Identity
components, latest custom traits, accounts and members are SQL there; then the compiled SQL of
the space (see `compiler`) computes every trait and audience. The final shaping of the output
tables is shared with every engine (`audience_pipeline.tables`), so that all write identical
tables.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl
from sqlglot import exp

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.naming import ENTITY, audience_column, computed_column
from audience_pipeline.limits import memory_limit_bytes, parse_size
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.assemble import assemble_result
from audience_pipeline.sql.buckets import bucket_count
from audience_pipeline.sql.compiler import SpaceSql, build_space_sql
from audience_pipeline.sql.dialects import DuckDB
from audience_pipeline.sql.identity import (
    IDENTITIES,
    PROFILES_OF,
    fetched,
    identities_frame,
    identity_result,
    message_profiles_frame,
    resolve_identities_sql,
)
from audience_pipeline.sql.latest import create_latest, latest_frames
from audience_pipeline.sql.relations import Inputs, alias, bind_as_of, coalesce, col, eq
from audience_pipeline.sql.sources import FrameSource, MessageSource, ParquetSource
from audience_pipeline.sql.statements import create_as, relation, select_all
from audience_pipeline.sql.steps import run_in_steps
from audience_pipeline.sqltraits.match import matched_sql_traits
from audience_pipeline.sqltraits.run import SqlTraitResult
from audience_pipeline.tables.result import KNOWN_TYPES, ComputeResult

log = logging.getLogger(__name__)

__all__ = [
    "KNOWN_TYPES",
    "ComputeResult",
    "compute_duckdb",
    "compute_duckdb_normalized",
    "prepare_inputs",
    "run_space_sql",
]

# Fixed statements over our own tables (no definition or data text enters them).
_MSGS = (
    "CREATE OR REPLACE TEMP VIEW _ap_msgs AS SELECT m.*, p.profile_id FROM _ap_messages m "
    "JOIN _ap_profiles_of p ON p.seq = m.seq"
)
_GROUPS = (
    "CREATE OR REPLACE TEMP VIEW _ap_groups AS SELECT seq, timestamp, message_id, "
    "group_id AS account_id, profile_id FROM _ap_msgs WHERE type = 'group' "
    "AND group_id IS NOT NULL"
)


def _path_columns(source: MessageSource) -> list[str]:
    """The stored path columns read as columns. DuckDB matches column names case-insensitively
    (and renames `p.plan` next to `p.Plan`), but JSON keys are case-sensitive: keys that differ
    only in case are read from the JSON instead."""
    paths = source.path_columns()
    folded = Counter(c.lower() for c in paths)
    return [c for c in paths if folded[c.lower()] == 1]


def _events_query(paths: list[str]) -> exp.Select:
    # The stored path columns are named by event keys (any text): sqlglot quotes them.
    return (
        exp.select(
            "profile_id", "timestamp", "message_id", "seq", "event", "properties", "context",
            *(exp.column(c, quoted=True) for c in paths),
        )
        .from_("_ap_msgs")
        .where(exp.column("type").isin("track", "page", "screen"))
    )  # fmt: skip


def _profiles_query() -> exp.Select:
    """profile_id, known: every profile with a message, and whether it holds a known type."""
    seen = exp.select("profile_id").distinct().from_("_ap_msgs").subquery("o")
    known = exp.func("bool_or", col("id_type").isin(*KNOWN_TYPES))
    holds = (
        exp.select("profile_id", alias(known, "known"))
        .from_("_ap_identities")
        .group_by("profile_id")
        .subquery("k")
    )
    return (
        exp.select(col("profile_id", "o"), alias(coalesce(col("known", "k"), exp.false()), "known"))
        .from_(seen)
        .join(holds, on=eq(col("profile_id", "k"), col("profile_id", "o")), join_type="left")
    )


def _entity_relations(con: duckdb.DuckDBPyConnection, names: Inputs, paths: list[str]) -> None:
    con.execute(_MSGS)
    con.execute(create_as(names.events, _events_query(paths), view=True).sql("duckdb"))
    con.execute(create_as(names.profiles, _profiles_query()).sql("duckdb"))
    con.execute(_GROUPS)
    accounts = exp.select("account_id").distinct().from_("_ap_groups")
    members = exp.select("account_id", "profile_id").distinct().from_("_ap_groups")
    con.execute(create_as(names.accounts, accounts).sql("duckdb"))
    con.execute(create_as(names.account_members, members).sql("duckdb"))


def prepare_source(
    con: duckdb.DuckDBPyConnection,
    source: MessageSource,
    space_config: SpaceConfig,
    inputs: Inputs | None = None,
    sql_traits: list[SqlTraitResult] | None = None,
) -> dict[str, object]:
    """Create the SQL backend's input tables (see `relations`) in DuckDB from `source`.

    Returns the intermediate results the output tables need: ``identity`` (the identity stats),
    ``flat_columns`` (stored path columns), ``messages`` and ``sql_traits``. The identity result
    and the latest custom traits stay in DuckDB (`identity_result`, `latest_frames` read them
    for the output tables: `fetch_prepared`).
    """
    names = inputs or Inputs()
    source.create_identity_input(con)
    stats = resolve_identities_sql(con, space_config)
    paths = _path_columns(source)
    source.create_messages(con, paths)
    con.execute(create_as(names.identities, select_all(IDENTITIES), view=True).sql("duckdb"))
    _entity_relations(con, names, paths)
    sql = None
    if sql_traits:  # matched against every identifier: only then are they fetched here
        accounts = con.sql(select_all(names.accounts).sql("duckdb")).pl()
        sql = matched_sql_traits(sql_traits, identities_frame(con),
                                 accounts["account_id"].to_list(), space_config)  # fmt: skip
    create_latest(con, source, {"user": names.user_traits, "account": names.account_traits}, sql)
    return {
        "identity": stats,
        "flat_columns": set(paths),
        "messages": stats["messages"],
        "sql_traits": sql,
    }


def fetch_prepared(con: duckdb.DuckDBPyConnection, prepared: dict[str, object]) -> None:
    """What `prepare_source` left in DuckDB, read into `prepared` for `assemble_result`:
    ``identity`` (the result, without the message profiles: `message_profiles_frame`),
    ``user_latest`` and ``account_latest``."""
    latest = latest_frames(con)
    prepared["user_latest"], prepared["account_latest"] = latest["user"], latest["account"]
    prepared["identity"] = identity_result(con, prepared["identity"])  # type: ignore[arg-type]


def prepare_inputs(
    con: duckdb.DuckDBPyConnection,
    events: pl.DataFrame,
    trait_updates: pl.DataFrame,
    space_config: SpaceConfig,
    as_of: datetime,
    inputs: Inputs | None = None,
    sql_traits: list[SqlTraitResult] | None = None,
) -> dict[str, object]:
    """`prepare_source` over frames the caller holds (cut at `as_of` here)."""
    source = FrameSource.cut(events, trait_updates, as_of)
    return prepare_source(con, source, space_config, inputs, sql_traits)


def run_space_sql(
    con: duckdb.DuckDBPyConnection,
    compiled: SpaceSql,
    as_of: datetime,
    memory_limit_bytes: int | None = None,
    columns: dict[str, list[str]] | None = None,
) -> dict[str, pl.DataFrame]:
    """Run both levels' SQL in DuckDB; returns the user and account frames (`columns`: only
    these columns of each level's frame; None: all).

    `memory_limit_bytes`: DuckDB's limit; a step grouping a table by entity then runs in as
    many entity buckets as the table's rows need under it (`sql.buckets`)."""
    literal = compiled.dialect.timestamp(as_of.isoformat())
    frames: dict[str, pl.DataFrame] = {}

    def buckets(table: str) -> int:
        assert memory_limit_bytes is not None
        counted = exp.select(exp.func("COUNT", exp.Star())).from_(relation(table))
        rows = con.sql(counted.sql("duckdb")).fetchall()[0][0]
        count = bucket_count(int(rows), memory_limit_bytes)
        log.debug("duckdb step over %s: %d rows, %d bucket(s)", table, rows, count)
        return count

    def execute(statement: exp.Expr) -> None:
        started = time.perf_counter()
        con.execute(compiled.dialect.render(statement, pretty=False))
        # Which step takes the time or the memory at scale (DEBUG logs of the module).
        table = statement.find(exp.Table)
        log.debug("duckdb step %s %s: %.1fs", statement.key, table.name if table else "",
                  time.perf_counter() - started)  # fmt: skip

    levels = {"user": compiled.user_frame, "account": compiled.account_frame}
    for level, frame in levels.items():
        if frame is None:
            continue
        query = bind_as_of(compiled.level_query(level), literal)  # type: ignore[arg-type]
        # The account level reads the user frame as a table.
        run_in_steps(execute, query, frame, buckets if memory_limit_bytes else None)
    # Fetched once both levels ran: no frame is held while DuckDB works under its limit.
    for level, frame in levels.items():
        if frame is None:
            continue
        query = select_all(frame)
        if columns is not None:  # not the steps' own columns (masks, condition parts)
            query = exp.select(*(exp.column(c, quoted=True) for c in columns[level]))
            query = query.from_(relation(frame))
        frames[level] = con.sql(query.sql("duckdb")).pl()
    for frame in reversed([f for f in levels.values() if f is not None]):
        con.execute(exp.Drop(tables=[relation(frame)], kind="TABLE").sql("duckdb"))  # fetched
    return frames


def output_columns(space_ir: ir.Space, level: str) -> list[str]:
    """The columns of a level frame the output tables read (`sql.assemble`): the entity, each
    computed trait and each audience of the level."""
    traits = [computed_column(t.key) for t in space_ir.traits if t.level == level]
    audiences = [audience_column(a.key) for a in space_ir.audiences if a.level == level]
    return [ENTITY, *traits, *audiences]


# The older, DuckDB-only setting; still honoured (`limits` holds the one every engine reads).
MEMORY_LIMIT_ENV = "AUDIENCE_PIPELINE_DUCKDB_MEMORY_LIMIT"
SPILL_FOLDER = "audience_pipeline_duckdb"
# DuckDB's buffer pool gets this share of the run's memory limit: the process also holds the
# identity step's frames, the latest traits and the level frames it fetches (outside the pool).
DUCKDB_SHARE = 0.5


def _duckdb_config() -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB's settings for frames handed in: with `AUDIENCE_PIPELINE_DUCKDB_MEMORY_LIMIT`
    (e.g. `6GB`), a memory limit and a temp directory to spill to; else DuckDB's defaults."""
    limit = os.environ.get(MEMORY_LIMIT_ENV)
    if not limit:
        return {}
    spill = Path(tempfile.gettempdir()) / SPILL_FOLDER
    return {"memory_limit": limit, "temp_directory": str(spill)}


def duckdb_memory_limit(memory_limit: str | int | None = None) -> str:
    """DuckDB's own limit for a run: `AUDIENCE_PIPELINE_DUCKDB_MEMORY_LIMIT` when set, else
    `DUCKDB_SHARE` of the run's limit (`limits.memory_limit_bytes`), in MiB."""
    explicit = os.environ.get(MEMORY_LIMIT_ENV)
    if explicit and memory_limit is None:
        return explicit
    share = int(memory_limit_bytes(memory_limit) * DUCKDB_SHARE) // 2**20
    return f"{max(share, 64)}MiB"


def _remove_orphans(root: Path) -> None:
    """Spill folders of runs that were killed (their process is gone)."""
    for folder in root.glob("run-*-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextmanager
def spilling_connection(memory_limit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection under `memory_limit` that spills to a temporary folder of
    its own (removed afterwards: two runs never share spill files)."""
    root = Path(tempfile.gettempdir()) / SPILL_FOLDER
    root.mkdir(parents=True, exist_ok=True)
    _remove_orphans(root)
    spill = Path(tempfile.mkdtemp(prefix=f"run-{os.getpid()}-", dir=root))
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": memory_limit,
        "temp_directory": str(spill),
        # Row order is decided by our own ORDER BY and sorts; not keeping it lets DuckDB
        # stream large results instead of buffering them.
        "preserve_insertion_order": False,
    }
    con = duckdb.connect(config=config)
    try:
        yield con
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)


def _compute(
    con: duckdb.DuckDBPyConnection,
    source: MessageSource,
    space_config: SpaceConfig,
    space_ir: ir.Space,
    as_of: datetime,
    sql_traits: list[SqlTraitResult] | None,
    limit: str | None,
) -> ComputeResult:
    """`limit`: DuckDB's memory limit (None: DuckDB's default, no bucketed steps)."""
    lap = _Laps()
    prepared = prepare_source(con, source, space_config, sql_traits=sql_traits)
    lap("identity and inputs")
    compiled = build_space_sql(space_ir, DuckDB(), flat_columns=prepared["flat_columns"])  # type: ignore[arg-type]
    columns = {level: output_columns(space_ir, level) for level in ("user", "account")}
    frames = run_space_sql(con, compiled, as_of, parse_size(limit) if limit else None, columns)
    lap("traits and audiences")
    if limit:  # the rest only reads tables back (streamed, sorts spill): DuckDB's memory back
        con.execute(_set_memory_limit(parse_size(limit) // OUTPUT_SHARE_DIVISOR))
    text = pl.Schema({"profile_id": pl.String})
    profiles = fetched(con, 'SELECT profile_id FROM "ap_profiles" ORDER BY profile_id', text)
    text = pl.Schema({"account_id": pl.String})
    accounts = fetched(con, 'SELECT account_id FROM "ap_accounts" ORDER BY account_id', text)
    text = pl.Schema({"account_id": pl.String, "profile_id": pl.String})
    members = fetched(con, 'SELECT account_id, profile_id FROM "ap_account_members"', text)
    fetch_prepared(con, prepared)
    _drop_all_but(con, PROFILES_OF)  # DuckDB's memory back for the sort of the message profiles
    result = assemble_result(prepared, frames, profiles, accounts, members, space_ir, as_of)
    del frames, prepared, profiles, members
    # Read last, once the level frames are gone: a row per message.
    result.message_profiles = message_profiles_frame(con)
    lap("output tables")
    return result


_TEMP_TABLES = "SELECT table_name FROM duckdb_tables() WHERE temporary"
# DuckDB's limit while the output tables are read back is its share over this: at 30M events
# the buffer pool it kept (3 GiB) sat beside the output frames and the peak passed 8 GiB.
OUTPUT_SHARE_DIVISOR = 4


def _set_memory_limit(limit_bytes: int) -> str:
    """SET memory_limit to `limit_bytes` (a number we computed, in MiB)."""
    return f"SET memory_limit = '{max(64, limit_bytes // 2**20)}MiB'"


def _drop_all_but(con: duckdb.DuckDBPyConnection, kept: str) -> None:
    """Drop every temporary table of the run but `kept` (all of them read already)."""
    for (name,) in con.sql(_TEMP_TABLES).fetchall():
        if name != kept:
            con.execute(exp.Drop(tables=[relation(name)], kind="TABLE").sql("duckdb"))


class _Laps:
    """Logs the seconds of each stage (`-v` shows them; the benchmark prints them)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def __call__(self, stage: str) -> None:
        now = time.perf_counter()
        log.info("duckdb stage %s: %.1fs", stage, now - self.last)
        self.last = now


def compute_duckdb(
    events: pl.DataFrame,
    trait_updates: pl.DataFrame,
    space_config: SpaceConfig,
    space_ir: ir.Space,
    as_of: datetime,
    sql_traits: list[SqlTraitResult] | None = None,
    *,
    bounded: bool = False,
    memory_limit: str | int | None = None,
) -> ComputeResult:
    """Compute identities, traits and memberships as of `as_of` inside DuckDB, from frames.

    Args:
        events: normalized events (see `audience_pipeline.ingest`).
        trait_updates: normalized trait updates.
        space_config: identifier rules.
        space_ir: compiled traits and audiences.
        as_of: the evaluation time.
        sql_traits: the rows of the space's `kind: sql` traits.
        bounded: run under a memory limit, spilling past it (as `compute_duckdb_normalized`);
            else DuckDB's defaults, or `AUDIENCE_PIPELINE_DUCKDB_MEMORY_LIMIT` when set.
        memory_limit: the run's memory limit when `bounded` (None: `limits`' default).

    Returns:
        The same tables, with the same dtypes, as `engine.compute.compute`.
    """
    started = time.perf_counter()
    source = FrameSource.cut(events, trait_updates, as_of)
    if bounded:
        limit = duckdb_memory_limit(memory_limit)
        with spilling_connection(limit) as con:
            result = _compute(con, source, space_config, space_ir, as_of, sql_traits, limit)
    else:
        config = _duckdb_config()
        con = duckdb.connect(config=config)
        try:
            given = config.get("memory_limit")
            result = _compute(con, source, space_config, space_ir, as_of, sql_traits,
                              given if isinstance(given, str) else None)  # fmt: skip
        finally:
            con.close()
    log.info("duckdb compute in %.2fs", time.perf_counter() - started)
    return result


def compute_duckdb_normalized(
    folder: Path,
    space_config: SpaceConfig,
    space_ir: ir.Space,
    as_of: datetime,
    sql_traits: list[SqlTraitResult] | None = None,
    *,
    memory_limit: str | int | None = None,
) -> ComputeResult:
    """`compute_duckdb` reading the normalized Parquet of `folder` (events.parquet,
    trait_updates.parquet: a run's `_normalized/`) itself, under a memory limit.

    `memory_limit`: the run's limit (see `limits`); DuckDB gets `DUCKDB_SHARE` of it and
    spills past that.

    Raises:
        FileNotFoundError: `folder` lacks one of the two files.
    """
    source = ParquetSource.in_folder(folder, as_of)
    if source is None:
        msg = f"{folder}: no events.parquet and trait_updates.parquet"
        raise FileNotFoundError(msg)
    started = time.perf_counter()
    limit = duckdb_memory_limit(memory_limit)
    with spilling_connection(limit) as con:
        result = _compute(con, source, space_config, space_ir, as_of, sql_traits, limit)
    log.info("duckdb compute (parquet) in %.2fs", time.perf_counter() - started)
    return result
