"""Audience conditions (SPEC section 4), one entity at a time."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlglot import exp

from tests.reference import expressions as ex
from tests.reference.behaviour import NODES, behaviour_holds, profile_anchor, sample_holds
from tests.reference.identity import Profile
from tests.reference.ingest import as_utc, parse_time
from tests.reference.jsonvals import value_text
from tests.reference.traits import (
    Event,
    event_names,
    in_window,
    matching_events,
    numeric_summary,
    parse_duration,
    resolver,
)

USER = "user"
ACCOUNT = "account"
Entity = Any  # a Profile at user level, an account id (str) at account level


@dataclass(frozen=True)
class Scope:
    """How a condition is read: its level, and ``backfill: false``'s lower bound."""

    level: str
    since: datetime | None


@dataclass
class World:
    """Everything conditions read, already computed."""

    as_of: datetime
    profiles: list[Profile]
    profile_events: dict[Profile, list[Event]]
    user_traits: dict[Profile, dict[str, Any]]
    accounts: list[str]
    account_members: dict[str, list[Profile]]
    account_events: dict[str, list[Event]]
    account_traits: dict[str, dict[str, Any]]
    definitions: dict[str, dict[str, Any]]
    members: dict[str, set[Any]] = field(default_factory=dict)
    computing: list[str] = field(default_factory=list)
    id_priority: list[str] = field(default_factory=list)  # identifier types, highest first


def audience_members(world: World, key: str) -> set[Any]:
    """Members of audience ``key`` (computed once; a cycle raises ValueError)."""
    if key in world.members:
        return world.members[key]
    if key not in world.definitions:
        msg = f"unknown audience {key!r}"
        raise ValueError(msg)
    if key in world.computing:
        msg = f"audience cycle: {' -> '.join([*world.computing, key])}"
        raise ValueError(msg)
    world.computing.append(key)
    definition = world.definitions[key]
    level = definition.get("level", USER)
    since = None
    if definition.get("backfill", True) is False:
        since = created_at(definition, world.as_of)
    scope = Scope(level, since)
    result = {
        e for e in universe(world, definition) if holds(world, definition["condition"], e, scope)
    }
    world.computing.pop()
    world.members[key] = result
    return result


def created_at(definition: dict[str, Any], as_of: datetime) -> datetime:
    """``created_at`` (a YAML timestamp or ISO text), default as-of."""
    raw = definition.get("created_at")
    if raw is None:
        return as_of
    if isinstance(raw, datetime):
        return as_utc(raw)
    parsed = parse_time(raw)
    if parsed is None:
        msg = f"bad created_at {raw!r}"
        raise ValueError(msg)
    return parsed


def universe(world: World, definition: dict[str, Any]) -> list[Any]:
    """Profiles (user level) or account ids (account level) an audience is drawn from."""
    level = definition.get("level", USER)
    if level == ACCOUNT:
        return list(world.accounts)
    if level != USER:
        msg = f"unknown level {level!r}"
        raise ValueError(msg)
    if definition.get("include_anonymous", True) is False:
        return [p for p in world.profiles if any(t in ("user_id", "email") for t, _ in p)]
    return list(world.profiles)


def holds(world: World, node: dict[str, Any], entity: Entity, scope: Scope) -> bool:
    """Whether a condition node holds for an entity (two-valued)."""
    if not isinstance(node, dict):
        msg = f"condition must be a mapping, got {node!r}"
        raise ValueError(msg)
    if "all" in node:
        return all(holds(world, child, entity, scope) for child in node["all"])
    if "any" in node:
        return any(holds(world, child, entity, scope) for child in node["any"])
    if "not" in node:
        return not holds(world, node["not"], entity, scope)
    if "audience" in node:
        key = str(node["audience"])
        ref_level = world.definitions.get(key, {}).get("level", USER)
        if ref_level != scope.level:
            msg = f"audience {key!r} is {ref_level}-level, used at {scope.level} level"
            raise ValueError(msg)
        return entity in audience_members(world, key)
    if "users" in node:
        return _users(world, node, entity, scope)
    if "traits" in node:
        traits = _traits(world, entity, scope)
        tree = ex.parse(str(node["traits"]))
        return ex.holds(tree, ex.Env(lambda path: ex.lookup(traits, path)))
    if "event" in node:
        return _event(world, node, entity, scope)
    if "funnel" in node:
        return _funnel(world, node["funnel"], entity, scope)
    for name in NODES:
        if name in node:
            return _section7(world, node, name, entity, scope)
    msg = f"unknown condition node {sorted(node)}"
    raise ValueError(msg)


