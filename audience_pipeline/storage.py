"""Tables on disk: Parquet written atomically, and a DuckDB view of a warehouse folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import duckdb
import polars as pl


def write_table(frame: pl.DataFrame, directory: Path, name: str) -> Path:
    """Write `<directory>/<name>.parquet` atomically: readers see the old file or the new one."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.parquet"
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        frame.write_parquet(tmp, compression="zstd")
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_table(directory: Path, name: str) -> pl.DataFrame | None:
    path = directory / f"{name}.parquet"
    return pl.read_parquet(path) if path.exists() else None


def warehouse_connection(directory: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per `<table>.parquet` in the warehouse folder."""
    con = duckdb.connect()
    for path in sorted(directory.glob("*.parquet")):
        name = path.stem
        if not name.replace("_", "").isalnum():
            continue
        # Table names and paths are ours (file names), quoted by DuckDB's rules; views cannot
        # take bound parameters.
        con.sql(
            f"CREATE VIEW {duckdb_identifier(name)} AS "
            f"SELECT * FROM read_parquet({duckdb_string(str(path))})"
        )
    return con


def duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
