"""Kept for callers of earlier versions: tables now live in `audience_pipeline.warehouse`.

`write_table` writes one file atomically (for files outside a run, e.g. daily partitions);
`read_table` and `warehouse_connection` read the warehouse's current run (resolved once).
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from audience_pipeline.warehouse.catalog import run_connection
from audience_pipeline.warehouse.files import write_table
from audience_pipeline.warehouse.runs import open_run, require_run


def duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_table(directory: Path, name: str) -> pl.DataFrame | None:
    """Table `name` of the folder's current run (None when there is none)."""
    run = open_run(directory)
    return run.table(name) if run is not None else None


def warehouse_connection(directory: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per table of the folder's current run."""
    return run_connection(require_run(directory))


__all__ = [
    "duckdb_identifier",
    "duckdb_string",
    "read_table",
    "warehouse_connection",
    "write_table",
]
