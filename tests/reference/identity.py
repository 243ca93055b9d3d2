"""SPEC section 2 identity resolution, applied literally one message at a time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.reference.expressions import lookup

if TYPE_CHECKING:
    from tests.reference.ingest import Message

Identifier = tuple[str, str]
Profile = frozenset[Identifier]


@dataclass(frozen=True)
class IdentifierRule:
    """One configured identifier type; ``priority`` 0 is the highest."""

    type: str
    paths: tuple[str, ...]
    limit: int | None
    priority: int


def parse_space(space: dict[str, Any]) -> tuple[list[IdentifierRule], frozenset[str]]:
    """Identifier rules in priority order and the normalized blocked values."""
    rules = []
    for priority, item in enumerate(space.get("identifiers") or []):
        paths = item["from"]
        paths = (paths,) if isinstance(paths, str) else tuple(paths)
        limit = item.get("limit")
        rules.append(IdentifierRule(str(item["type"]), paths, limit, priority))
    blocked = frozenset(str(v).strip().lower() for v in space.get("blocked_values") or [])
    return rules, blocked


def normalize(raw: Any, id_type: str, blocked: frozenset[str]) -> str | None:
    """An identifier value as linked: integers as text, trimmed, emails lower-cased, blocked
    and empty values (and every other non-string) dropped."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, str):
        text = raw
    else:
        return None
    text = text.strip()
    if text == "" or text.lower() in blocked:
        return None
    return text.lower() if id_type == "email" else text


def extract_identifiers(
    raw: dict[str, Any], rules: Sequence[IdentifierRule], blocked: frozenset[str], *, is_group: bool
) -> list[Identifier]:
    """A message's configured identifiers, ordered by (priority, value), without repeats."""
    found: set[tuple[int, str, str]] = set()
    for rule in rules:
        for path in rule.paths:
            if is_group and path.startswith("traits."):
                continue  # a group call's traits are the account's, not the user's
            text = normalize(lookup(raw, tuple(path.split("."))), rule.type, blocked)
            if text is not None:
                found.add((rule.priority, text, rule.type))
    return [(id_type, text) for _, text, id_type in sorted(found)]


def resolve_profiles(
    messages: Sequence[Message], rules: Sequence[IdentifierRule], blocked: frozenset[str]
) -> tuple[list[Profile], dict[int, Profile]]:
    """Link identifiers message by message (messages already in processing order).

    Returns:
        Every profile, and each message's final profile keyed by its read index.
    """
    priority = {rule.type: rule.priority for rule in rules}
    limits = {rule.type: rule.limit for rule in rules}
    first_seen_type: dict[str, str] = {}
    owner: dict[Identifier, int] = {}
    groups: dict[int, set[Identifier]] = {}
    anchors: dict[int, Identifier] = {}
    next_id = 0

    def too_many(candidate: set[Identifier]) -> bool:
        for id_type, count in Counter(t for t, _ in candidate).items():
            limit = limits.get(id_type)
            if limit is not None and count > limit:
                return True
        return False

    for message in messages:
        identifiers = list(message.identifiers)
        if message.type == "alias":
            previous = _previous_id(message.raw, first_seen_type, priority, blocked)
            if previous is not None and previous not in identifiers:
                identifiers.append(previous)
                identifiers.sort(key=lambda ident: (priority[ident[0]], ident[1]))
        for id_type, text in identifiers:
            first_seen_type.setdefault(text, id_type)
        first = identifiers[0]
        anchors[message.read_index] = first
        if first not in owner:
            next_id += 1
            groups[next_id] = {first}
            owner[first] = next_id
        current = owner[first]
        for ident in identifiers[1:]:
            other = owner.get(ident)
            if other == current:
                continue
            candidate = groups[current] | ({ident} if other is None else groups[other])
            if too_many(candidate):
                continue  # this message does not link that identifier
            groups[current] = candidate
            if other is not None:
                del groups[other]
            for member in candidate:
                owner[member] = current

    profiles = [frozenset(members) for members in groups.values()]
    by_message = {index: frozenset(groups[owner[anchor]]) for index, anchor in anchors.items()}
    return profiles, by_message


def _previous_id(
    raw: dict[str, Any],
    first_seen_type: dict[str, str],
    priority: dict[str, int],
    blocked: frozenset[str],
) -> Identifier | None:
    # The type is the one the value was first seen as before this alias, else user_id.
    text = normalize(raw.get("previousId"), "", blocked)
    if text is None:
        return None
    id_type = first_seen_type.get(text, "user_id")
    if id_type not in priority:
        return None
    if id_type == "email":
        text = text.lower()
    return (id_type, text)
