"""Segment query syntax trees -> our definitions (SPEC sections 3 and 4).

Expressions for ``where``, ``traits`` and ``having`` are built as sqlglot trees and printed,
so names and strings are always quoted correctly. Anything without an exact equivalent raises
:class:`Unconvertible` with the reason: a definition is converted whole or not at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from audience_pipeline.segment_import.nodes import (
    Arg,
    Chain,
    Compare,
    Duration,
    Junction,
    ListValue,
    Literal,
    Negation,
    Node,
    Quantified,
)

SUGAR_OPS: dict[str, type[exp.Expr]] = {
    "=": exp.EQ, "!=": exp.NEQ, ">": exp.GT, ">=": exp.GTE, "<": exp.LT, "<=": exp.LTE,
}  # fmt: skip
MIRROR = {"=": "=", "!=": "!=", ">": "<", ">=": "<=", "<": ">", "<=": ">="}
AGGREGATES: dict[str, type[exp.Expr]] = {
    "sum": exp.Sum, "avg": exp.Avg, "min": exp.Min, "max": exp.Max,
}  # fmt: skip
DATE_COMPARATORS = ("before_date", "after_date", "within_last", "within_next", "before_last",
                    "after_next")  # fmt: skip
TRAIT_KINDS = {"count": "count", "sum": "sum", "avg": "avg", "min": "min", "max": "max",
               "first": "first", "last": "last", "mode": "most_frequent",
               "unique": "unique_list"}  # fmt: skip
WILDCARDS = re.compile(r"[%_]")


class Unconvertible(Exception):
    """A part of the query has no equivalent in our definitions; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Stream:
    """``event(...)`` with its filters and its reducer, read off a chain."""

    event: str
    where: list[Node] = field(default_factory=list)  # conjuncts of every .where(...)
    within: Duration | None = None
    between: tuple[Duration, Duration] | None = None
    parent_within: Duration | None = None  # within(parent: ...): funnel steps only
    reducer: str | None = None
    reducer_args: tuple[Arg, ...] = ()
    counted_unique: bool = False  # unique(...).count()


@dataclass(frozen=True)
class Scope:
    """Where a condition sits: the definition's level, inside ``users:``, known audiences."""

    level: str
    audience_keys: frozenset[str]
    in_users: bool = False


# --- small readers ---------------------------------------------------------------------------


def _text(arg: Arg, what: str) -> str:
    if isinstance(arg.value, Literal) and isinstance(arg.value.value, str):
        return arg.value.value
    raise Unconvertible(f"{what} takes a quoted name")


def _single(args: tuple[Arg, ...], what: str) -> Arg:
    if len(args) != 1:
        raise Unconvertible(f"{what} takes one argument, found {len(args)}")
    return args[0]


def _conjuncts(node: Node) -> list[Node]:
    if isinstance(node, Junction) and node.op == "and":
        return [part for item in node.items for part in _conjuncts(item)]
    return [node]


def _seconds(duration: Duration) -> int:
    return duration.amount * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[duration.unit]


def _duration(arg: Arg, what: str) -> Duration:
    if not isinstance(arg.value, Duration):
        raise Unconvertible(f"{what} takes a duration like `7 days`")
    if arg.value.amount <= 0:
        raise Unconvertible(f"{what}: a window of {arg.value.amount} has no equivalent (> 0)")
    return arg.value


