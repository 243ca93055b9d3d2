"""`compute --engine spark`: every step on Spark, from Segment's warehouse tables.

The whole-space script (`sql.script`, spark dialect) runs statement by statement through
``spark.sql``: staging, quarantine and dedupe, identity (label propagation in Spark SQL; SPEC's
rule only over the components where a limit bites, one task per component, see
`linking`), traits, audiences, memberships, changes and history. The driver only evaluates each
label round's end (one count) and, at the end, reads the output tables (never the events) to
write them as ``<out>/<table>.parquet`` like every other engine; with `tables_database`, they
are also kept as Spark tables.

Input: a folder of Segment's tables as Parquet (``tracks.parquet`` or a ``tracks/`` folder of
part files, one per table), or the tables of a database of the Spark catalog (`schema`).
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

import polars as pl
from sqlglot import exp

from audience_pipeline.compile_sql import build_script
from audience_pipeline.identity.result import type_limits, type_ranks
from audience_pipeline.segment_tables import CALL_TABLES
from audience_pipeline.spark.linking import owners_on_spark
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.sql.script.catalog import Catalog, kind_of
from audience_pipeline.sql.script.identity import SEQUENTIAL_LOOP
from audience_pipeline.sql.script.program import Check, Loop, Script, render_step
from audience_pipeline.warehouse import begin_run

log = logging.getLogger(__name__)

OUT_DATABASE = "audience_pipeline_out"
SOURCE_DATABASE = "segment"
OUTPUT_TABLES = ("identities", "user_traits", "account_traits", "memberships",
                 "account_user_memberships", "membership_changes", "membership_history",
                 "quarantine")  # fmt: skip
MAX_ROUNDS = 10_000


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
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    )
    if warehouse_dir:
        builder = builder.config("spark.sql.warehouse.dir", warehouse_dir)
    return builder.getOrCreate()


def _quote(name: str) -> str:
    return exp.to_identifier(name, quoted=True).sql("spark")


def register_folder(spark: Any, folder: Path, database: str = SOURCE_DATABASE) -> Catalog:
    """Segment's tables from a folder of Parquet files/folders, as external tables of `database`."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote(database)}")
    found = sorted(p for p in folder.iterdir() if p.suffix == ".parquet" or p.is_dir())
    if not found:
        msg = f"--events {folder}: no Parquet tables (tracks.parquet, identifies.parquet, ...)"
        raise ValueError(msg)
    for path in found:
        name = path.name.removesuffix(".parquet").lower()
        # Paths are ours to quote; Spark takes no bind parameters in DDL.
        location = "'" + str(path.resolve()).replace("\\", "\\\\").replace("'", "\\'") + "'"
        spark.sql(f"DROP TABLE IF EXISTS {_quote(database)}.{_quote(name)}")
        spark.sql(f"CREATE TABLE {_quote(database)}.{_quote(name)} USING parquet "
                  f"LOCATION {location}")  # fmt: skip
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


def _previous(spark: Any, out: Path) -> None:
    """The previous run's memberships and history (changes and history diff against them)."""
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {OUT_DATABASE}")
    for name in ("memberships", "membership_history"):
        spark.sql(f"DROP TABLE IF EXISTS {OUT_DATABASE}.{name}")
        path = (out / f"{name}.parquet").resolve()  # the committed run's file, read once
        if path.exists():
            # Read now: the script replaces the table while the file is rewritten at the end.
            spark.read.parquet(str(path)).write.saveAsTable(f"{OUT_DATABASE}.{name}")


def run_steps(spark: Any, script: Script, limits: dict[int, int]) -> int:
    """Run the script's steps through ``spark.sql``; loops are driven from here (one count per
    round), SPEC's rule where a limit bites runs per component (`linking`). Returns the rounds."""
    rounds = 0
    for step in script.steps:
        if isinstance(step, Check):
            continue  # DuckDB's unrolled loops only
        if isinstance(step, Loop) and step.name == SEQUENTIAL_LOOP:
            owners_on_spark(spark, limits).write.mode("overwrite").saveAsTable("ap_sq_owner")
            continue
        if not isinstance(step, Loop):
            for line in render_step(step, "spark"):
                spark.sql(line.removesuffix(";"))
            continue
        done = exp.select(step.done.copy()).sql(dialect="spark")
        for _ in range(MAX_ROUNDS):
            if spark.sql(done).collect()[0][0]:
                break
            rounds += 1
            for inner in step.body:
                for line in render_step(inner, "spark"):
                    spark.sql(line.removesuffix(";"))
        else:
            msg = f"{step.name}: did not finish in {MAX_ROUNDS} rounds"
            raise RuntimeError(msg)
    return rounds


def _frame(spark: Any, table: str) -> pl.DataFrame:
    arrow = spark.table(table).toArrow()
    return pl.from_arrow(arrow)  # type: ignore[return-value]


def compute_spark(source: str | Path, definitions_dir: str | Path, as_of: datetime,
                  out: str | Path, *, master: str | None = None, schema: str | None = None,
                  tables_database: str | None = None) -> SparkRun:  # fmt: skip
    """Compute every table on Spark and write them as ``<out>/<table>.parquet``.

    Args:
        source: a folder of Segment's tables as Parquet (ignored with `schema`).
        definitions_dir: the space's definitions.
        as_of: the evaluation time.
        out: the warehouse folder (the previous run's tables there are diffed against).
        master: the Spark master URL (default ``local[*]``).
        schema: read Segment's tables from this database of the Spark catalog instead.
        tables_database: also keep the output tables as Spark tables of this database.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="ap-spark-"))
    spark = spark_session(master, str(scratch / "warehouse"))
    try:
        catalog = catalog_of(spark, schema) if schema else register_folder(spark, Path(source))
        _previous(spark, out)
        script = build_script(definitions_dir, "spark", catalog, as_of=as_of,
                              out_schema=OUT_DATABASE)  # fmt: skip
        timings["compile"] = time.perf_counter() - started
        started = time.perf_counter()
        rounds = run_steps(spark, script, _limits(definitions_dir))
        timings["compute"] = time.perf_counter() - started
        started = time.perf_counter()
        frames = {name: _frame(spark, f"{OUT_DATABASE}.{name}") for name in OUTPUT_TABLES}
        if tables_database:
            # External tables under <out>/spark_tables: they outlive the scratch warehouse, and a
            # session with a persistent catalog (a Hive metastore) keeps their definitions.
            spark.sql(f"CREATE DATABASE IF NOT EXISTS {_quote(tables_database)}")
            for name in OUTPUT_TABLES:
                path = str((out / "spark_tables" / name).resolve())
                writer = spark.table(f"{OUT_DATABASE}.{name}").write.mode("overwrite")
                writer.option("path", path).saveAsTable(f"{_quote(tables_database)}.{_quote(name)}")
    finally:
        spark.stop()
    frames = _shaped(frames)
    # One commit point, as every engine's run: readers see the previous run or this one whole.
    with begin_run(out, as_of=as_of) as writer:
        writer.write_all(frames)
        writer.commit(as_of=as_of)
    shutil.rmtree(scratch, ignore_errors=True)
    timings["write"] = time.perf_counter() - started
    log.info("spark compute: %d loop rounds, %s", rounds, timings)
    return SparkRun(out, as_of, {n: f.height for n, f in frames.items()}, timings)


def _limits(definitions_dir: str | Path) -> dict[int, int]:
    """Identifier limit by type rank (the script's ``trank``)."""
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    ranks, limits = type_ranks(definitions.space), type_limits(definitions.space)
    return {rank: limits[t] for t, rank in ranks.items()}


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
