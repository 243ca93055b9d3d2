"""Statements over the SQL engines' own temporary relations, built as sqlglot trees.

Relation names and literals go through sqlglot (quoted and escaped there), never into text.
"""

from __future__ import annotations

from sqlglot import exp


def relation(name: str) -> exp.Table:
    """A relation named `name` (always quoted: names are compared as written)."""
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def create_as(name: str, query: exp.Expr, *, view: bool = False) -> exp.Create:
    """CREATE OR REPLACE TEMPORARY TABLE|VIEW "name" AS <query>."""
    return exp.Create(
        this=relation(name),
        kind="VIEW" if view else "TABLE",
        replace=True,
        expression=query,
        properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
    )


def select_all(name: str) -> exp.Select:
    """SELECT * FROM "name"."""
    return exp.select("*").from_(relation(name))


def read_parquet(path: str) -> exp.Func:
    """DuckDB's read_parquet('<path>') (the path a string literal)."""
    return exp.func("read_parquet", exp.Literal.string(path))
