"""The intermediate representation: frozen, typed nodes shared by every backend.

Expressions (`where`, `traits`, `having`) and conditions are parsed and validated once into these
nodes; the Polars engine and the SQL backend only ever read them. Nothing here knows about YAML,
Polars or sqlglot.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal as TLiteral

Scope = TLiteral["prop", "context", "trait", "parent_prop", "parent_context"]
CmpOp = TLiteral["=", "<>", "<", "<=", ">", ">="]
ArithOp = TLiteral["+", "-", "*", "/", "%"]
FuncName = TLiteral["lower", "upper", "length", "coalesce", "abs"]
AggName = TLiteral["count_star", "count", "count_distinct", "sum", "avg", "min", "max"]
Level = TLiteral["user", "account"]
UsersMode = TLiteral["any", "all", "none"]


# --- expressions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lit:
    value: float | str | bool | None


@dataclass(frozen=True)
class Ref:
    """A name: an event property, the call's context, an entity trait, or the funnel parent's."""

    scope: Scope
    path: tuple[str, ...]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class Cmp:
    op: CmpOp
    left: Expr
    right: Expr


@dataclass(frozen=True)
class And:
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    arg: Expr


@dataclass(frozen=True)
class IsNull:
    arg: Expr


@dataclass(frozen=True)
class Like:
    arg: Expr
    pattern: str
    case_insensitive: bool


@dataclass(frozen=True)
class Arith:
    op: ArithOp
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg:
    arg: Expr


@dataclass(frozen=True)
class Func:
    name: FuncName
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Agg:
    """An aggregate in `having`; `arg` is None for count(*)."""

    name: AggName
    arg: Ref | None


Expr = Lit | Ref | Cmp | And | Or | Not | IsNull | Like | Arith | Neg | Func | Agg


# --- time --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """Events with as_of - lower < ts <= as_of - upper (seconds). `within: D` is (D, 0)."""

    lower: int
    upper: int = 0


# --- conditions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class NotC:
    child: Condition


@dataclass(frozen=True)
class EventCond:
    events: tuple[str, ...]
    where: Expr | None
    window: Window | None
    having: Expr
    since: datetime | None  # backfill: false -> only events at or after this


@dataclass(frozen=True)
class TraitsCond:
    expr: Expr


@dataclass(frozen=True)
class AudienceRef:
    key: str


@dataclass(frozen=True)
class FunnelStep:
    events: tuple[str, ...]
    where: Expr | None
    within: int | None  # seconds after the previous step's event (steps after the first)
    performed: bool


@dataclass(frozen=True)
class Funnel:
    window: Window | None  # window of the first step's event
    steps: tuple[FunnelStep, ...]
    since: datetime | None


@dataclass(frozen=True)
class UsersCond:
    mode: UsersMode
    condition: Condition


Condition = AllOf | AnyOf | NotC | EventCond | TraitsCond | AudienceRef | Funnel | UsersCond


# --- definitions -------------------------------------------------------------------------------

TraitKind = TLiteral[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "most_frequent",
    "first",
    "last",
    "unique_list",
    "unique_count",
]


@dataclass(frozen=True)
class Trait:
    key: str
    level: Level
    kind: TraitKind
    events: tuple[str, ...]
    property: Ref | None  # None for count
    where: Expr | None
    window: Window | None
    min_frequency: int


@dataclass(frozen=True)
class Audience:
    key: str
    name: str
    level: Level
    include_anonymous: bool
    condition: Condition


@dataclass(frozen=True)
class Space:
    """A whole compiled space: computed traits and audiences in dependency order."""

    traits: tuple[Trait, ...]
    audiences: tuple[Audience, ...]
