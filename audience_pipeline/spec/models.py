"""Typed models of the user's definitions (definitions/space.yaml, traits/, audiences/).

These are plain data: the loader builds them from YAML and the validator checks them. Conditions
stay as raw mappings here; `audience_pipeline.spec.conditions` turns them into the IR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from audience_pipeline.ir.nodes import Window

DEFAULT_BLOCKED_VALUES = ("", "null", "undefined", "none", "0", "unknown", "anonymous")

TRAIT_KINDS = (
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
)

Level = Literal["user", "account"]


@dataclass(frozen=True)
class IdentifierSpec:
    """One identifier type: where its values come from and how many a profile may hold."""

    type: str
    paths: tuple[
        str, ...
    ]  # dotted paths into the message, e.g. ("traits.email", "context.traits.email")
    limit: int
    priority: int  # 0 = highest


@dataclass(frozen=True)
class SourceSpec:
    """A table SQL traits may read (space.yaml `sources:`): a Parquet or CSV file (`path`,
    relative to the definitions folder) or a PostgreSQL table (`dsn` + `table`)."""

    name: str
    path: str | None = None
    dsn: str | None = None
    table: str | None = None


@dataclass(frozen=True)
class SpaceConfig:
    """definitions/space.yaml."""

    space: str = "default"
    timezone: str = "UTC"
    identifiers: tuple[IdentifierSpec, ...] = (
        IdentifierSpec("user_id", ("userId",), 1, 0),
        IdentifierSpec("email", ("traits.email", "context.traits.email"), 5, 1),
        IdentifierSpec("anonymous_id", ("anonymousId",), 100, 2),
    )
    blocked_values: frozenset[str] = frozenset(DEFAULT_BLOCKED_VALUES)
    schedule: str = "0 3 * * *"  # cron for the daily recompute (orchestration)
    size_change_warning: float = 0.5  # asset check: warn when an audience moves more than this
    custom_traits: tuple[str, ...] | None = (
        None  # declared custom trait keys (optional; enables unknown-name checks)
    )
    file: str = "space.yaml"
    sources: tuple[SourceSpec, ...] = ()

    def identifier(self, id_type: str) -> IdentifierSpec | None:
        for spec in self.identifiers:
            if spec.type == id_type:
                return spec
        return None

    def identifier_types(self) -> tuple[str, ...]:
        """Identifier types by priority, highest first."""
        return tuple(spec.type for spec in self.identifiers)

    def is_blocked(self, value: str) -> bool:
        return value.lower() in self.blocked_values


@dataclass(frozen=True)
class TraitDef:
    key: str
    level: Level
    kind: str
    events: tuple[str, ...]
    property: str | None
    where: str | None
    window: Window | None
    min_frequency: int
    file: str
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    score: str | None = None  # kind score: quantity | frequency | recency | momentum | consistency
    query: str | None = None  # kind sql: the SELECT


@dataclass(frozen=True)
class AudienceDef:
    key: str
    name: str
    level: Level
    backfill: bool
    created_at: datetime | None
    include_anonymous: bool
    condition: Any  # raw mapping; compiled to IR by spec.conditions
    file: str
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Definitions:
    space: SpaceConfig
    traits: tuple[TraitDef, ...]
    audiences: tuple[AudienceDef, ...]
    root: str = "definitions"

    def trait(self, key: str) -> TraitDef | None:
        return next((t for t in self.traits if t.key == key), None)

    def audience(self, key: str) -> AudienceDef | None:
        return next((a for a in self.audiences if a.key == key), None)
