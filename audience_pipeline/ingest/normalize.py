"""One message -> one normalized row (or a quarantine reason), in plain Python.

This is the hot loop of ingestion (tens of millions of messages), so the per-message work is kept
lean: type() dispatch instead of isinstance chains, no polars calls, and rows go straight into
column lists (:class:`Columns`) that become one DataFrame per chunk.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson

from audience_pipeline.ingest.limits import TIMESTAMP_OUT_OF_RANGE, message_problem
from audience_pipeline.ingest.tagging import flat_tag_dict, tagged_text
from audience_pipeline.message_types import CALL_EVENT_NAMES, MESSAGE_TYPES
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.values import dumps, value_text

# Quarantine reasons (SPEC 1, 5a), in the order they are checked.
INVALID_JSON = "invalid json"
NOT_AN_OBJECT = "not an object"
UNKNOWN_TYPE = "unknown type"
NO_IDENTIFIER = "no identifier"
UNPARSEABLE_TIMESTAMP = "unparseable timestamp"
MISSING_TIMESTAMP = "missing timestamp"
TRACK_WITHOUT_EVENT = "track without event"
GROUP_WITHOUT_GROUP_ID = "group without groupId"

_MESSAGE_TYPES = frozenset(MESSAGE_TYPES)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
# The UTC instants a datetime can hold: an offset can push a readable time outside them
# (9999-12-31T23:59:59-23:59 is in year 10000 in UTC), and every later step would overflow.
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _ONE_US
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _ONE_US


def timestamp_us(value: Any) -> int | None:
    """Microseconds since the epoch (UTC) of a message timestamp, or None when unreadable.

    Text is read by ``datetime.fromisoformat`` (SPEC 5a); a naive time is UTC, an offset is
    converted. Datetime and date values only come from Parquet input. A time whose UTC instant
    falls outside years 1 to 9999 is unreadable too (:func:`timestamp_problem` says which).
    """
    if type(value) is str:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    elif isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime(value.year, value.month, value.day)
    else:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    # Integer arithmetic on timedeltas is exact; float .timestamp() is not far from 1970.
    micros = (parsed - _EPOCH) // _ONE_US
    if micros < _MIN_US or micros > _MAX_US:
        return None
    return micros


def timestamp_problem(value: Any) -> str:
    """The quarantine reason of a present timestamp that :func:`timestamp_us` did not read."""
    if type(value) is str:
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return UNPARSEABLE_TIMESTAMP
        return TIMESTAMP_OUT_OF_RANGE
    return UNPARSEABLE_TIMESTAMP


# orjson reads integers beyond 64 bits as doubles; an identifier that may be one is re-read
# exactly (stdlib json) so that it keeps its decimal text (SPEC 5a).
_INEXACT = float(2**64)


class InexactInteger(Exception):
    """An identifier double that may stand for an integer too large for orjson."""


def _maybe_inexact(value: Any) -> bool:
    return type(value) is float and abs(value) >= _INEXACT and value.is_integer()


def _identifier_text(value: Any) -> str | None:
    kind = type(value)
    if kind is str:
        return value.strip()
    if kind is int:
        return str(value)
    return None


# Field order of Columns.rows.
ROW_FIELDS = (
    "seq",
    "message_id",
    "type",
    "event",
    "timestamp",
    "received_at",
    "previous_id",
    "group_id",
    "properties",
    "context",
    "line",
)


class _Unusable(Exception):
    """A message the normalizer quarantines, with SPEC's reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# One message's row (ROW_FIELDS), identifiers (rank, value, type) and trait rows.
_Normalized = tuple[tuple[Any, ...], list[tuple[int, str, str]], list[tuple[str, str, str]]]


def _object(value: Any) -> dict[str, Any]:
    """A context or properties object; anything else counts as empty."""
    return value if type(value) is dict else {}


def _timestamps(message: dict[str, Any]) -> tuple[int, int | None]:
    """``(timestamp, receivedAt)`` in microseconds; timestamp falls back to receivedAt."""
    received = timestamp_us(message.get("receivedAt"))
    raw_ts = message.get("timestamp")
    if raw_ts is not None:
        ts = timestamp_us(raw_ts)
        if ts is None:
            raise _Unusable(timestamp_problem(raw_ts))
        return ts, received
    if received is None:
        raise _Unusable(MISSING_TIMESTAMP)
    return received, received