def read_stream(chain: Chain) -> Stream:
    """The event stream a chain describes; raises Unconvertible for filters we lack."""
    stream = Stream(_text(_single(chain.head.args, "event()"), "event()"))
    for call in chain.calls:
        if stream.reducer is not None:
            if stream.reducer == "unique" and call.name == "count" and not call.args:
                stream.counted_unique = True
                continue
            raise Unconvertible(f".{call.name}() after .{stream.reducer}() has no equivalent")
        if call.name == "where":
            stream.where.extend(_conjuncts(_single(call.args, "where()").value))
        elif call.name == "within":
            arg = _single(call.args, "within()")
            if arg.label == "parent":
                stream.parent_within = _duration(arg, "within(parent: ...)")
            elif arg.label is None:
                stream.within = _duration(arg, "within()")
            else:
                raise Unconvertible(f"within({arg.label}: ...) has no equivalent")
        elif call.name == "between":
            if len(call.args) != 2 or any(a.label for a in call.args):
                raise Unconvertible("between() relative to another event has no equivalent")
            low, high = sorted((_duration(a, "between()") for a in call.args), key=_seconds)
            if _seconds(low) == _seconds(high):
                raise Unconvertible("between() with equal ends selects nothing")
            stream.between = (low, high)
        elif call.name == "sources":
            raise Unconvertible("sources(exclude: ...): events here keep no Segment source id, "
                                "so a source filter has no equivalent")  # fmt: skip
        elif call.name in ("count", "sum", "avg", "min", "max", "mode", "first", "last", "unique"):
            stream.reducer, stream.reducer_args = call.name, call.args
        else:
            raise Unconvertible(f"unknown function .{call.name}()")
    if stream.within is not None and stream.between is not None:
        raise Unconvertible("both within() and between() on one event")
    return stream


# --- names and values as SQL -------------------------------------------------------------------


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
    arg = _single(chain.head.args, f"{chain.head.name}()")
    name = _text(arg, f"{chain.head.name}()")
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
        other = right if right is not None else literal(_single(args, op).value)
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
        return _like(target, _single(args, op).value, "{}%"), False
    if op == "ends_with":
        return _like(target, _single(args, op).value, "%{}"), False
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


def _compare_parts(node: Compare, scope: str) -> tuple[exp.Expr, bool]:
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
        sql, negated = _compare_parts(node, "where")
        return two_valued_not(sql) if negated else sql
    raise Unconvertible("where(...) takes comparisons joined by AND / OR / NOT")


def sql_text(node: exp.Expr) -> str:
    return node.sql(dialect="duckdb")


# --- audiences ---------------------------------------------------------------------------------


def condition(node: Node, scope: Scope) -> dict[str, Any]:
    """One condition node of an audience (SPEC section 4)."""
    if isinstance(node, Junction):
        key = "all" if node.op == "and" else "any"
        children: list[dict[str, Any]] = []
        for item in node.items:
            child = condition(item, scope)
            children.extend(child[key] if list(child) == [key] else [child])
        return {key: children}
    if isinstance(node, Negation):
        return {"not": condition(node.item, scope)}
    if isinstance(node, Quantified):
        return _quantified(node, scope)
    if isinstance(node, Compare) and isinstance(node.left, Chain):
        head = node.left.head.name
        if head == "event":
            return event_condition(node, scope)
        if head == "trait":
            return trait_condition(node, scope)
        raise Unconvertible(f"{head}() is only valid inside where(...) or a reducer")
    if isinstance(node, Chain):
        raise Unconvertible("an audience query ends in a comparison (`.count() >= 1`)")
    raise Unconvertible("an audience query is a condition, not a value")


def _quantified(node: Quantified, scope: Scope) -> dict[str, Any]:
    if scope.level != "account" or scope.in_users:
        raise Unconvertible(f"{node.kind.upper()} applies to account audiences (type ACCOUNTS)")
    inner = Scope("user", scope.audience_keys, in_users=True)
    if node.kind == "all" and isinstance(node.item, Negation):
        return {"users": "none", "condition": condition(node.item.item, inner)}
    return {"users": node.kind, "condition": condition(node.item, inner)}


def _number(args: tuple[Arg, ...], what: str) -> int | float:
    arg = _single(args, what)
    if (
        not isinstance(arg.value, Literal)
        or isinstance(arg.value.value, bool)
        or not isinstance(arg.value.value, int | float)
    ):
        raise Unconvertible(f"{what} compares with a number")
    return arg.value.value


def _at_least_once(op: str, value: float) -> bool:
    return (op == ">=" and value == 1) or (op == ">" and value == 0)


def _never(op: str, value: float) -> bool:
    return (op == "=" and value == 0) or (op == "<" and value == 1) or (op == "<=" and value == 0)


