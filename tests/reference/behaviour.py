"""SPEC section 7's condition nodes, read literally: first_time, stopped, restarted, regularly,
sample. Written from the SPEC's wording (7 and 7a) alone.

Every node takes the entity's matching events (name, ``where``, at or before T, at or after
``created_at`` when ``backfill: false``) and asks which half-open windows hold some.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.reference import expressions as ex
from tests.reference.traits import Event, event_names, parse_duration, resolver

NODES = ("first_time", "stopped", "restarted", "regularly", "sample")


def _matching(spec: dict[str, Any], events: Sequence[Event], traits: dict[str, Any],
              as_of: datetime, since: datetime | None) -> list[datetime]:  # fmt: skip
    names = event_names(spec["event"])
    tree = ex.parse(str(spec["where"])) if spec.get("where") is not None else None
    out = []
    for event in events:
        if event.name not in names or event.timestamp > as_of:
            continue
        if since is not None and event.timestamp < since:
            continue  # 7a: backfill: false removes earlier events from the node entirely
        if tree is not None and not ex.holds(tree, ex.Env(resolver(event, traits))):
            continue
        out.append(event.timestamp)
    return out


def _positive(text: Any) -> timedelta:
    duration = parse_duration(text)
    if duration <= timedelta(0):
        msg = f"a duration must be > 0: {text!r}"
        raise ValueError(msg)
    return duration


def _any_in(times: list[datetime], low: datetime | None, high: datetime) -> bool:
    """Some time in (low, high] (low None: unbounded)."""
    return any((low is None or t > low) and t <= high for t in times)


def behaviour_holds(node: str, spec: dict[str, Any], events: Sequence[Event],
                    traits: dict[str, Any], as_of: datetime, since: datetime | None) -> bool:  # fmt: skip
    """first_time / stopped / restarted / regularly for one entity."""
    allowed = {
        "first_time": {"event", "where", "within"},
        "stopped": {"event", "where", "within", "before"},
        "restarted": {"event", "where", "within", "gap"},
        "regularly": {"event", "where", "times", "period", "periods", "min_periods"},
    }[node]
    if set(spec) - allowed:
        msg = f"unknown field(s) {sorted(set(spec) - allowed)} in {node}"
        raise ValueError(msg)
    times = _matching(spec, events, traits, as_of, since)
    t = as_of
    if node == "regularly":
        n, k, p = int(spec["times"]), int(spec["periods"]), _positive(spec["period"])
        m = spec.get("min_periods")
        m = k if m is None else int(m)
        if not 1 <= m <= k:
            msg = f"min_periods {m} outside 1..{k}"
            raise ValueError(msg)
        held = 0
        for i in range(k):
            low, high = t - (i + 1) * p, t - i * p
            if sum(1 for x in times if low < x <= high) >= n:
                held += 1
        return held >= m
    d = _positive(spec["within"])
    if node == "first_time":
        return _any_in(times, t - d, t) and not any(x <= t - d for x in times)
    if node == "stopped":
        b = _positive(spec["before"])
        return _any_in(times, t - d - b, t - d) and not _any_in(times, t - d, t)
    g = _positive(spec["gap"])
    return (
        _any_in(times, t - d, t)
        and not _any_in(times, t - d - g, t - d)
        and any(x <= t - d - g for x in times)
    )


def hundredths(value: Any) -> int:
    """A YAML number with at most two decimals, exactly (33.33 is 3333)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        msg = f"a sample bound is a number: {value!r}"
        raise ValueError(msg)
    scaled = Decimal(str(value)) * 100
    if scaled != scaled.to_integral_value():
        msg = f"more than two decimals: {value!r}"
        raise ValueError(msg)
    return int(scaled)


def salt_text(value: Any) -> str:
    if isinstance(value, bool):
        msg = "salt is a string"
        raise ValueError(msg)
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str) or value == "":
        msg = f"salt is a non-empty string: {value!r}"
        raise ValueError(msg)
    return value


def bucket_of(salt: str, id_type: str, value: str) -> int:
    """int(sha256("S:<id_type>:<value>")[:16 hex], 16) mod 10000."""
    text = salt + ":" + id_type + ":" + value
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16], 16) % 10000


def profile_anchor(profile: frozenset[tuple[str, str]], priority: Sequence[str]) -> tuple[str, str]:
    """The identifier of the type that comes first by priority; the smallest value (code-point
    order, which is Python's str order) within that type."""
    for id_type in priority:
        values = sorted(v for t, v in profile if t == id_type)
        if values:
            return id_type, values[0]
    msg = f"profile {sorted(profile)} holds no configured identifier"
    raise ValueError(msg)


def sample_holds(spec: dict[str, Any], anchor: tuple[str, str]) -> bool:
    if set(spec) != {"salt", "from", "to"}:
        msg = f"sample takes salt, from and to, got {sorted(spec)}"
        raise ValueError(msg)
    low, high = hundredths(spec["from"]), hundredths(spec["to"])
    if not 0 <= low < high <= 10000:
        msg = f"sample needs 0 <= from < to <= 100: {spec}"
        raise ValueError(msg)
    bucket = bucket_of(salt_text(spec["salt"]), *anchor)
    return low <= bucket < high
