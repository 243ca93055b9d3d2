"""Small AST helpers for the script builders.

Fixed queries over the script's own tables are written as DuckDB text and parsed once by sqlglot;
anything that comes from definitions or the warehouse (names of columns, literal values) is put
in as AST nodes through `fill`, never as text.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

import sqlglot
from sqlglot import exp


@cache
def _parsed(text: str) -> exp.Expr:
    return sqlglot.parse_one(text, read="duckdb")


def fill(text: str, **nodes: exp.Expr) -> exp.Expr:
    """Parse `text` (DuckDB syntax, our own names only) and put `nodes` in place of the bare
    columns and tables named like the keywords (``__x``)."""

    def swap(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name in nodes:
            return nodes[node.name].copy()
        if isinstance(node, exp.Table) and not node.db and node.name in nodes:
            return nodes[node.name].copy()
        return node

    return _parsed(text).copy().transform(swap)


def select(text: str, **nodes: exp.Expr) -> exp.Select:
    tree = fill(text, **nodes)
    assert isinstance(tree, exp.Select | exp.Union)
    return tree  # type: ignore[return-value]


def qcol(name: str, table: str | None = None) -> exp.Column:
    """A quoted column (names from the warehouse or definitions)."""
    return exp.column(exp.to_identifier(name, quoted=True), table)


def lit(value: str | int | float) -> exp.Expr:
    return exp.Literal.string(value) if isinstance(value, str) else exp.Literal.number(value)


def null() -> exp.Null:
    return exp.null()


def text_null() -> exp.Expr:
    return exp.Cast(this=exp.null(), to=exp.DataType.build("TEXT"))


def concat(*parts: exp.Expr) -> exp.Expr:
    result = parts[0]
    for part in parts[1:]:
        result = exp.DPipe(this=result, expression=part)
    return result


def case_of(value: exp.Expr, mapping: Mapping[int, exp.Expr]) -> exp.Expr:
    """CASE value WHEN k THEN v ... END."""
    node = exp.Case(this=value.copy())
    for key, result in mapping.items():
        node = node.when(lit(key), result.copy())
    return node


def coalesce(*values: exp.Expr) -> exp.Expr:
    if len(values) == 1:
        return values[0]
    return exp.Coalesce(this=values[0], expressions=list(values[1:]))


def first_present(*values: exp.Expr | None) -> exp.Expr:
    """COALESCE of the values a table has (None: no such column); a text NULL if none."""
    present = [v for v in values if v is not None]
    return coalesce(*present) if present else text_null()
