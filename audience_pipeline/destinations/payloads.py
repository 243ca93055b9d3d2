"""Segment Engage-shaped messages for membership changes.

What Engage sends for an audience, so that anything built for its payloads works unchanged:

- identify: ``traits.<audience_key>: true`` on entry, ``false`` on exit;
- track: ``Audience Entered`` / ``Audience Exited`` with ``properties.audience_key``,
  ``properties.audience_name`` and ``properties.<audience_key>: true/false``;
- group (account audiences): ``groupId`` and ``traits.<audience_key>: true/false``;
- ``context.personas``: computation_class, computation_id, computation_key, namespace, space_id.

A profile is sent under the identifiers the destination selected (``ids`` of the change):
``user_id`` as ``userId``, ``anonymous_id`` as ``anonymousId``, any other type (email, phone, ...)
as a trait / property of that name and in ``context.traits``; every sent identifier is listed in
``context.externalIds``. Types sent with ``all`` fan out: a profile with two emails gets two
calls (as Engage sends one call per email). The messageId is a hash of the change (destination,
audience, entity, change, snapshot time, identifiers) and the call, so a resend repeats it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import polars as pl

from audience_pipeline.destinations.config import AudienceLink

ENTERED_EVENT = "Audience Entered"
EXITED_EVENT = "Audience Exited"
MESSAGE_ID_FIELDS = {"user_id": "userId", "anonymous_id": "anonymousId"}


@dataclass(frozen=True)
class AudienceInfo:
    """What a message needs to know about the audience a change belongs to."""

    key: str
    name: str
    level: str
    link: AudienceLink


@dataclass(frozen=True)
class PersonasContext:
    space_id: str

    def for_audience(self, key: str) -> dict[str, str]:
        return {
            "computation_class": "audience",
            "computation_id": computation_id(self.space_id, key),
            "computation_key": key,
            "namespace": self.space_id,
            "space_id": self.space_id,
        }


def computation_id(space_id: str, key: str) -> str:
    """A stable Segment-style id for an audience (``aud_`` + 24 hex digits)."""
    return "aud_" + hashlib.sha256(f"{space_id}/{key}".encode()).hexdigest()[:24]


def message_id(destination: str, row: tuple[str, ...], call: str, index: int) -> str:
    """Deterministic per (destination, change, call, fan-out index): receivers can dedupe."""
    text = "\x1f".join((destination, *row, call, str(index)))
    return "ap-" + hashlib.sha256(text.encode()).hexdigest()[:32]


def calls_for(info: AudienceInfo, level: str, change: str) -> tuple[str, ...]:
    """The calls a change is sent as; a ``resynced`` member (new identifiers) gets identify only."""
    if level == "account":
        calls: tuple[str, ...] = ("group",)
    elif info.level == "account":
        calls = tuple(c for c in info.link.account_send if c != "group")
    else:
        calls = info.link.send
    if change == "resynced":
        calls = tuple(c for c in calls if c in ("identify", "group"))
    return calls


def _fan_out(ids: dict[str, list[str]]) -> Iterator[list[tuple[str, str]]]:
    """Identifier sets per call: single-valued types in every call, multi-valued ones spread."""
    width = max((len(v) for v in ids.values()), default=0)
    for index in range(max(width, 1)):
        picked: list[tuple[str, str]] = []
        for id_type, values in ids.items():
            if len(values) == 1:
                picked.append((id_type, values[0]))
            elif index < len(values):
                picked.append((id_type, values[index]))
        yield picked


def render_change(
    destination: str,
    row: tuple[Any, ...],
    info: AudienceInfo,
    personas: PersonasContext,
) -> list[dict[str, Any]]:
    """Messages for one outbox row ``(audience_key, level, entity_id, change, ids, as_of)``."""
    audience_key, level, entity_id, change, ids_text, as_of = row
    value = change != "exited"
    ids: dict[str, list[str]] = orjson.loads(ids_text)
    context_personas = personas.for_audience(audience_key)
    messages: list[dict[str, Any]] = []
    identity_row = (audience_key, level, entity_id, change, as_of, ids_text)
    for call in calls_for(info, level, change):
        if call == "group":
            messages.append({
                "type": "group",
                "messageId": message_id(destination, identity_row, call, 0),
                "timestamp": as_of,
                "anonymousId": entity_id,
                "groupId": entity_id,
                "traits": {audience_key: value},
                "context": {"personas": context_personas},
            })  # fmt: skip
            continue
        for index, picked in enumerate(_fan_out(ids)):
            message_key = message_id(destination, identity_row, call, index)
            messages.append(_member_message(call, message_key, as_of, entity_id, picked,
                                            info, audience_key, value, context_personas))  # fmt: skip
    return messages


def _member_message(
    call: str,
    message_key: str,
    as_of: str,
    entity_id: str,
    picked: list[tuple[str, str]],
    info: AudienceInfo,
    audience_key: str,
    value: bool,
    context_personas: dict[str, Any],
) -> dict[str, Any]:
    """One identify or track message for one combination of the profile's identifiers."""
    message: dict[str, Any] = {"type": call, "messageId": message_key, "timestamp": as_of}
    extra: dict[str, str] = {}
    for id_type, id_value in picked:
        if id_type in MESSAGE_ID_FIELDS:
            message[MESSAGE_ID_FIELDS[id_type]] = id_value
        else:
            extra[id_type] = id_value
    if "userId" not in message and "anonymousId" not in message:
        # The tracking API needs one of the two; the profile id is stable.
        message["anonymousId"] = entity_id
    context: dict[str, Any] = {
        "personas": context_personas,
        "externalIds": [
            {"id": v, "type": t, "collection": "users", "encoding": "none"} for t, v in picked
        ],
    }
    if extra:
        context["traits"] = dict(extra)
    if call == "identify":
        message["traits"] = {audience_key: value, **extra}
    else:
        message["event"] = ENTERED_EVENT if value else EXITED_EVENT
        message["properties"] = {
            "audience_key": audience_key,
            "audience_name": info.name,
            audience_key: value,
            **extra,
        }
    message["context"] = context
    return message


def render_batch(
    destination: str,
    batch: pl.DataFrame,
    audiences: dict[str, AudienceInfo],
    personas: PersonasContext,
) -> list[dict[str, Any]]:
    """Every message of an outbox batch, in the batch's order."""
    rows = batch.select("audience_key", "level", "entity_id", "change", "ids", "as_of").iter_rows()
    messages: list[dict[str, Any]] = []
    for row in rows:
        messages.extend(render_change(destination, row, audiences[row[0]], personas))
    return messages
