"""Intentionally unusable lines, one builder per reason (see BAD_REASONS)."""

from __future__ import annotations

from typing import Any

import orjson


def bad_line(kind: str, mid: str, ts: str, anon: str) -> bytes:
    """The text of one unusable line of `kind`, with messageId `mid` (it carries the marker)."""
    base: dict[str, Any] = {
        "type": "track",
        "messageId": mid,
        "anonymousId": anon,
        "event": "Product Viewed",
        "properties": {"price": 10},
        "timestamp": ts,
    }
    if kind == "not_json":
        return orjson.dumps(base)[:-25]  # a line cut short in transit
    if kind == "not_an_object":
        return orjson.dumps([mid, "track", ts])
    if kind == "unknown_type":
        base["type"] = "pageview"
    elif kind == "no_identifier":
        # Only blocked values: analytics.js before it has an id.
        base["anonymousId"] = ""
        base["userId"] = "undefined"
    elif kind == "bad_timestamp":
        base["timestamp"] = "yesterday at noon"
    elif kind == "track_without_event":
        del base["event"]
    elif kind == "group_without_group_id":
        base = {
            "type": "group",
            "messageId": mid,
            "anonymousId": anon,
            "traits": {"name": "Nobody Inc"},
            "timestamp": ts,
        }
    return orjson.dumps(base)