def _aggregate(stream: Stream) -> exp.Expr:
    if stream.reducer == "count":
        if stream.reducer_args:
            raise Unconvertible("count() takes no argument")
        return exp.Count(this=exp.Star())
    if stream.reducer == "unique" and stream.counted_unique:
        name = _reduced_property(stream)
        return exp.Count(this=exp.Distinct(expressions=[column(name)]))
    if stream.reducer in AGGREGATES:
        name = _reduced_property(stream)
        return AGGREGATES[stream.reducer](this=column(name))
    raise Unconvertible(
        f"an audience on {stream.reducer}(...) has no equivalent (having takes count, count "
        "of unique values, sum, avg, min and max)"
    )


def _reduced_property(stream: Stream, *, allow_second: bool = False) -> list[str]:
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


def _window(stream: Stream, target: dict[str, Any]) -> None:
    if stream.within is not None:
        target["within"] = stream.within.text
    if stream.between is not None:
        target["between"] = [stream.between[0].text, stream.between[1].text]


def event_condition(node: Compare, scope: Scope) -> dict[str, Any]:
    assert isinstance(node.left, Chain)  # noqa: S101 - condition() checked it
    stream = read_stream(node.left)
    if stream.parent_within is not None:
        raise Unconvertible("within(parent: ...) belongs to an event inside another's where()")
    if node.op not in SUGAR_OPS:
        raise Unconvertible(f"{node.op}() on an event's {stream.reducer or 'stream'} has no "
                            "equivalent (compare with =, !=, >, >=, <, <=)")  # fmt: skip
    if stream.reducer is None:
        raise Unconvertible("an event condition ends in a reducer such as .count()")
    value = _number(node.args, f"{stream.reducer}()")
    steps = [n for n in stream.where if isinstance(n, Compare) and isinstance(n.left, Chain)
             and n.left.head.name == "event"]  # fmt: skip
    filters = [n for n in stream.where if n not in steps]
    if steps:
        return _funnel(stream, filters, steps, node.op, value)
    out: dict[str, Any] = {"event": stream.event}
    if filters:
        out["where"] = sql_text(exp.and_(*[where_sql(f) for f in filters]))
    _window(stream, out)
    aggregate = _aggregate(stream)
    if not (stream.reducer == "count" and _at_least_once(node.op, value)):
        out["having"] = sql_text(SUGAR_OPS[node.op](this=aggregate, expression=literal(
            Literal(value))))  # fmt: skip
    return out


def _funnel(stream: Stream, filters: list[Node], steps: list[Compare], op: str,
            value: float) -> dict[str, Any]:  # fmt: skip
    if stream.reducer != "count" or not _at_least_once(op, value):
        raise Unconvertible("a funnel (an event inside another's where) maps when the first "
                            "event is counted at least once")  # fmt: skip
    if len(steps) != 1:
        raise Unconvertible("a funnel step with two following events has no equivalent (ours "
                            "is one chain of steps)")  # fmt: skip
    first: dict[str, Any] = {"event": stream.event}
    if filters:
        first["where"] = sql_text(exp.and_(*[where_sql(f) for f in filters]))
    out: dict[str, Any] = {}
    _window(stream, out)
    out["steps"] = [first, *_next_steps(steps[0])]
    return {"funnel": out}


def _next_steps(node: Compare) -> list[dict[str, Any]]:
    assert isinstance(node.left, Chain)  # noqa: S101 - the caller picked event chains
    stream = read_stream(node.left)
    if stream.reducer != "count" or node.op not in SUGAR_OPS:
        raise Unconvertible("a funnel step is counted with .count()")
    value = _number(node.args, "count()")
    if _at_least_once(node.op, value):
        performed = True
    elif _never(node.op, value):
        performed = False
    else:
        raise Unconvertible("a funnel step is performed (count() >= 1) or not (count() = 0)")
    if stream.within is not None or stream.between is not None:
        raise Unconvertible("a funnel step's window is relative to the previous step: "
                            "within(parent: ...)")  # fmt: skip
    nested = [n for n in stream.where if isinstance(n, Compare) and isinstance(n.left, Chain)
              and n.left.head.name == "event"]  # fmt: skip
    filters = [n for n in stream.where if n not in nested]
    step: dict[str, Any] = {"event": stream.event}
    if filters:
        step["where"] = sql_text(exp.and_(*[where_sql(f) for f in filters]))
    if stream.parent_within is not None:
        step["within"] = stream.parent_within.text
    if not performed:
        step["performed"] = False
    if nested and not performed:
        raise Unconvertible("a step that is not performed cannot be followed by another")
    if len(nested) > 1:
        raise Unconvertible("a funnel step with two following events has no equivalent")
    return [step, *(_next_steps(nested[0]) if nested else [])]


