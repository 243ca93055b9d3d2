"""The Segment call types (SPEC 3), defined once for ingestion, both backends and the API.

A module of its own, importing nothing, so that a backend can read it without loading ingestion.
"""

from __future__ import annotations

MESSAGE_TYPES = ("track", "identify", "group", "page", "screen", "alias")
EVENT_TYPES = ("track", "page", "screen")  # the calls that count as events (SPEC 3)
# The event name a page or screen call counts as (SPEC 3); track calls carry their own.
CALL_EVENT_NAMES = {"page": "Page Viewed", "screen": "Screen Viewed"}
