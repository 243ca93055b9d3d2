"""Names, values and comparisons of a Segment query as our SQL expressions (SPEC section 5).

Built as sqlglot trees and printed, so names and strings are always quoted correctly.
"""

from __future__ import annotations

import re

from sqlglot import exp

from audience_pipeline.segment_import.nodes import (
    Arg,
    Chain,
    Compare,
    Junction,
    ListValue,
    Literal,
    Negation,
    Node,
)
from audience_pipeline.segment_import.stream import Stream, Unconvertible, single, text_arg

SUGAR_OPS: dict[str, type[exp.Expr]] = {
    "=": exp.EQ, "!=": exp.NEQ, ">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE,
}  # fmt: skip
MIRROR = {"=": "=", "!=": "!=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}
AGGREGATES: dict[str, type[exp.Expr]] = {
    "sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max,
}  # fmt: skip
DATE_COMPARATORS = ("before_date", "after_date", "within_last", "within_next", "before_last",
                    "after_next")  # fmt: skip
WILDCARDS = re.compile(r"[%_]")


def column(parts: list[str]) -> exp.Expr:
    """A (possibly nested, possibly quoted) name: ``price``, ``context.page.url``."""
    if not parts or any(not p for p in parts):
        raise Unconvertible(f"the name {'.'.join(parts)!r} is empty")
    padded: list[str | None] = [None] * max(0, 4 - len(parts)) + list(parts[:4])
    catalog, db, table, col = padded
    assert col is not None  # noqa: S101 - parts is not empty
    return exp.column(col, table, db, catalog, fields=parts[4:])


def scalar_name(chain: Chain, scope: str) -> list[str]:
    """The name parts of property()/context()/trait() in ``scope`` (``where`` or ``traits``)."""
    if chain.calls:
        raise Unconvertible(f"{chain.head.name}() cannot be followed by .{chain.calls[0].name}()")
    arg = single(chain.head.args, f"{chain.head.name}()")
    name = text_arg(arg, f"{chain.head.name}()")
    kind = chain.head.name
    if kind == "trait":
        return ["trait", name] if scope == "where" else name.split(".")
    if scope != "where":
        raise Unconvertible(f"{kind}() is only valid inside where(...)")
    parts = name.split(".")
    if kind == "context":
        parts = ["context", *parts]
    if arg.label == "parent":
        parts = ["parent", *parts]
    elif arg.label is not None:
        raise Unconvertible(f"{kind}({arg.label}: ...) has no equivalent")
    return parts


def literal(node: Node) -> exp.Expr:
    if not isinstance(node, Literal):
        raise Unconvertible("a comparison here takes a literal value")
    value = node.value
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int | float):
        return exp.Literal.number(str(value))
    return exp.Literal.string(value)


def _values(args: tuple[Arg, ...]) -> list[Node]:
    found: list[Node] = []
    for arg in args:
        found.extend(arg.value.items if isinstance(arg.value, ListValue) else [arg.value])
    if not found:
        raise Unconvertible("a comparison without a value")
    return found


def _like(target: exp.Expr, value: Node, pattern: str) -> exp.Expr:
    if not isinstance(value, Literal) or not isinstance(value.value, str):
        raise Unconvertible("contains/starts_with/ends_with take text")
    if WILDCARDS.search(value.value):
        raise Unconvertible(f"matching text with % or _ ({value.value!r}) has no exact LIKE")
    return exp.Like(this=target, expression=exp.Literal.string(pattern.format(value.value)))


def comparison(target: exp.Expr, op: str, args: tuple[Arg, ...],
               right: exp.Expr | None = None) -> tuple[exp.Expr, bool]:  # fmt: skip
    """(SQL, negated): ``negated`` means the caller must take the two-valued complement
    (``omits`` is Segment's NOT contains, true when the value is missing)."""
    if op in SUGAR_OPS:
        other = right if right is not None else literal(single(args, op).value)
        return SUGAR_OPS[op](this=target, expression=other), False
    if op in ("absent", "exists"):
        if args:
            raise Unconvertible(f"{op}() takes no argument")
        is_null = exp.Is(this=target, expression=exp.Null())
        return (is_null if op == "absent" else exp.Not(this=is_null)), False
    if op in ("contains", "omits"):
        likes = [_like(target, v, "%{}%") for v in _values(args)]
        return exp.or_(*likes), op == "omits"
    if op == "starts_with":
        return _like(target, single(args, op).value, "{}%"), False
    if op == "ends_with":
        return _like(target, single(args, op).value, "%{}"), False
    if op == "one_of":
        return exp.In(this=target, expressions=[literal(v) for v in _values(args)]), False
    if op in DATE_COMPARATORS:
        raise Unconvertible(f"{op}(): our expressions compare values as numbers or text and "
                            "have no dates or current time")  # fmt: skip
    raise Unconvertible(f"unknown comparator {op}")