def trait_condition(node: Compare, scope: Scope) -> dict[str, Any]:
    assert isinstance(node.left, Chain)  # noqa: S101 - condition() checked it
    name = _text(_single(node.left.head.args, "trait()"), "trait()")
    if name in scope.audience_keys:
        return _audience_reference(name, node)
    sql, negated = _compare_parts(node, "traits")
    if negated:  # `not:` is two-valued, as Segment's omits is
        return {"not": {"traits": sql_text(sql)}}
    return {"traits": sql_text(sql)}


def _audience_reference(key: str, node: Compare) -> dict[str, Any]:
    """``trait('other_audience') = true``: Segment names audiences as boolean traits."""
    member: bool | None = None
    if node.op in ("=", "!=") and len(node.args) == 1 and isinstance(node.args[0].value, Literal):
        value = node.args[0].value.value
        if isinstance(value, bool):
            member = value if node.op == "=" else not value
    elif node.op == "exists" and not node.args:
        member = True  # Segment sets the audience trait only on members (true) and leavers
    if member is None:
        raise Unconvertible(f"audience {key} is compared with = true / = false only")
    return {"audience": key} if member else {"not": {"audience": key}}


# --- computed traits ---------------------------------------------------------------------------


def trait_definition(node: Node) -> dict[str, Any]:
    """kind / event / property / where / window of a computed trait (SPEC section 3)."""
    if isinstance(node, Compare | Junction | Negation | Quantified):
        raise Unconvertible("a computed trait's query ends in a reducer (count, sum, avg, min, "
                            "max, mode, first, last, unique), not a comparison")  # fmt: skip
    if not isinstance(node, Chain) or node.head.name != "event":
        raise Unconvertible("a computed trait here is computed from events: event(...)...")
    stream = read_stream(node)
    if stream.parent_within is not None:
        raise Unconvertible("within(parent: ...) belongs to a funnel step")
    if stream.reducer is None:
        raise Unconvertible("a computed trait's query ends in a reducer such as .count()")
    kind = "unique_count" if stream.counted_unique else TRAIT_KINDS[stream.reducer]
    out: dict[str, Any] = {"kind": kind, "event": stream.event}
    if kind == "count":
        if stream.reducer_args:
            raise Unconvertible("count() takes no argument")
    else:
        out["property"] = ".".join(_reduced_property(stream, allow_second=kind == "most_frequent"))
    if kind == "most_frequent":
        out["min_frequency"] = _min_frequency(stream.reducer_args)
    if any(isinstance(n, Compare) and isinstance(n.left, Chain) and n.left.head.name == "event"
           for n in stream.where):  # fmt: skip
        raise Unconvertible("an event inside a computed trait's where() has no equivalent")
    if stream.where:
        out["where"] = sql_text(exp.and_(*[where_sql(n) for n in stream.where]))
    _window(stream, out)
    return out


def _min_frequency(args: tuple[Arg, ...]) -> int:
    if len(args) < 2:
        return 1  # mode(property) without a minimum: every value counts
    value = args[1].value
    if not isinstance(value, Literal) or not isinstance(value.value, int) or value.value < 1:
        raise Unconvertible("mode()'s minimum frequency is a whole number >= 1")
    return value.value


__all__ = ["Scope", "Unconvertible", "condition", "read_stream", "trait_definition"]
