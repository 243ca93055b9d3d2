"""`compute --engine spark`: every step on Spark, from message files or Segment's tables.

Message files (JSON lines, gzip, Parquet messages): see `from_messages` (the executors read and
normalize them; dedupe, quarantine, identity, traits and audiences in Spark).

Segment's warehouse tables (a folder of them as Parquet: ``tracks.parquet`` or a ``tracks/``
folder of part files, one per table; or a database of the Spark catalog, `schema`): the
whole-space script (`sql.script`, spark dialect) runs statement by statement through
``spark.sql``: staging, quarantine and dedupe, identity (label propagation in Spark SQL; SPEC's
rule only over the components where a limit bites, one task per component, see `linking`),
traits, audiences, memberships, changes and history.

Either way the driver only evaluates each label round's end (one count) and reads back what is
one row per profile, account or member (never the events), and the run is committed to the
warehouse folder like every engine's (changes and history diff against its base run); with
`tables_database`, the tables are also kept as Spark tables.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from sqlglot import exp

from audience_pipeline.compile_sql import build_script
from audience_pipeline.identity.result import limits_by_rank
from audience_pipeline.ingest.files import discover
from audience_pipeline.ingest.segment_warehouse import write_message_files
from audience_pipeline.limits import memory_limit_bytes
from audience_pipeline.membership.diff import membership_changes, membership_history
from audience_pipeline.query import duckdb_identifier, duckdb_string
from audience_pipeline.segment_tables import CALL_TABLES
from audience_pipeline.spark.steps import run_steps
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.sql.script.catalog import Catalog, kind_of
from audience_pipeline.warehouse import Run, begin_run
from audience_pipeline.warehouse.guard import check_not_empty, lines_read
from audience_pipeline.warehouse.writer import RunWriter

log = logging.getLogger(__name__)

OUT_DATABASE = "audience_pipeline_out"
SOURCE_DATABASE = "segment"
OUTPUT_TABLES = ("identities", "user_traits", "account_traits", "memberships",
                 "account_user_memberships", "membership_changes", "membership_history",
                 "quarantine")  # fmt: skip


@dataclass
class SparkRun:
    out: Path
    as_of: datetime
    tables: dict[str, int]
    seconds: dict[str, float] = field(default_factory=dict)


def spark_session(master: str | None = None, warehouse_dir: str | None = None) -> Any:
    """A SparkSession in UTC (`master` default ``local[*]``)."""
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(master or "local[*]")
        .appName("audience-pipeline")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    )
    if warehouse_dir:
        builder = builder.config("spark.sql.warehouse.dir", warehouse_dir)
    if (master or "local[*]").startswith("local"):  # no network needed for a local session
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config(
            "spark.driver.host", "127.0.0.1"
        )
        # A local session runs every task in the driver's JVM, whose default 1 GB heap ran out
        # at 3M events: half the run's memory limit (`limits`), the rest for the Python workers
        # and the driver's Polars. (Taken when this call starts the JVM.)
        heap_mb = max(1024, memory_limit_bytes() // 2 // 1024**2)
        builder = builder.config("spark.driver.memory", f"{heap_mb}m")
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")  # Spark's warnings are not the user's to act on
    return session


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql("spark")


def _location(path: Path) -> str:
    # Paths are ours to quote; Spark takes no bind parameters in DDL.
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def register_folder(spark: Any, folder: Path, database: str = SOURCE_DATABASE) -> Catalog:
    """Segment's tables from a folder of Parquet files/folders, as external tables of `database`."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote(database)}")
    found = sorted(p for p in folder.iterdir() if p.suffix == ".parquet" or p.is_dir())
    if not found:
        msg = f"--events {folder}: no Parquet tables (tracks.parquet, identifies.parquet, ...)"
        raise ValueError(msg)
    for path in found:
        name = path.name.removesuffix(".parquet").lower()
        spark.sql(f"DROP TABLE IF EXISTS {_quote(database)}.{_quote(name)}")
        spark.sql(f"CREATE TABLE {_quote(database)}.{_quote(name)} USING parquet "
                  f"LOCATION {_location(path.resolve())}")  # fmt: skip
    return catalog_of(spark, database)


