"""Segment audience queries as our conditions (SPEC section 4): events with their counts and
windows, traits, audience references, and/or/not, ANY/ALL over an account's users, funnels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from audience_pipeline.segment_import.expressions import (
    SUGAR_OPS,
    aggregate,
    compare_parts,
    literal,
    sql_text,
    where_sql,
)
from audience_pipeline.segment_import.nodes import (
    Arg,
    Chain,
    Compare,
    Junction,
    Literal,
    Negation,
    Node,
    Quantified,
)
from audience_pipeline.segment_import.stream import (
    Stream,
    Unconvertible,
    read_stream,
    single,
    text_arg,
    window,
)


@dataclass(frozen=True)
class Scope:
    """Where a condition sits: the definition's level, inside ``users:``, known audiences."""

    level: str
    audience_keys: frozenset[str]
    in_users: bool = False


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
    arg = single(args, what)
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
    window(stream, out)
    measured = aggregate(stream)
    if not (stream.reducer == "count" and _at_least_once(node.op, value)):
        out["having"] = sql_text(SUGAR_OPS[node.op](this=measured, expression=literal(
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
    window(stream, out)
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
    name = text_arg(single(node.left.head.args, "trait()"), "trait()")
    if name in scope.audience_keys:
        return _audience_reference(name, node)
    sql, negated = compare_parts(node, "traits")
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


__all__ = ["Scope", "condition"]
