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
    """Events with as_of - lower < ts <= as_of - upper (seconds). `within: D` is (D, 0).

    `lower` None: no lower bound (every event at or before as_of - upper), which the
    section-7 behaviour nodes need for "none/one at or before T - D".
    """

    lower: int | None
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


@dataclass(frozen=True)
class AtLeast:
    """At least `count` of the children hold (`regularly`'s M of K periods)."""

    count: int
    children: tuple[Condition, ...]


BehaviourKind = TLiteral["first_time", "stopped", "restarted", "regularly"]


@dataclass(frozen=True)
class Behaviour:
    """A section-7 behaviour node (first_time, stopped, restarted, regularly).

    `body` is its meaning in terms of event conditions (windows, counts and `since`), which every
    backend already evaluates; the node itself only keeps what explain shows. `params` holds the
    node's durations in seconds and counts by field name.
    """

    kind: BehaviourKind
    events: tuple[str, ...]
    params: tuple[tuple[str, int], ...]
    body: Condition

    def param(self, name: str) -> int:
        return dict(self.params)[name]


@dataclass(frozen=True)
class Sample:
    """The entity's bucket (0..9999, SPEC 7) is in [low, high); `id_types` is the space's
    identifier priority (the anchor is the first type a profile holds)."""

    salt: str
    low: int  # hundredths of a percent: `from: 33.33` is 3333
    high: int
    id_types: tuple[str, ...]


Condition = (
    AllOf | AnyOf | NotC | EventCond | TraitsCond | AudienceRef | Funnel | UsersCond
    | AtLeast | Behaviour | Sample
)  # fmt: skip


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
    "score",
]
ScoreName = TLiteral["quantity", "frequency", "recency", "momentum", "consistency"]


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
    score: ScoreName | None = None  # kind score: which behavioural score (SPEC 7)


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