def catalog_of(spark: Any, database: str) -> Catalog:
    tables: dict[str, dict[str, str]] = {}
    for table in spark.catalog.listTables(database):
        frame = spark.table(f"{_quote(database)}.{_quote(table.name)}")
        tables[table.name.lower()] = {n.lower(): kind_of(t) for n, t in frame.dtypes}
    if not any(t in tables for t in CALL_TABLES):
        msg = f"no Segment tables (tracks, identifies, ...) in {database}"
        raise ValueError(msg)
    return Catalog(database, tables)


def _base_tables(spark: Any, base: Run | None) -> None:
    """The base run's memberships and history (changes and history diff against them): the
    committed run, or, for a rerun at its as-of, the run it derived from (`warehouse.writer`)."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {OUT_DATABASE}")
    for name in ("memberships", "membership_history"):
        spark.sql(f"DROP TABLE IF EXISTS {OUT_DATABASE}.{name}")
        if base is not None and base.has(name):
            # Copied in: the script replaces these tables.
            frame = spark.read.parquet(str(base.path(name).resolve()))
            frame.write.saveAsTable(f"{OUT_DATABASE}.{name}")


def _frame(spark: Any, table: str) -> pl.DataFrame:
    arrow = spark.table(table).toArrow()
    return pl.from_arrow(arrow)  # type: ignore[return-value]


def is_warehouse_folder(folder: Path) -> bool:
    """Whether a folder holds Segment's tables (``tracks.parquet`` or a ``tracks/`` folder of
    parts, ...) rather than message files."""
    if not folder.is_dir():
        return False
    names = {p.name.removesuffix(".parquet").lower() for p in folder.iterdir()
             if p.suffix == ".parquet" or p.is_dir()}  # fmt: skip
    return bool(names & set(CALL_TABLES))


@dataclass
class _Computed:
    tables: dict[str, pl.DataFrame]
    json_columns: dict[str, set[str]] = field(default_factory=dict)
    messages: int | None = None
    rounds: int = 0


def _from_warehouse(spark: Any, source: str | Path, definitions_dir: str | Path,
                    as_of: datetime, schema: str | None, base: Run | None) -> _Computed:  # fmt: skip
    """Segment's warehouse tables: the whole-space script, statement by statement."""
    catalog = catalog_of(spark, schema) if schema else register_folder(spark, Path(source))
    _base_tables(spark, base)
    script = build_script(definitions_dir, "spark", catalog, as_of=as_of,
                          out_schema=OUT_DATABASE)  # fmt: skip
    rounds = run_steps(spark, script, _limits(definitions_dir))
    frames = {name: _frame(spark, f"{OUT_DATABASE}.{name}") for name in OUTPUT_TABLES}
    messages = int(spark.sql(_MESSAGES_QUERY).collect()[0][0] or 0)
    return _Computed(_shaped(frames), messages=messages, rounds=rounds)


# The staged rows' messages: usable, one per message id (as `ingest` counts them; a fixed
# statement over the script's own table).
_MESSAGES_QUERY = (
    "SELECT SUM(CASE WHEN message_id IS NULL THEN 1 ELSE 0 END) + COUNT(DISTINCT message_id) "
    "FROM ap_staged WHERE reason IS NULL"
)


def _from_messages(spark: Any, source: str | Path, definitions_dir: str | Path,
                   as_of: datetime, base: Run | None) -> _Computed:  # fmt: skip
    """Message files: read and normalized by the executors (`from_messages`); changes and
    history are the Polars engine's diff against the base run (one row per member)."""
    from audience_pipeline.spark.from_messages import compute_messages

    definitions, space_ir = load_space_ir(str(definitions_dir), as_of)
    run = compute_messages(spark, str(source), definitions, space_ir, as_of,
                           _limits(definitions_dir))  # fmt: skip
    result = run.result
    changes = membership_changes(base.table("memberships") if base else None,
                                 result.memberships, as_of)  # fmt: skip
    history = membership_history(base.table("membership_history") if base else None, changes,
                                 as_of)  # fmt: skip
    tables = {**result.tables(), "membership_changes": changes, "membership_history": history,
              "quarantine": run.quarantine}  # fmt: skip
    log.info("spark read: %s", run.stats)
    return _Computed(tables, result.json_columns, run.stats.get("messages"), run.rounds)


