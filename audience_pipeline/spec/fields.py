"""Field readers every definition file shares (keys, durations, event names), kept apart from the
loader so that the loader and the section-7 trait readers can both use them without importing
each other."""

from __future__ import annotations

import re
from typing import Any

from audience_pipeline.spec import limits
from audience_pipeline.spec.issues import Issue

KEY_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
_DURATION = re.compile(r"([0-9]+)\s*([mhdw])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: Any) -> int:
    """`<n>m|h|d|w` -> seconds; raises ValueError with a readable message."""
    text = str(value).strip() if isinstance(value, str | int) else None
    match = _DURATION.fullmatch(text) if text is not None else None
    if match is None or isinstance(value, bool):
        msg = "a duration is <n>m, <n>h, <n>d or <n>w"
        raise ValueError(msg)
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    limits.check_duration(seconds)  # a LimitError is a ValueError: reported like the rest
    return seconds


def event_names(value: Any) -> tuple[str, ...] | None:
    """A name or a non-empty list of names; None when it is neither."""
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def check_key(raw: dict[str, Any], file: str, issues: list[Issue]) -> str | None:
    """The definition's `key`, or None with an issue when it is not `[a-z][a-z0-9_]*`."""
    key = raw.get("key")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        issues.append(Issue(file, None, "key", "key must match [a-z][a-z0-9_]*", str(key)))
        return None
    return key


__all__ = ["KEY_PATTERN", "check_key", "event_names", "parse_duration"]
