"""`audience-pipeline sql`: an analyst's query over the warehouse tables, read-only.

Two guards, each enough for the common attacks and together closing what one alone misses:

- DuckDB's own: an in-memory database with one view per table, then `allowed_paths` set to
  exactly the tables' Parquet files, `enable_external_access = false` (no other file, no
  network, no extension install or load, no ATTACH, no COPY) and `lock_configuration = true`
  (no SET can undo any of it).
- A sqlglot check of the text before it runs: one query (SELECT, WITH, UNION/INTERSECT/EXCEPT),
  reading only the warehouse's tables and its own CTEs; no table functions, qualified names,
  or functions that reach files or the environment. It also keeps out what the in-memory
  database would allow but an analyst did not mean (CREATE/DROP/PRAGMA/SET).

`--unsafe` skips both: a plain DuckDB connection with the same views, for power users.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from audience_pipeline.warehouse.runs import NoWarehouse, require_run

# Functions that reach files, the network, the environment or the settings.
_DENIED_PREFIXES = ("read_", "parquet_", "sniff_", "iceberg_", "delta_", "pragma_")
_DENIED_NAMES = frozenset(
    {"glob", "getenv", "current_setting", "query", "query_table", "which_secret",
     "duckdb_secrets", "duckdb_settings", "duckdb_extensions", "load_extension"}
)  # fmt: skip


def duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def duckdb_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class QueryRefused(ValueError):
    """A query the safe mode does not run; the message is one line for the user."""


def warehouse_tables(warehouse: Path) -> dict[str, Path]:
    """Table name -> Parquet file of the warehouse's committed run, resolved once.

    Resolved to the run's own folder, so a run committed while the query runs does not mix in.
    """
    try:
        run = require_run(warehouse)
    except NoWarehouse as error:
        raise QueryRefused(str(error)) from None
    return {
        name: run.path(name).resolve() for name in run.tables if name.replace("_", "").isalnum()
    }


def check_query(sql: str, tables: set[str]) -> None:
    """Refuse anything but one read-only query over ``tables`` and its own CTEs.

    Raises:
        QueryRefused: with the reason, naming the offending part.
    """
    try:
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(sql, dialect="duckdb") if s is not None]
    except SqlglotError:
        raise QueryRefused(_parse_problem(sql)) from None
    if len(statements) != 1:
        msg = f"one query at a time (found {len(statements)} statements)"
        raise QueryRefused(msg)
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        msg = f"only queries (SELECT, WITH, UNION) are allowed, not {_statement_word(sql)}"
        raise QueryRefused(msg)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            name = _function_name(table.this) if isinstance(table.this, exp.Func) else "this"
            msg = f"table functions are not allowed: {name}()"
            raise QueryRefused(msg)
        if table.args.get("db") or table.args.get("catalog"):
            msg = f"qualified table names are not allowed: {table.sql(dialect='duckdb')}"
            raise QueryRefused(msg)
        if table.name not in tables and table.name not in ctes:
            known = ", ".join(sorted(tables)) or "none"
            msg = f"unknown table {table.name!r} (the warehouse has: {known})"
            raise QueryRefused(msg)
    for func in tree.find_all(exp.Func):
        name = _function_name(func)
        if name in _DENIED_NAMES or name.startswith(_DENIED_PREFIXES):
            msg = f"function {name}() is not allowed (it reaches files or the environment)"
            raise QueryRefused(msg)


@contextmanager
def _quiet_sqlglot() -> Iterator[None]:
    # sqlglot warns ("falling back to parsing as a Command") through logging, which would
    # print a second line; the refusal below says it all.
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _parse_problem(sql: str) -> str:
    """DuckDB's own parser names a syntax error in the user's terms (sqlglot's in its own)."""
    con = duckdb.connect(":memory:")
    try:
        con.extract_statements(sql)
    except duckdb.Error as error:
        return _first_line(str(error))
    finally:
        con.close()
    return "the safety check cannot read this query (--unsafe runs it as it is)"


def _function_name(func: object) -> str:
    if isinstance(func, exp.Anonymous):
        return str(func.name).lower()
    if isinstance(func, exp.Func):
        return func.sql_name().lower()
    return type(func).__name__.lower()


def _statement_word(sql: str) -> str:
    words = sql.strip().split(maxsplit=1)
    return words[0].upper() if words else "an empty text"


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else text


def connect(tables: dict[str, Path], *, unsafe: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per table; locked down unless ``unsafe``."""
    config: dict[str, str | bool | int | float | list[str]] = {}
    if not unsafe:
        config = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    con = duckdb.connect(":memory:", config=config)
    for name, path in tables.items():
        # Names and paths are ours (file names), quoted by DuckDB's rules; views take no
        # bound parameters.
        con.execute(
            f"CREATE VIEW {duckdb_identifier(name)} AS "
            f"SELECT * FROM read_parquet({duckdb_string(str(path.resolve()))})"
        )
    if not unsafe:
        allowed = ", ".join(duckdb_string(str(path.resolve())) for path in tables.values())
        con.execute(f"SET allowed_paths = [{allowed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    return con


@dataclass(frozen=True)
class QueryOptions:
    sql: str
    warehouse: Path
    unsafe: bool = False


def run_query(options: QueryOptions) -> pl.DataFrame:
    """The query's result.

    Raises:
        QueryRefused: refused by the checks, or failed in DuckDB (one line either way).
    """
    if not options.warehouse.is_dir():
        msg = f"no warehouse folder at {options.warehouse} (--warehouse)"
        raise QueryRefused(msg)
    tables = warehouse_tables(options.warehouse)
    if not options.unsafe:
        check_query(options.sql, set(tables))
    con = connect(tables, unsafe=options.unsafe)
    try:
        return con.sql(options.sql).pl() if options.unsafe else _select(con, options.sql)
    except duckdb.Error as error:
        raise QueryRefused(_first_line(str(error))) from None
    finally:
        con.close()


def _select(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    relation = con.sql(sql)
    if relation is None:  # not a query after all; check_query keeps these out
        msg = "the statement returned no rows"
        raise QueryRefused(msg)
    return relation.pl()


def sql_command(sql: str, warehouse: str | Path, *, unsafe: bool = False) -> int:
    """The CLI's `sql`: prints the result, or one line on stderr; the exit code."""
    try:
        frame = run_query(QueryOptions(sql, Path(warehouse), unsafe))
    except QueryRefused as error:
        print(f"error: sql: {error}", file=sys.stderr)
        return 2
    with pl.Config(tbl_rows=50, tbl_cols=20, fmt_str_lengths=60, tbl_width_chars=160):
        print(frame)
    return 0