def _from_warehouse_messages(spark: Any, source: str | Path, definitions_dir: str | Path,
                             as_of: datetime, schema: str | None, base: Run | None,
                             scratch: Path) -> _Computed:  # fmt: skip
    """Segment's tables for a space with `kind: sql` traits: the tables become message files as
    `compute --events-schema` makes them (`ingest.segment_warehouse.write_message_files`, on
    the driver), and the executors read those as any message files; quarantine rows name the
    table they came from. Slower than the whole-space script, whose SQL has no SQL traits."""
    tables = _tables_folder(spark, source, schema, scratch)
    messages = scratch / "segment-messages"
    messages.mkdir()
    label = schema or SOURCE_DATABASE
    with duckdb.connect() as con:
        _parquet_views(con, label, tables)
        sources = write_message_files(con, label, messages)
    computed = _from_messages(spark, messages, definitions_dir, as_of, base)
    quarantine = computed.tables["quarantine"]
    renamed = quarantine.with_columns(pl.col("source").replace(sources))
    return _Computed({**computed.tables, "quarantine": renamed}, computed.json_columns,
                     computed.messages, computed.rounds)  # fmt: skip


def _tables_folder(spark: Any, source: str | Path, schema: str | None, scratch: Path) -> Path:
    """A folder of Segment's tables as Parquet: the given one, or the schema's tables of the
    Spark catalog written there."""
    if schema is None:
        return Path(source)
    folder = scratch / "segment-tables"
    for table in spark.catalog.listTables(schema):
        frame = spark.table(f"{_quote(schema)}.{_quote(table.name)}")
        frame.write.parquet(str(folder / f"{table.name.lower()}.parquet"))
    return folder


def _parquet_views(con: duckdb.DuckDBPyConnection, schema: str, folder: Path) -> None:
    """One DuckDB view per table of `folder` (a ``.parquet`` file or a folder of parts)."""
    con.execute(f"CREATE SCHEMA {duckdb_identifier(schema)}")
    for path in sorted(folder.iterdir()):
        if not (path.suffix == ".parquet" or path.is_dir()):
            continue
        name = path.name.removesuffix(".parquet").lower()
        files = str(path / "**" / "*.parquet") if path.is_dir() else str(path)
        con.execute(
            f"CREATE VIEW {duckdb_identifier(schema)}.{duckdb_identifier(name)} AS "
            f"SELECT * FROM read_parquet({duckdb_string(files)})"
        )


