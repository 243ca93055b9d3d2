"""The Dagster side of the warehouse folder: tables of the current run, daily partitions, views.

A run's tables are committed by `audience_pipeline.warehouse` (the engine asset commits every
table of a run at once); this module reads them through that commit point, writes the daily
partitions of raw events, trait updates and quarantine (`<warehouse>/<name>/<day>.parquet`,
inputs of the next run, each written atomically), and keeps `<warehouse>/warehouse.duckdb`'s
views (over paths relative to the warehouse, so a copied or moved folder still opens).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime
from pathlib import Path

import orjson
import polars as pl
import sqlglot
from sqlglot import exp

from audience_pipeline.warehouse import open_run
from audience_pipeline.warehouse.catalog import connect_catalog, read_parquet, register_views
from audience_pipeline.warehouse.files import write_table
from audience_pipeline.warehouse.layout import CATALOG
from audience_pipeline.warehouse.writer import amend_run

log = logging.getLogger(__name__)

__all__ = ["CATALOG"]
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
INPUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".ndjson", ".parquet")


def audience_view(warehouse: Path, key: str) -> exp.Expression:
    """The members of one audience, as a query over the memberships table."""
    del warehouse  # views read paths relative to the warehouse folder
    return read_parquet("memberships.parquet").where(
        exp.column("audience_key").eq(exp.Literal.string(key))
    )


def trait_view(
    warehouse: Path, table: str, entity: str, key: str, columns: tuple[str, ...] = ()
) -> exp.Expression:
    """One trait's column(s) (and the entity id) of a traits table; `columns`: a SQL trait's
    `<key>.<field>` columns instead of the single column `key`."""
    del warehouse  # views read paths relative to the warehouse folder
    scan = exp.func("read_parquet", exp.Literal.string(f"{table}.parquet"))
    picked = [exp.column(exp.to_identifier(c, quoted=True)) for c in columns or (key,)]
    return exp.select(exp.column(entity), *picked).from_(scan)


def register_view(warehouse: Path, name: str, query: exp.Expression, *, attempts: int = 5) -> bool:
    """Create or replace a view in the catalog file; False if the file stayed locked."""
    return register_views(warehouse, {name: query}, attempts=attempts)


def write_partition(warehouse: Path, name: str, partition: str, frame: pl.DataFrame) -> Path:
    """Write one partition atomically and keep the table's view over all partitions."""
    path = write_table(frame, warehouse / name, partition)
    register_view(warehouse, name, read_parquet(f"{name}/*.parquet"))
    return path


def write_whole(warehouse: Path, name: str, frame: pl.DataFrame) -> Path:
    """Commit one table outside an engine run: a new run with this table and the current run's
    other files (hard-linked), made current in one step."""
    run = amend_run(warehouse, {name: frame})
    return run.path(name)


def read_whole(warehouse: Path, name: str) -> pl.DataFrame | None:
    """Table `name` of the warehouse's current run (None when there is none)."""
    run = open_run(warehouse)
    return run.table(name) if run is not None else None


def read_partitions(
    warehouse: Path, name: str, partitions: list[str] | None = None
) -> list[pl.DataFrame]:
    """The stored partitions of a table, in partition order (all of them by default)."""
    folder = warehouse / name
    if not folder.exists():
        return []
    paths = sorted(folder.glob("*.parquet"))
    if partitions is not None:
        wanted = set(partitions)
        paths = [p for p in paths if p.stem in wanted]
    return [pl.read_parquet(p) for p in paths]


def query(warehouse: Path, sql: str) -> pl.DataFrame:
    """Run SQL against the catalog file, read-only."""
    con = connect_catalog(warehouse, read_only=True)
    try:
        return con.sql(sqlglot.transpile(sql, read="duckdb", write="duckdb")[0]).pl()
    finally:
        con.close()


# --- the landing folder -------------------------------------------------------------------------


def landing_files(landing: Path) -> list[Path]:
    """Event files under the landing folder, in path order."""
    if not landing.exists():
        return []
    return sorted(p for p in landing.rglob("*") if p.is_file() and p.name.endswith(INPUT_SUFFIXES))


def partition_of(path: Path, landing: Path) -> str:
    """The daily partition of a landing file: a YYYY-MM-DD in its path, else its mtime's day."""
    match = _DATE.search(str(path.relative_to(landing)))
    if match:
        return match.group(1)
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).date().isoformat()


INGESTED_LEDGER = "_ingested_files.json"


def file_stamp(path: Path) -> str:
    """What identifies one version of a landing file: its size and modification time."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def ingested_files(warehouse: Path) -> dict[str, str]:
    """Landing files already ingested (path -> stamp), whoever ran the ingestion."""
    ledger = warehouse / INGESTED_LEDGER
    return orjson.loads(ledger.read_bytes()) if ledger.exists() else {}


def record_ingested(warehouse: Path, files: list[Path]) -> None:
    """Remember files as ingested, so that the landing sensor does not ingest them again after a
    materialization it did not start (the demo's first run, a backfill from the UI)."""
    seen = ingested_files(warehouse)
    seen.update({str(p): file_stamp(p) for p in files if p.exists()})
    warehouse.mkdir(parents=True, exist_ok=True)
    tmp = warehouse / f".{INGESTED_LEDGER}.tmp"
    tmp.write_bytes(orjson.dumps(seen, option=orjson.OPT_SORT_KEYS))
    tmp.replace(warehouse / INGESTED_LEDGER)


def files_of_partition(landing: Path, partition: str) -> list[Path]:
    return [p for p in landing_files(landing) if partition_of(p, landing) == partition]


def first_partition(landing: Path, default: date) -> date:
    """The earliest partition found in the landing folder (or `default`)."""
    days = [date.fromisoformat(partition_of(p, landing)) for p in landing_files(landing)]
    return min([*days, default])