def _event_name(message: dict[str, Any], msg_type: str) -> str | None:
    """A track's event (required), or the name SPEC gives page and screen calls."""
    if msg_type != "track":
        return CALL_EVENT_NAMES.get(msg_type)
    event = message.get("event")
    if type(event) is not str or not event:
        raise _Unusable(TRACK_WITHOUT_EVENT)
    return event


def _group_id(message: dict[str, Any]) -> str:
    group_id = value_text(message.get("groupId"))
    if not group_id:
        raise _Unusable(GROUP_WITHOUT_GROUP_ID)
    return group_id


def _traits(
    message: dict[str, Any], msg_type: str, context: dict[str, Any]
) -> dict[str, Any] | None:
    """An identify's traits over its context.traits, or a group's own traits."""
    if msg_type == "identify":
        traits: dict[str, Any] = {}
        context_traits = context.get("traits")
        if type(context_traits) is dict:
            traits.update(context_traits)
        own = message.get("traits")
        if type(own) is dict:
            traits.update(own)  # traits win over context.traits, even with a null
        return traits
    if msg_type == "group":
        own = message.get("traits")
        return own if type(own) is dict else None
    return None


class Columns:
    """Rows of one chunk as tuples (one append per message; transposed once per chunk)."""

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []  # ROW_FIELDS
        self.id_counts: list[int] = []  # per row; the identifiers themselves are flat:
        self.id_types: list[str] = []
        self.id_values: list[str] = []
        self.traits: list[tuple[int, str, str, str, str]] = []  # seq, kind, key, value, tagged
        self.quarantined: list[tuple[str, int, str]] = []  # raw, line, reason

    def __len__(self) -> int:
        return len(self.rows) + len(self.quarantined)

    def quarantine(self, raw: str, line: int, reason: str) -> None:
        """Add one quarantine row."""
        self.quarantined.append((raw, line, reason))