def _section7(world: World, node: dict[str, Any], name: str, entity: Entity,
              scope: Scope) -> bool:  # fmt: skip
    if len(node) != 1:
        msg = f"{name} is a one-key mapping, got {sorted(node)}"
        raise ValueError(msg)
    spec = node[name]
    if name == "sample":
        if scope.level == ACCOUNT:
            return sample_holds(spec, ("group_id", str(entity)))
        return sample_holds(spec, profile_anchor(entity, world.id_priority))
    traits = _traits(world, entity, scope)
    events = _events(world, entity, scope)
    return behaviour_holds(name, spec, events, traits, world.as_of, scope.since)


def _traits(world: World, entity: Entity, scope: Scope) -> dict[str, Any]:
    if scope.level == ACCOUNT:
        return world.account_traits.get(entity, {})
    return world.user_traits.get(entity, {})


def _events(world: World, entity: Entity, scope: Scope) -> list[Event]:
    if scope.level == ACCOUNT:
        return world.account_events.get(entity, [])
    return world.profile_events.get(entity, [])


def _users(world: World, node: dict[str, Any], entity: Entity, scope: Scope) -> bool:
    if scope.level != ACCOUNT:
        msg = "users: is only allowed at account level"
        raise ValueError(msg)
    quantifier = node["users"]
    inner = Scope(USER, scope.since)
    results = [
        holds(world, node["condition"], member, inner)
        for member in world.account_members.get(entity, [])
    ]
    if quantifier == "any":
        return any(results)
    if quantifier == "all":
        return bool(results) and all(results)
    if quantifier == "none":
        return not any(results)
    msg = f"users: must be any, all or none, got {quantifier!r}"
    raise ValueError(msg)


def _event(world: World, node: dict[str, Any], entity: Entity, scope: Scope) -> bool:
    traits = _traits(world, entity, scope)
    events = _events(world, entity, scope)
    matched = matching_events(node, events, traits, world.as_of, scope.since)
    having = node.get("having") or "count(*) >= 1"
    tree = ex.parse(str(having), aggregates=True)
    return ex.holds(tree, ex.Env(lambda path: None, lambda agg: aggregate(agg, matched, traits)))


def aggregate(node: exp.Expression, events: Sequence[Event], traits: dict[str, Any]) -> Any:
    """One aggregate of ``having`` over the matched events."""
    argument = node.this
    if isinstance(node, exp.Count) and isinstance(argument, exp.Star):
        return float(len(events))
    if isinstance(argument, exp.Distinct):
        path = ex.name_path(argument.expressions[0])
        texts = {value_text(resolver(e, traits)(path)) for e in events}
        return float(len(texts - {None}))
    path = ex.name_path(argument)
    raws = [resolver(e, traits)(path) for e in events]
    if isinstance(node, exp.Count):
        return float(sum(1 for raw in raws if raw is not None))
    kind = type(node).__name__.lower()
    return numeric_summary(kind, raws)


def _funnel(world: World, spec: dict[str, Any], entity: Entity, scope: Scope) -> bool:
    steps = spec["steps"]
    if len(steps) < 2:
        msg = "a funnel needs at least two steps"
        raise ValueError(msg)
    if any(step.get("performed", True) is False for step in steps[:-1]):
        msg = "performed: false is allowed on the last step only"
        raise ValueError(msg)
    negative = steps[-1].get("performed", True) is False
    traits = _traits(world, entity, scope)
    events = sorted(_events(world, entity, scope), key=lambda e: e.sort_key)
    if scope.since is not None:
        events = [e for e in events if e.timestamp >= scope.since]
    as_of = world.as_of
    names = [event_names(step["event"]) for step in steps]
    wheres = [ex.parse(str(step["where"])) if step.get("where") else None for step in steps]
    last_positive = len(steps) - 2 if negative else len(steps) - 1
    memo: dict[tuple[int, int], bool] = {}

    def matches(index: int, event: Event, parent: Event | None) -> bool:
        if event.name not in names[index]:
            return False
        tree = wheres[index]
        return tree is None or ex.holds(tree, ex.Env(resolver(event, traits, parent)))

    def after(index: int, previous: Event) -> list[int]:
        # Candidates for step ``index``: strictly later, within the step's window, <= as-of.
        within = steps[index].get("within")
        upper = as_of if within is None else min(previous.timestamp + parse_duration(within), as_of)
        return [
            position
            for position, e in enumerate(events)
            if previous.timestamp < e.timestamp <= upper and matches(index, e, previous)
        ]

    def completes(index: int, position: int) -> bool:
        key = (index, position)
        if key not in memo:
            event = events[position]
            if index == last_positive:
                memo[key] = not after(index + 1, event) if negative else True
            else:
                memo[key] = any(completes(index + 1, nxt) for nxt in after(index + 1, event))
        return memo[key]

    return any(
        completes(0, position)
        for position, event in enumerate(events)
        if in_window(event.timestamp, spec, as_of) and matches(0, event, None)
    )
