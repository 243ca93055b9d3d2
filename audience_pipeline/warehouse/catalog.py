"""DuckDB over a warehouse: the `warehouse.duckdb` catalog file and in-memory connections.

The catalog's views read the fixed links (`memberships.parquet` -> `current/...`) by paths
relative to the warehouse folder, so a copied or moved warehouse still opens; DuckDB resolves
them through `file_search_path`, which our connections set to the warehouse folder (from a
shell: `cd <warehouse> && duckdb -readonly warehouse.duckdb`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import duckdb
from sqlglot import exp
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_incrementing,
)

from audience_pipeline.warehouse.layout import CATALOG, is_table_name, table_file
from audience_pipeline.warehouse.runs import Run

log = logging.getLogger(__name__)


def read_parquet(path: str) -> exp.Select:
    """`SELECT * FROM read_parquet('<path>')` as an AST (paths are ours, still quoted)."""
    return exp.select("*").from_(exp.func("read_parquet", exp.Literal.string(path)))


def view_statement(name: str, query: exp.Expression) -> str:
    return exp.Create(
        this=exp.to_identifier(name, quoted=True), kind="VIEW", replace=True, expression=query
    ).sql(dialect="duckdb")


def connect_catalog(warehouse: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    """The catalog file, with relative paths resolved in the warehouse folder."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "file_search_path": str(Path(warehouse).resolve())
    }
    return duckdb.connect(str(Path(warehouse) / CATALOG), read_only=read_only, config=config)


def register_views(
    warehouse: Path, views: Mapping[str, exp.Expression], *, attempts: int = 5
) -> bool:
    """Create or replace views in the catalog file; False if the file stayed locked."""
    if not views:
        return True
    warehouse.mkdir(parents=True, exist_ok=True)
    # Another process may hold the file for a moment: wait 0.2 s, 0.4 s, ... between attempts.
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_incrementing(start=0.2, increment=0.2),
        retry=retry_if_exception_type(duckdb.IOException),
        before_sleep=lambda state: log.info(
            "catalog busy (%s), retrying", state.outcome.exception() if state.outcome else None
        ),
    )
    try:
        con = retrying(connect_catalog, warehouse, read_only=False) if attempts > 0 else None
    except RetryError:
        con = None
    if con is None:
        log.warning("could not register views %s: %s is locked", sorted(views), warehouse / CATALOG)
        return False
    try:
        for name, query in views.items():
            con.execute(view_statement(name, query))
        return True
    finally:
        con.close()


def existing_views(warehouse: Path) -> dict[str, str]:
    """name -> SQL of the catalog's views (empty when there is no catalog or it is busy)."""
    if not (warehouse / CATALOG).exists():
        return {}
    try:
        con = connect_catalog(warehouse, read_only=True)
    except duckdb.Error:
        return {}
    try:
        rows = con.sql("SELECT view_name, sql FROM duckdb_views() WHERE NOT internal").fetchall()
    finally:
        con.close()
    return {str(name): str(sql) for name, sql in rows}


def table_views(warehouse: Path, run: Run) -> bool:
    """Give each table of the run a view over its fixed link (only the missing ones)."""
    present = existing_views(warehouse)
    wanted = {name: read_parquet(table_file(name)) for name in run.tables if is_table_name(name)}
    # A view over a fixed link never changes; one over another path (an older version's
    # absolute paths) is replaced.
    missing = {
        name: query
        for name, query in wanted.items()
        if f"read_parquet('{table_file(name)}')" not in present.get(name, "")
    }
    return register_views(warehouse, missing)


def run_connection(run: Run) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per table of one run (its own files, so a query sees
    that run only, whatever commits meanwhile)."""
    con = duckdb.connect()
    for name in run.tables:
        if is_table_name(name):
            con.execute(view_statement(name, read_parquet(str(run.path(name).resolve()))))
    return con


__all__ = [
    "connect_catalog",
    "existing_views",
    "read_parquet",
    "register_views",
    "run_connection",
    "table_views",
    "view_statement",
]
