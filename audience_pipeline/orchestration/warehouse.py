"""The warehouse folder: Parquet tables, daily partition folders and the DuckDB catalog file.

Every table is `<warehouse>/<name>.parquet` (what `audience-pipeline sql` reads), a partitioned
table is `<warehouse>/<name>/<partition>.parquet`, and `<warehouse>/warehouse.duckdb` holds one
view per table (and per audience/trait view) so that any DuckDB client can query them.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import orjson
import polars as pl
import sqlglot
from sqlglot import exp

from audience_pipeline.storage import write_table

log = logging.getLogger(__name__)

CATALOG = "warehouse.duckdb"
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})")
INPUT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".ndjson", ".parquet")


def parquet_scan(path: Path) -> exp.Expression:
    """`SELECT * FROM read_parquet('<path>')` built as an AST (paths are ours, still quoted)."""
    scan = exp.func("read_parquet", exp.Literal.string(str(path.resolve())))
    return exp.select("*").from_(scan)


def audience_view(warehouse: Path, key: str) -> exp.Expression:
    """The members of one audience, as a query over the memberships table."""
    scan: exp.Select = parquet_scan(warehouse / "memberships.parquet")  # type: ignore[assignment]
    return scan.where(exp.column("audience_key").eq(exp.Literal.string(key)))


def trait_view(warehouse: Path, table: str, entity: str, key: str) -> exp.Expression:
    """One trait column (and the entity id) of a traits table."""
    scan = exp.func(
        "read_parquet", exp.Literal.string(str((warehouse / f"{table}.parquet").resolve()))
    )
    return exp.select(exp.column(entity), exp.column(key)).from_(scan)


def register_view(warehouse: Path, name: str, query: exp.Expression, *, attempts: int = 5) -> bool:
    """Create or replace a view in the catalog file; False if the file stayed locked."""
    return register_views(warehouse, {name: query}, attempts=attempts)


def register_views(warehouse: Path, views: dict[str, exp.Expression], *, attempts: int = 5) -> bool:
    """Create or replace several views through one connection to the catalog file (opening it
    costs more than a view); False if the file stayed locked."""
    if not views:
        return True
    statements = [
        exp.Create(
            this=exp.to_identifier(name, quoted=True), kind="VIEW", replace=True, expression=query
        ).sql(dialect="duckdb")
        for name, query in views.items()
    ]
    name = ", ".join(views)
    warehouse.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        try:
            con = duckdb.connect(str(warehouse / CATALOG))
        except duckdb.IOException as error:  # another process holds the file
            log.info("catalog busy (%s), retrying", error)
            time.sleep(0.2 * (attempt + 1))
            continue
        try:
            for statement in statements:
                con.execute(statement)
            return True
        finally:
            con.close()
    log.warning("could not register view %s: %s is locked", name, warehouse / CATALOG)
    return False


def write_partition(warehouse: Path, name: str, partition: str, frame: pl.DataFrame) -> Path:
    """Write one partition atomically and keep the table's view over all partitions."""
    folder = warehouse / name
    path = write_table(frame, folder, partition)
    scan = exp.func("read_parquet", exp.Literal.string(str(folder.resolve() / "*.parquet")))
    register_view(warehouse, name, exp.select("*").from_(scan))
    return path


def write_whole(warehouse: Path, name: str, frame: pl.DataFrame) -> Path:
    """Write a table atomically (readers see the old or the new file) and its view."""
    path = write_table(frame, warehouse, name)
    register_view(warehouse, name, parquet_scan(path))
    return path


def read_whole(warehouse: Path, name: str) -> pl.DataFrame | None:
    path = warehouse / f"{name}.parquet"
    return pl.read_parquet(path) if path.exists() else None


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
    con = duckdb.connect(str(warehouse / CATALOG), read_only=True)
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