class Normalizer:
    """Turns parsed messages into rows of :class:`Columns`, following SPEC 1 and 5a."""

    def __init__(self, space: SpaceConfig) -> None:
        blocked = {value.lower() for value in space.blocked_values}
        blocked.add("")
        self._blocked = frozenset(blocked)
        # True while messages come from orjson (big integers as doubles), see InexactInteger.
        self.fast_json = True
        # Flat-tagged texts by the compact JSON of their object, for JSON-lines input only
        # (Parquet values such as dates print like strings in orjson but tag differently).
        self.cache_texts = False
        self._texts: dict[bytes, str] = {}
        # (priority, type, first key, further keys, is a traits.* path, lower-case the value)
        self._paths: list[tuple[int, str, str, tuple[str, ...], bool, bool]] = []
        for spec in sorted(space.identifiers, key=lambda s: s.priority):
            for path in spec.paths:
                first, *rest = path.split(".")
                self._paths.append(
                    (
                        spec.priority,
                        spec.type,
                        first,
                        tuple(rest),
                        first == "traits",
                        spec.type == "email",
                    )
                )

    def identifiers(self, message: dict[str, Any], is_group: bool) -> list[tuple[int, str, str]]:
        """The message's identifiers as (priority, value, type), sorted by (priority, value)."""
        found: list[tuple[int, str, str]] = []
        blocked = self._blocked
        for priority, id_type, first, rest, traits_path, lower in self._paths:
            if traits_path and is_group:
                continue  # a group call's traits belong to the account
            value: Any = message.get(first)
            for part in rest:
                if type(value) is dict:
                    value = value.get(part)
                else:
                    value = None
                    break
            kind = type(value)
            if kind is str:
                text = value.strip()
            elif kind is int:
                text = str(value)
            else:
                if self.fast_json and _maybe_inexact(value):
                    raise InexactInteger
                continue
            if text.lower() in blocked:
                continue
            if lower:
                text = text.lower()
            item = (priority, text, id_type)
            if item not in found:
                found.append(item)
        found.sort()
        return found

    def previous_id(self, message: dict[str, Any]) -> str | None:
        previous = message.get("previousId")
        if self.fast_json and _maybe_inexact(previous):
            raise InexactInteger
        text = _identifier_text(previous)
        if text is None or text.lower() in self._blocked:
            return None
        return text

    def add(self, message: Any, seq: int, line: int, cols: Columns) -> str | None:
        """Normalize one parsed message into ``cols``, or return why it is unusable.

        Nothing is written to ``cols`` when a reason is returned (the caller owns the raw text).
        """
        try:
            row, ids, trait_items = self._row(message, seq, line)
        except _Unusable as unusable:
            return unusable.reason
        cols.rows.append(row)
        cols.id_counts.append(len(ids))
        for _, id_value, id_type in ids:
            cols.id_types.append(id_type)
            cols.id_values.append(id_value)
        if trait_items:
            kind = "account" if row[2] == "group" else "user"
            cols.traits.extend([(seq, kind, key, raw, tagged) for key, raw, tagged in trait_items])
        return None

    def _row(self, message: Any, seq: int, line: int) -> _Normalized:
        """The row (ROW_FIELDS), identifiers and trait rows of one message; `_Unusable` if not.

        The checks run in SPEC's order of quarantine reasons, and everything that can fail (odd
        values) runs before anything is appended, so the columns never go out of step.
        """
        if type(message) is not dict:
            raise _Unusable(NOT_AN_OBJECT)
        msg_type = message.get("type")
        if type(msg_type) is not str or msg_type not in _MESSAGE_TYPES:
            raise _Unusable(UNKNOWN_TYPE)
        ids = self.identifiers(message, msg_type == "group")
        if not ids:
            raise _Unusable(NO_IDENTIFIER)
        ts, received = _timestamps(message)
        event = _event_name(message, msg_type)
        group_id = _group_id(message) if msg_type == "group" else None
        context = _object(message.get("context"))
        properties = _object(message.get("properties"))
        if event is not None and msg_type != "track":
            properties = fill_page_properties(message, properties, context)
        message_id = message.get("messageId")
        if message_id is not None and type(message_id) is not str:
            message_id = value_text(message_id)
        previous_id = self.previous_id(message) if msg_type == "alias" else None
        traits = _traits(message, msg_type, context)
        # Lone surrogates, infinities and deep nesting cannot be stored (ingest/limits.py).
        problem = message_problem(message, exact_check=not self.fast_json)
        if problem is not None:
            raise _Unusable(problem)
        row = (
            seq,
            message_id,
            msg_type,
            event,
            ts,
            received,
            previous_id,
            group_id,
            self._flat_text(properties),
            self._flat_text(context),
            line,
        )
        return row, ids, trait_rows(traits) if traits else []

    def _flat_text(self, value: dict[str, Any]) -> str:
        """``dumps(flat_tag_dict(value))``; the same object again is a dict lookup.

        Events repeat their context (a device, an app, a library) and often their properties:
        on the benchmark's events two of three context objects were seen among the last 64.
        The key is orjson's text of the object, one to one with its value for what orjson
        parses (no NaN or infinity reach here: message_problem quarantines them).
        """
        if not (self.cache_texts and self.fast_json):
            return dumps(flat_tag_dict(value))
        try:
            key = orjson.dumps(value)
        except TypeError:  # an integer beyond 64 bits: no key
            return dumps(flat_tag_dict(value))
        text = self._texts.get(key)
        if text is None:
            text = dumps(flat_tag_dict(value))
            if len(self._texts) >= _MAX_CACHED_TEXTS:
                self._texts.clear()
            self._texts[key] = text
        return text


_MAX_CACHED_TEXTS = 4096


def fill_page_properties(
    message: dict[str, Any], properties: dict[str, Any], context: dict[str, Any]
) -> dict[str, Any]:
    """Page/screen calls: `name` and context.page's `url`/`path` fill missing properties."""
    fills: dict[str, Any] = {}
    name = message.get("name")
    if name is not None and "name" not in properties:
        fills["name"] = name
    page = context.get("page")
    if type(page) is dict:
        for key in ("url", "path"):
            value = page.get(key)
            if value is not None and key not in properties:
                fills[key] = value
    if not fills:
        return properties
    return {**properties, **fills}


def trait_rows(traits: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(key, raw JSON, tagged JSON) of each non-null trait."""
    return [
        (key, dumps(value), tagged_text(value))
        for key, value in traits.items()
        if value is not None
    ]
