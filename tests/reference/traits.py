"""Events, windows, custom traits and computed traits (SPEC section 3), by plain loops."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tests.reference import expressions as ex
from tests.reference.ingest import Message, event_name, event_properties, message_context
from tests.reference.jsonvals import value_text

KINDS = frozenset(
    {
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
    }
)
_DURATION = re.compile(r"([0-9]+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


@dataclass(frozen=True)
class Event:
    """A track/page/screen call as an event."""

    name: str
    timestamp: datetime
    sort_key: tuple[Any, ...]
    properties: dict[str, Any]
    context: dict[str, Any]


def to_event(message: Message) -> Event | None:
    """The event view of a message, or None for identify/group/alias calls."""
    name = event_name(message)
    if name is None:
        return None
    return Event(
        name=name,
        timestamp=message.timestamp,
        sort_key=message.sort_key,
        properties=event_properties(message),
        context=message_context(message),
    )


def parse_duration(text: Any) -> timedelta:
    """``<n>m|h|d|w`` -> timedelta."""
    match = _DURATION.fullmatch(str(text).strip())
    if match is None:
        msg = f"bad duration {text!r}"
        raise ValueError(msg)
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def in_window(moment: datetime, spec: dict[str, Any], as_of: datetime) -> bool:
    """``within: D`` keeps T-D < t <= T; ``between: [A, B]`` keeps T-B < t <= T-A."""
    if moment > as_of:
        return False
    if spec.get("within") is not None:
        return as_of - parse_duration(spec["within"]) < moment
    if spec.get("between") is not None:
        low, high = (parse_duration(d) for d in spec["between"])
        return as_of - high < moment <= as_of - low
    return True


def event_names(spec: Any) -> frozenset[str]:
    """``event:`` is a name or a list of names."""
    if isinstance(spec, str):
        return frozenset({spec})
    return frozenset(str(name) for name in spec)


def resolver(event: Event, traits: dict[str, Any], parent: Event | None = None) -> ex.Resolver:
    """Names inside a ``where``: properties, ``context.``, ``trait.`` and ``parent.``."""

    def resolve(path: ex.Path) -> Any:
        head = path[0]
        if head == "context":
            return ex.lookup(event.context, path[1:])
        if head == "trait":
            return ex.lookup(traits, path[1:])
        if head == "parent":
            if parent is None:
                return None
            if len(path) > 1 and path[1] == "context":
                return ex.lookup(parent.context, path[2:])
            return ex.lookup(parent.properties, path[1:])
        return ex.lookup(event.properties, path)

    return resolve


def latest_values(payloads: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per top-level key, the last non-null value over payloads given in processing order."""
    result: dict[str, Any] = {}
    for payload in payloads:
        for key, raw in payload.items():
            if raw is not None:
                result[key] = raw
    return result


def identify_payload(message: Message) -> dict[str, Any]:
    """An identify call's custom traits: ``context.traits`` overridden key by key by ``traits``
    (a null in ``traits`` still overrides, leaving the key without a value)."""
    merged: dict[str, Any] = {}
    context_traits = message_context(message).get("traits")
    if isinstance(context_traits, dict):
        merged.update(context_traits)
    traits = message.raw.get("traits")
    if isinstance(traits, dict):
        merged.update(traits)
    return merged


def group_payload(message: Message) -> dict[str, Any]:
    """A group call's account traits."""
    traits = message.raw.get("traits")
    return dict(traits) if isinstance(traits, dict) else {}


def matching_events(
    definition: dict[str, Any],
    events: Sequence[Event],
    traits: dict[str, Any],
    as_of: datetime,
    since: datetime | None = None,
) -> list[Event]:
    """Events named by ``event``, inside the window, after ``since``, passing ``where``."""
    names = event_names(definition["event"])
    where = definition.get("where")
    tree = ex.parse(where) if where else None
    kept = []
    for event in events:
        if event.name not in names or not in_window(event.timestamp, definition, as_of):
            continue
        if since is not None and event.timestamp < since:
            continue
        if tree is not None and not ex.holds(tree, ex.Env(resolver(event, traits))):
            continue
        kept.append(event)
    return kept


def computed_value(
    definition: dict[str, Any],
    events: Sequence[Event],
    custom_traits: dict[str, Any],
    as_of: datetime,
) -> Any:
    """One computed trait's value for one entity (``events`` in processing order)."""
    kind = definition["kind"]
    if kind not in KINDS:
        msg = f"unknown trait kind {kind!r}"
        raise ValueError(msg)
    matched = sorted(
        matching_events(definition, events, custom_traits, as_of), key=lambda e: e.sort_key
    )
    if kind == "count":
        return len(matched)
    path = tuple(str(definition["property"]).split("."))
    raws = [ex.lookup(event.properties, path) for event in matched]
    if kind == "first":
        return raws[0] if raws else None
    if kind == "last":
        return raws[-1] if raws else None
    if kind in ("sum", "avg", "min", "max"):
        return numeric_summary(kind, raws)
    texts = [t for t in (value_text(raw) for raw in raws) if t is not None]
    if kind == "unique_list":
        return sorted(set(texts))
    if kind == "unique_count":
        return len(set(texts))
    return most_frequent(texts, int(definition.get("min_frequency", 2)))


def numeric_summary(kind: str, raws: Iterable[Any]) -> float | None:
    """sum/avg/min/max over the values readable as numbers (sum of none is 0)."""
    numbers = [n for n in (ex.read(raw, ex.NUMBER) for raw in raws) if n is not None]
    if kind == "sum":
        return float(sum(numbers))
    if not numbers:
        return None
    if kind == "avg":
        return sum(numbers) / len(numbers)
    return min(numbers) if kind == "min" else max(numbers)


def most_frequent(texts: Sequence[str], min_frequency: int) -> str | None:
    """The text seen most often (at least ``min_frequency`` times); ties -> smallest text."""
    counts = Counter(texts)
    eligible = [(-n, text) for text, n in counts.items() if n >= min_frequency]
    return min(eligible)[1] if eligible else None
