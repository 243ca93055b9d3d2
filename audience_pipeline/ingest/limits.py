"""What a parsed message may hold to be stored: the limits behind three quarantine reasons.

A JSON line can be valid JSON and still not storable: a lone surrogate escape (``"\\ud800"``)
is not Unicode, so no Parquet string column can hold it; ``1e400`` is a JSON number that no
double can hold (Python reads it as infinity); and nesting hundreds of levels deep breaks every
recursive JSON writer and reader downstream. Such a message is quarantined with one of the
reasons below, whatever field holds the value (docs/semantics.md, "Input limits").
"""

from __future__ import annotations

import math
from typing import Any

import orjson

LONE_SURROGATE = "lone surrogate in text"
NUMBER_OUT_OF_RANGE = "number out of range"
NESTED_TOO_DEEP = "nested too deep"
TIMESTAMP_OUT_OF_RANGE = "timestamp out of range"

# The message object is level 1. orjson writes at most this many levels (it is what the
# normalizer's JSON text goes through), so one C-speed orjson.dumps tells whether a message
# parsed by orjson (no surrogates, no infinities: orjson refuses both) is within the limits.
MAX_DEPTH = 254


def message_problem(message: Any, *, exact_check: bool) -> str | None:
    """Why a parsed message cannot be stored, or None.

    Args:
        message: the parsed JSON value.
        exact_check: walk the whole value in Python. Needed when the message was not parsed by
            orjson (the stdlib parser accepts lone surrogates and reads 1e400 as infinity);
            otherwise one ``orjson.dumps`` is the check and the walk runs only when it fails.
    """
    if not exact_check:
        try:
            orjson.dumps(message)
        except (orjson.JSONEncodeError, TypeError):
            pass  # too deep, or a value orjson does not write (Parquet dates): look closer
        else:
            return None
    return _walk(message)


def _walk(root: Any) -> str | None:
    # Iterative, so that a deep value cannot overflow Python's stack while it is being measured.
    stack: list[tuple[Any, int]] = [(root, 1)]
    while stack:
        value, depth = stack.pop()
        kind = type(value)
        if kind is dict:
            if depth > MAX_DEPTH:
                return NESTED_TOO_DEEP
            for key, item in value.items():
                if type(key) is str and _has_surrogate(key):
                    return LONE_SURROGATE
                stack.append((item, depth + 1))
        elif kind is list:
            if depth > MAX_DEPTH:
                return NESTED_TOO_DEEP
            stack.extend((item, depth + 1) for item in value)
        elif kind is str:
            if _has_surrogate(value):
                return LONE_SURROGATE
        elif kind is float and not math.isfinite(value):
            return NUMBER_OUT_OF_RANGE
    return None


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
