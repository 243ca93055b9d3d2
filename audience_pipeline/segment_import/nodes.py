"""The syntax tree of a Segment query: what the parser builds and the converter reads."""

from __future__ import annotations

from dataclasses import dataclass

EXTRACTORS = ("event", "trait", "property", "context", "literal")
TIME_UNITS = {
    "minute": "m", "minutes": "m", "hour": "h", "hours": "h", "day": "d", "days": "d",
    "week": "w", "weeks": "w",
}  # fmt: skip


@dataclass(frozen=True)
class Literal:
    value: str | int | float | bool | None


@dataclass(frozen=True)
class Duration:
    amount: int
    unit: str  # m | h | d | w

    @property
    def text(self) -> str:
        return f"{self.amount}{self.unit}"


@dataclass(frozen=True)
class ListValue:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Arg:
    """One argument: ``parent: 5 days`` has label ``parent``; ``x as string`` has ``as_type``."""

    value: Node
    label: str | None = None
    as_type: str | None = None


@dataclass(frozen=True)
class Call:
    name: str  # lower-cased function name
    args: tuple[Arg, ...]
    position: int


@dataclass(frozen=True)
class Chain:
    """``extractor(...)`` followed by ``.call(...)``s: ``event('X').within(7 days).count()``."""

    head: Call
    calls: tuple[Call, ...]


@dataclass(frozen=True)
class Compare:
    """``left OP right`` (sugar) or ``left.op(args)``: op is =, !=, >, >=, <, <= or a name."""

    left: Node
    op: str
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Junction:
    op: str  # and | or
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Negation:
    item: Node


@dataclass(frozen=True)
class Quantified:
    kind: str  # any | all (account audiences: over the member users)
    item: Node


Node = Literal | Duration | ListValue | Chain | Compare | Junction | Negation | Quantified

__all__ = [
    "EXTRACTORS", "TIME_UNITS", "Arg", "Call", "Chain", "Compare", "Duration", "Junction",
    "ListValue", "Literal", "Negation", "Node", "Quantified",
]  # fmt: skip
