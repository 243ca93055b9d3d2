"""Segment's (and RudderStack's) warehouse schema: its call tables, how it flattens columns, and
the table each track event goes to. The rules every reader of that schema shares: the Python
reader (`ingest.segment_warehouse`), the SQL staging script (`sql.script.staging`) and Spark.
"""

from __future__ import annotations

CALL_TABLES = ("identifies", "groups", "aliases", "tracks", "pages", "screens")
CONTEXT_GROUPS = ("page", "traits", "device", "location", "campaign", "library", "os", "app",
                  "screen", "network", "referrer")  # fmt: skip
# Columns that are the message's own fields, never properties or traits.
STANDARD = frozenset({
    "id", "anonymous_id", "user_id", "received_at", "sent_at", "timestamp",
    "original_timestamp", "uuid_ts", "loaded_at", "event", "event_text", "group_id",
    "previous_id", "channel", "uuid", "rudder_id", "request_ip", "type", "message_id",
})  # fmt: skip
# Page/screen fields the call carries besides the properties.
NAMED = frozenset({"name"})


def slug(name: str) -> str:
    """The table of a track event: ``Order Completed`` -> ``order_completed``."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
