"""Reading a Segment chain: the event stream, its filters and its reducer.

Anything without an exact equivalent raises :class:`Unconvertible` with the reason: a
definition is converted whole or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from audience_pipeline.segment_import.nodes import Arg, Chain, Duration, Junction, Literal, Node


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


def text_arg(arg: Arg, what: str) -> str:
    if isinstance(arg.value, Literal) and isinstance(arg.value.value, str):
        return arg.value.value
    raise Unconvertible(f"{what} takes a quoted name")


def single(args: tuple[Arg, ...], what: str) -> Arg:
    if len(args) != 1:
        raise Unconvertible(f"{what} takes one argument, found {len(args)}")
    return args[0]


def conjuncts(node: Node) -> list[Node]:
    if isinstance(node, Junction) and node.op == "and":
        return [part for item in node.items for part in conjuncts(item)]
    return [node]


def seconds(duration: Duration) -> int:
    return duration.amount * {"m": 60, "h": 3600, "d": 86400, "w": 604800}[duration.unit]


def duration(arg: Arg, what: str) -> Duration:
    if not isinstance(arg.value, Duration):
        raise Unconvertible(f"{what} takes a duration like `7 days`")
    if arg.value.amount <= 0:
        raise Unconvertible(f"{what}: a window of {arg.value.amount} has no equivalent (> 0)")
    return arg.value


def read_stream(chain: Chain) -> Stream:
    """The event stream a chain describes; raises Unconvertible for filters we lack."""
    stream = Stream(text_arg(single(chain.head.args, "event()"), "event()"))
    for call in chain.calls:
        if stream.reducer is not None:
            if stream.reducer == "unique" and call.name == "count" and not call.args:
                stream.counted_unique = True
                continue
            raise Unconvertible(f".{call.name}() after .{stream.reducer}() has no equivalent")
        if call.name == "where":
            stream.where.extend(conjuncts(single(call.args, "where()").value))
        elif call.name == "within":
            arg = single(call.args, "within()")
            if arg.label == "parent":
                stream.parent_within = duration(arg, "within(parent: ...)")
            elif arg.label is None:
                stream.within = duration(arg, "within()")
            else:
                raise Unconvertible(f"within({arg.label}: ...) has no equivalent")
        elif call.name == "between":
            if len(call.args) != 2 or any(a.label for a in call.args):
                raise Unconvertible("between() relative to another event has no equivalent")
            low, high = sorted((duration(a, "between()") for a in call.args), key=seconds)
            if seconds(low) == seconds(high):
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


def window(stream: Stream, target: dict[str, Any]) -> None:
    if stream.within is not None:
        target["within"] = stream.within.text
    if stream.between is not None:
        target["between"] = [stream.between[0].text, stream.between[1].text]


__all__ = [
    "Stream",
    "Unconvertible",
    "conjuncts",
    "duration",
    "read_stream",
    "seconds",
    "single",
    "text_arg",
    "window",
]
