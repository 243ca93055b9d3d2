"""Reading JSONL text into usable messages: quarantine, dedupe, as-of cut, processing order."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.reference.identity import IdentifierRule, extract_identifiers
from tests.reference.jsonvals import loads_strict, text_of

MESSAGE_TYPES = frozenset({"track", "identify", "group", "page", "screen", "alias"})
EVENT_NAMES = {"page": "Page Viewed", "screen": "Screen Viewed"}


@dataclass(frozen=True)
class Message:
    """One usable message."""

    source: str
    line: int
    read_index: int
    raw: dict[str, Any]
    type: str
    timestamp: datetime
    message_id: str | None
    received_at: datetime | None
    identifiers: tuple[tuple[str, str], ...]
    group_id: str | None = None
    sort_key: tuple[Any, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        # (timestamp, messageId with null after non-null, read order)
        key = (
            self.timestamp,
            self.message_id is None,
            self.message_id or "",
            self.read_index,
        )
        object.__setattr__(self, "sort_key", key)


def parse_time(raw: Any) -> datetime | None:
    """What ``datetime.fromisoformat`` reads, as an aware UTC datetime; None otherwise."""
    if not isinstance(raw, str):
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes are UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def read_files(
    files: dict[str, str], rules: list[IdentifierRule], blocked: frozenset[str]
) -> tuple[list[Message], list[tuple[str, int, str]]]:
    """Every usable message in read order, and the quarantine as (source, line, reason)."""
    messages: list[Message] = []
    quarantine: list[tuple[str, int, str]] = []
    read_index = 0
    for source in sorted(files):
        for line_no, line in enumerate(files[source].split("\n"), start=1):
            if not line.strip():
                continue
            read_index += 1
            result = _read_line(source, line_no, read_index, line, rules, blocked)
            if isinstance(result, str):
                quarantine.append((source, line_no, result))
            else:
                messages.append(result)
    return messages, quarantine


def _read_line(
    source: str,
    line_no: int,
    read_index: int,
    line: str,
    rules: list[IdentifierRule],
    blocked: frozenset[str],
) -> Message | str:
    try:
        raw = loads_strict(line)
    except ValueError:
        return "invalid json"
    if not isinstance(raw, dict):
        return "not an object"
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in MESSAGE_TYPES:
        return "unknown type"
    identifiers = extract_identifiers(raw, rules, blocked, is_group=kind == "group")
    if not identifiers:
        return "no identifier"
    received_at = parse_time(raw.get("receivedAt"))
    if raw.get("timestamp") is not None:
        timestamp = parse_time(raw["timestamp"])
        if timestamp is None:
            return "unparseable timestamp"
    elif received_at is not None:
        timestamp = received_at
    else:
        return "missing timestamp"
    if kind == "track":
        event = raw.get("event")
        if not isinstance(event, str) or event == "":
            return "track without event"
    group_id = None
    if kind == "group":
        group_id = text_of(raw.get("groupId"))
        if group_id is None or group_id == "":
            return "group without groupId"
    message_id = text_of(raw.get("messageId"))
    return Message(
        source=source,
        line=line_no,
        read_index=read_index,
        raw=raw,
        type=kind,
        timestamp=timestamp,
        message_id=message_id,
        received_at=received_at,
        identifiers=tuple(identifiers),
        group_id=group_id,
    )


def dedupe(messages: list[Message]) -> list[Message]:
    """One copy per messageId: earliest receivedAt (a copy with one beats one without), then
    the first read. Messages without a messageId are all kept."""
    best: dict[str, Message] = {}
    for message in messages:
        if message.message_id is None:
            continue
        current = best.get(message.message_id)
        if current is None or _copy_rank(message) < _copy_rank(current):
            best[message.message_id] = message
    return [m for m in messages if m.message_id is None or best[m.message_id] is m]


def _copy_rank(message: Message) -> tuple[bool, datetime, int]:
    received = message.received_at or datetime.min.replace(tzinfo=UTC)
    return (message.received_at is None, received, message.read_index)


def usable(messages: list[Message], as_of: datetime) -> list[Message]:
    """Deduped messages at or before as-of, in processing order."""
    kept = [m for m in dedupe(messages) if m.timestamp <= as_of]
    return sorted(kept, key=lambda m: m.sort_key)


def event_name(message: Message) -> str | None:
    """The event name of a track/page/screen call; None for other calls."""
    if message.type == "track":
        name = message.raw["event"]
        return name if isinstance(name, str) else None
    return EVENT_NAMES.get(message.type)


def event_properties(message: Message) -> dict[str, Any]:
    """Properties, with page/screen ``name`` and ``context.page`` ``url``/``path`` filled in."""
    raw_props = message.raw.get("properties")
    props: dict[str, Any] = dict(raw_props) if isinstance(raw_props, dict) else {}
    if message.type in EVENT_NAMES:
        if "name" not in props and "name" in message.raw:
            props["name"] = message.raw["name"]
        page = message_context(message).get("page")
        if isinstance(page, dict):
            for key in ("url", "path"):
                if key not in props and key in page:
                    props[key] = page[key]
    return props


def message_context(message: Message) -> dict[str, Any]:
    """The call's context object ({} when missing or not an object)."""
    context = message.raw.get("context")
    return context if isinstance(context, dict) else {}
