"""Segment computed traits as ours (SPEC section 3): count, sum, avg, min, max, first, last,
most frequent (mode), unique list and unique count, over events with filters and windows."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from audience_pipeline.segment_import.expressions import reduced_property, sql_text, where_sql
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
from audience_pipeline.segment_import.stream import Unconvertible, read_stream, window

TRAIT_KINDS = {"count": "count", "sum": "sum", "avg": "avg", "min": "min", "max": "max",
               "first": "first", "last": "last", "mode": "most_frequent",
               "unique": "unique_list"}  # fmt: skip


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
        out["property"] = ".".join(reduced_property(stream, allow_second=kind == "most_frequent"))
    if kind == "most_frequent":
        out["min_frequency"] = _min_frequency(stream.reducer_args)
    if any(isinstance(n, Compare) and isinstance(n.left, Chain) and n.left.head.name == "event"
           for n in stream.where):  # fmt: skip
        raise Unconvertible("an event inside a computed trait's where() has no equivalent")
    if stream.where:
        out["where"] = sql_text(exp.and_(*[where_sql(n) for n in stream.where]))
    window(stream, out)
    return out


def _min_frequency(args: tuple[Arg, ...]) -> int:
    if len(args) < 2:
        return 1  # mode(property) without a minimum: every value counts
    value = args[1].value
    if not isinstance(value, Literal) or not isinstance(value.value, int) or value.value < 1:
        raise Unconvertible("mode()'s minimum frequency is a whole number >= 1")
    return value.value


__all__ = ["trait_definition"]
