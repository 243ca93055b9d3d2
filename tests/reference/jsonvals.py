"""JSON value helpers of the reference evaluator (written from SPEC, not shared with the engine)."""

from __future__ import annotations

import json
import math
import re
from typing import Any

NUMERIC_STRING = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def number_text(number: int | float) -> str:
    """Shortest decimal text of a number, no ``.0`` on whole numbers (12.0 -> ``12``)."""
    if isinstance(number, bool):
        msg = "a boolean is not a number"
        raise TypeError(msg)
    if isinstance(number, int):
        return str(number)
    if math.isfinite(number) and number == int(number):
        return str(int(number))
    return repr(number)


def json_text(raw: Any) -> str:
    """Compact JSON text of a value."""
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)


def value_text(raw: Any) -> str | None:
    """SPEC section 3's text form: strings as themselves, ``true``/``false``, number text.

    Objects and arrays (not covered by SPEC) become their compact JSON text.
    """
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float):
        return number_text(raw)
    if isinstance(raw, str):
        return raw
    return json_text(raw)


def text_of(raw: Any) -> str | None:
    """Text of a JSON value used as a key (groupId, messageId); None for null."""
    return value_text(raw)


def loads_strict(text: str) -> Any:
    """Parse one JSON document; NaN and Infinity are not JSON and are rejected."""

    def reject(constant: str) -> Any:
        msg = f"not JSON: {constant}"
        raise ValueError(msg)

    return json.loads(text, parse_constant=reject)