def _names_in(node: exp.Expr) -> list[exp.Expr]:
    return [c.copy() for c in node.find_all(exp.Column)]


def two_valued_not(inner: exp.Expr) -> exp.Expr:
    """Segment's NOT is true when its operand is not true (a missing value included); SQL's NOT
    of a comparison with a missing name is null. So: NOT (x) OR any name of x IS NULL."""
    missing = [exp.Is(this=c, expression=exp.Null()) for c in _names_in(inner)]
    return exp.or_(exp.Not(this=exp.Paren(this=inner)), *missing)


def compare_parts(node: Compare, scope: str) -> tuple[exp.Expr, bool]:
    left, op, args = node.left, node.op, node.args
    if (
        isinstance(left, Literal)
        and op in MIRROR
        and len(args) == 1
        and isinstance(args[0].value, Chain)
    ):
        left, op, args = args[0].value, MIRROR[op], (Arg(left),)
    if not isinstance(left, Chain) or left.head.name not in ("property", "context", "trait"):
        raise Unconvertible("a filter compares property(), context() or trait() with a value")
    target = column(scalar_name(left, scope))
    right = None
    if op in SUGAR_OPS and len(args) == 1 and isinstance(args[0].value, Chain):
        right = column(scalar_name(args[0].value, scope))
    return comparison(target, op, args, right)


def where_sql(node: Node) -> exp.Expr:
    """A ``where(...)`` filter over one event's properties and context, and profile traits."""
    if isinstance(node, Junction):
        parts = [where_sql(item) for item in node.items]
        return exp.and_(*parts) if node.op == "and" else exp.or_(*parts)
    if isinstance(node, Negation):
        return two_valued_not(where_sql(node.item))
    if isinstance(node, Compare):
        if isinstance(node.left, Chain) and node.left.head.name == "event":
            raise Unconvertible(
                "an event condition inside where(...) maps only as a funnel step: ANDed at the "
                "top of the where of an event counted at least once"
            )
        sql, negated = compare_parts(node, "where")
        return two_valued_not(sql) if negated else sql
    raise Unconvertible("where(...) takes comparisons joined by AND / OR / NOT")


def sql_text(node: exp.Expr) -> str:
    return node.sql(dialect="duckdb")


def aggregate(stream: Stream) -> exp.Expr:
    if stream.reducer == "count":
        if stream.reducer_args:
            raise Unconvertible("count() takes no argument")
        return exp.Count(this=exp.Star())
    if stream.reducer == "unique" and stream.counted_unique:
        name = reduced_property(stream)
        return exp.Count(this=exp.Distinct(expressions=[column(name)]))
    if stream.reducer in AGGREGATES:
        name = reduced_property(stream)
        return AGGREGATES[stream.reducer](this=column(name))
    raise Unconvertible(
        f"an audience on {stream.reducer}(...) has no equivalent (having takes count, count "
        "of unique values, sum, avg, min and max)"
    )


def reduced_property(stream: Stream, *, allow_second: bool = False) -> list[str]:
    args = stream.reducer_args
    if not args or (len(args) > 1 and not allow_second):
        raise Unconvertible(f"{stream.reducer}() takes one property()")
    first = args[0]
    if not isinstance(first.value, Chain) or first.value.head.name not in ("property", "context"):
        raise Unconvertible(f"{stream.reducer}() takes property('name')")
    if first.as_type == "string" and stream.reducer in ("min", "max"):
        raise Unconvertible(f"{stream.reducer}(... as string): min/max here compare numbers only")
    if first.as_type == "array":
        raise Unconvertible(f"{stream.reducer}(... as array) has no equivalent")
    if first.as_type not in (None, "string", "number"):
        raise Unconvertible(f"unknown type `as {first.as_type}`")
    return scalar_name(first.value, "where")


__all__ = [
    "SUGAR_OPS",
    "aggregate",
    "column",
    "comparison",
    "compare_parts",
    "literal",
    "reduced_property",
    "sql_text",
    "two_valued_not",
    "where_sql",
]