def _keep_tables(spark: Any, out: Path, database: str, tables: dict[str, pl.DataFrame]) -> None:
    """External tables under <out>/spark_tables (the run's tables as Parquet there): they
    outlive the scratch warehouse, and a session with a persistent catalog (a Hive metastore)
    keeps their definitions."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote(database)}")
    for name in OUTPUT_TABLES:
        folder = (out / "spark_tables" / name).resolve()
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        tables[name].write_parquet(folder / "part-00000.parquet")
        table = f"{_quote(database)}.{_quote(name)}"
        spark.sql(f"DROP TABLE IF EXISTS {table}")
        spark.sql(f"CREATE TABLE {table} USING parquet LOCATION {_location(folder)}")


def _guard_files(source: str | Path, schema: str | None, run: RunWriter,
                 allow_empty: bool) -> None:  # fmt: skip
    """Before Spark starts: no such path, or a folder without one input file, is an empty run
    (the empty-input guard, SPEC 7, as the Polars engine's `service.EventFiles` applies it)."""
    if schema is not None or is_warehouse_folder(Path(source)):
        return
    guard = {"source": source, "allow_empty": allow_empty, "option": "--allow-empty"}
    if not Path(source).exists():
        check_not_empty(0, run.previous, **guard)  # type: ignore[arg-type]
        msg = f"--events {source}: no such file or folder"
        raise ValueError(msg)
    if not discover(source):
        check_not_empty(0, run.previous, **guard)  # type: ignore[arg-type]


def compute_spark(source: str | Path, definitions_dir: str | Path, as_of: datetime,
                  out: str | Path, *, master: str | None = None, schema: str | None = None,
                  tables_database: str | None = None, session: Any = None,
                  allow_empty: bool = False) -> SparkRun:  # fmt: skip
    """Compute every table on Spark and commit them as a run of the warehouse folder `out`.

    Args:
        source: message files (a file or a folder of ``.jsonl``, ``.jsonl.gz``, Parquet
            messages), or a folder of Segment's tables as Parquet (ignored with `schema`).
        definitions_dir: the space's definitions.
        as_of: the evaluation time.
        out: the warehouse folder (changes and history diff against its base run, as every
            engine's run: `warehouse.writer`).
        master: the Spark master URL (default ``local[*]``).
        schema: read Segment's tables from this database of the Spark catalog instead.
        tables_database: also keep the output tables as Spark tables of this database.
        session: a SparkSession to use (and leave running) instead of starting one.
        allow_empty: write the run even if no line was read while the last run had events
            (else `warehouse.guard.EmptyInput`, before anything is written).
    """
    out = Path(out)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    _limits(definitions_dir)  # invalid definitions fail before Spark starts
    with begin_run(out, as_of=as_of) as run:
        _guard_files(source, schema, run, allow_empty)
        scratch = Path(tempfile.mkdtemp(prefix="ap-spark-"))
        spark = session or spark_session(master, str(scratch / "warehouse"))
        try:
            if (schema or is_warehouse_folder(Path(source))) and sql_trait_keys(definitions_dir):
                computed = _from_warehouse_messages(spark, source, definitions_dir, as_of, schema,
                                                    run.base, scratch)  # fmt: skip
            elif schema or is_warehouse_folder(Path(source)):
                computed = _from_warehouse(spark, source, definitions_dir, as_of, schema,
                                           run.base)  # fmt: skip
            else:
                computed = _from_messages(spark, source, definitions_dir, as_of, run.base)
            read = lines_read(computed.messages or 0, computed.tables["quarantine"])
            check_not_empty(read, run.previous, allow_empty=allow_empty, option="--allow-empty",
                            source=source if schema is None else f"schema {schema}")  # fmt: skip
            timings["compute"] = time.perf_counter() - started
            started = time.perf_counter()
            if tables_database:
                _keep_tables(spark, out, tables_database, computed.tables)
        finally:
            if session is None:
                spark.stop()
            shutil.rmtree(scratch, ignore_errors=True)
        # One commit point, as every engine's run: readers see the previous run or this one whole.
        run.write_all(computed.tables)
        run.commit(as_of=as_of, json_columns=computed.json_columns, messages=computed.messages)
    timings["write"] = time.perf_counter() - started
    log.info("spark compute: %d loop rounds, %s", computed.rounds, timings)
    return SparkRun(out, as_of, {n: f.height for n, f in computed.tables.items()}, timings)


def sql_trait_keys(definitions_dir: str | Path) -> list[str]:
    """The space's `kind: sql` traits: their queries are DuckDB SQL over the run's messages,
    which the whole-space script does not build (docs/sql.md), so a run from Segment's tables
    with one reads those tables as messages instead (`_from_warehouse_messages`)."""
    definitions, _ = load_definitions(str(definitions_dir))
    return sorted(t.key for t in definitions.traits if t.kind == "sql")


def _limits(definitions_dir: str | Path) -> dict[int, int]:
    """Identifier limit by type rank (the script's ``trank``)."""
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    return limits_by_rank(definitions.space)


def _shaped(frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The tables in the Polars engine's sort order and integer types."""
    keys = {"identities": ["profile_id", "id_type", "id_value"],
            "memberships": ["audience_key", "entity_id"],
            "account_user_memberships": ["audience_key", "account_id", "profile_id"],
            "membership_changes": ["audience_key", "level", "entity_id", "change"],
            "membership_history": ["audience_key", "level", "entity_id", "valid_from"],
            "quarantine": ["source", "line"], "user_traits": ["profile_id"],
            "account_traits": ["account_id"]}  # fmt: skip
    shaped = {}
    for name, frame in frames.items():
        if "line" in frame.columns:
            frame = frame.with_columns(pl.col("line").cast(pl.Int64))
        shaped[name] = frame.sort(keys[name]) if keys.get(name) else frame
    return shaped
