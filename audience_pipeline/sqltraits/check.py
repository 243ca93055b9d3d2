"""Validation of a SQL trait's query: one read-only SELECT over known relations (SPEC 7a).

Allowed: WITH, UNION / INTERSECT / EXCEPT, any scalar or aggregate function that reads no file,
network or environment. Rejected: every statement but a query, table functions, qualified
names (`db.table`, `schema.table`), and functions that reach outside the inputs. At run time the
query also runs on a read-only connection with external access off, so this is the first of two
guards, not the only one.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

INPUT_TABLES = ("events", "identifies", "groups")
# Functions that reach files, the network, the environment or the catalog (prefixes and names).
FORBIDDEN_PREFIXES = ("read_", "parquet_", "csv_", "json_scan", "sniff_", "postgres_", "sqlite_",
                      "mysql_", "iceberg_", "delta_", "duckdb_", "pragma_", "http", "s3", "glob")  # fmt: skip
FORBIDDEN_NAMES = {"getenv", "current_setting", "query", "query_table", "load", "install",
                   "checkpoint", "system", "shell", "copy", "attach", "detach", "export",
                   "import", "set", "reset", "call", "which_secret"}  # fmt: skip
FORBIDDEN_NODES: tuple[type[exp.Expr], ...] = (
    exp.Create, exp.Drop, exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Copy, exp.Command,
    exp.Pragma, exp.Set, exp.Use, exp.Alter, exp.TruncateTable, exp.Describe, exp.Transaction,
    exp.Commit, exp.Rollback, exp.LoadData, exp.Cache, exp.Uncache, exp.Refresh,
)  # fmt: skip


class QueryError(ValueError):
    """A query that is not one read-only SELECT over known relations."""

    def __init__(self, message: str, text: str) -> None:
        super().__init__(f"{message}: {text}")
        self.message = message
        self.text = text


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def check_query(query: str, sources: set[str]) -> exp.Query:
    """Parse and check one query; returns its AST. Raises QueryError naming the offence."""
    try:
        statements = [s for s in sqlglot.parse(query, read="duckdb") if s is not None]
    except ParseError as error:
        raise QueryError("not valid SQL", str(error).splitlines()[0]) from None
    if len(statements) != 1:
        raise QueryError("a SQL trait is exactly one SELECT", f"{len(statements)} statements")
    tree = statements[0]
    if not isinstance(tree, exp.Query) or isinstance(tree, exp.Values):
        raise QueryError("a SQL trait is one SELECT (no DDL, DML, COPY, ATTACH or PRAGMA)",
                         tree.sql(dialect="duckdb")[:80])  # fmt: skip
    for node in tree.walk():
        if isinstance(node, FORBIDDEN_NODES):
            raise QueryError("only SELECT is allowed", node.sql(dialect="duckdb")[:80])
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name in FORBIDDEN_NAMES or name.startswith(FORBIDDEN_PREFIXES):
                raise QueryError("function not allowed (files, network, environment)", name)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    known = set(INPUT_TABLES) | {s.lower() for s in sources} | ctes
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            raise QueryError("table functions are not allowed", table.sql(dialect="duckdb")[:80])
        if table.args.get("db") or table.args.get("catalog"):
            raise QueryError("qualified table names are not allowed", table.sql(dialect="duckdb"))
        if table.name.lower() not in known:
            allowed = ", ".join(sorted(known))
            raise QueryError(f"unknown relation (known: {allowed})", table.name)
    return tree


def first_column(tree: exp.Query) -> str | None:
    """The name of the query's first output column, when it can be told without running it."""
    select = tree
    while isinstance(select, exp.SetOperation):
        select = select.this
    if not isinstance(select, exp.Select) or not select.expressions:
        return None
    first = select.expressions[0]
    if isinstance(first, exp.Star) or (
        isinstance(first, exp.Column) and isinstance(first.this, exp.Star)
    ):
        return None
    name = first.alias_or_name
    return name or None


__all__ = ["INPUT_TABLES", "QueryError", "check_query", "first_column"]
