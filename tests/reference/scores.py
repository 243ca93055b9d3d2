"""Behavioural scores (SPEC 7 and 7a, ``kind: score``), read literally and computed in exact
fractions: raw values per entity, then RANK() among the entities with a matching event."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

from tests.reference import expressions as ex
from tests.reference.traits import Event, event_names, parse_duration, resolver

SCORES = ("quantity", "frequency", "recency", "momentum", "consistency")
ALLOWED = {"key", "name", "description", "level", "kind", "score", "event", "where", "within"}


def _window(definition: dict[str, Any]) -> timedelta:
    within = definition.get("within")
    return parse_duration(within) if within is not None else timedelta(days=90)


def _matching(definition: dict[str, Any], events: Sequence[Event], traits: dict[str, Any],
              as_of: datetime) -> list[datetime]:  # fmt: skip
    w = _window(definition)
    names = event_names(definition["event"]) if definition.get("event") is not None else None
    tree = ex.parse(str(definition["where"])) if definition.get("where") else None
    out = []
    for event in events:
        if names is not None and event.name not in names:
            continue
        if not as_of - w < event.timestamp <= as_of:
            continue
        if tree is not None and not ex.holds(tree, ex.Env(resolver(event, traits))):
            continue
        out.append(event.timestamp)
    return out


def raw_score(definition: dict[str, Any], events: Sequence[Event], traits: dict[str, Any],
              as_of: datetime) -> Fraction | None:  # fmt: skip
    """The raw value, or None when no matching event is in the window."""
    if set(definition) - ALLOWED:
        msg = f"invalid score trait fields {sorted(set(definition) - ALLOWED)}"
        raise ValueError(msg)
    kind = definition["score"]
    if kind not in SCORES:
        msg = f"unknown score {kind!r}"
        raise ValueError(msg)
    times = _matching(definition, events, traits, as_of)
    if not times:
        return None
    w = _window(definition)
    if kind == "quantity":
        return Fraction(len(times))
    if kind == "frequency":
        return Fraction(len({t.date() for t in times}))  # times are UTC datetimes
    if kind == "recency":
        # minus the milliseconds from the latest one to T, exact to the millisecond
        gap = as_of - max(times)
        ms = (gap.days * 86400 * 1000) + gap.seconds * 1000 + gap.microseconds // 1000
        return Fraction(-ms)
    if kind == "momentum":
        cut = as_of - w / 3
        recent = sum(1 for t in times if t > cut)
        earlier = sum(1 for t in times if t <= cut)
        return 3 * Fraction(recent) - Fraction(3, 2) * earlier
    k = max(1, w // timedelta(days=7))
    held = 0
    for i in range(k):
        low, high = as_of - (i + 1) * timedelta(days=7), as_of - i * timedelta(days=7)
        if any(low < t <= high for t in times):
            held += 1
    return Fraction(held)


def rank_scores(raws: dict[Any, Fraction | None]) -> dict[Any, int | None]:
    """SQL RANK() ascending among the non-null raws (ties share the lower rank); then
    round(100 * (rank - 1) / (n - 1)) with halves up; n = 1 gives 100."""
    present = [v for v in raws.values() if v is not None]
    n = len(present)
    out: dict[Any, int | None] = {}
    for entity, value in raws.items():
        if value is None:
            out[entity] = None
            continue
        rank = 1 + sum(1 for v in present if v < value)
        if n == 1:
            out[entity] = 100
        else:
            out[entity] = math.floor(Fraction(100 * (rank - 1), n - 1) + Fraction(1, 2))
    return out
