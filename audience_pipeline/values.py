"""JSON values and their typed ("tagged") text form.

SPEC section 5 types every value by its JSON kind: a string "12" and a number 12 compare alike
as numbers but differently as strings, a boolean never equals a string. Polars' JSON path
functions return plain text and lose that kind, so events keep their properties and context as
*tagged JSON*: the same document with every scalar leaf replaced by a string whose first
character says its kind:

- string ``s``  -> ``"s" + s``
- number ``n``  -> ``"n" + number_text(n)`` (shortest decimal text, no ``.0``)
- boolean       -> ``"btrue"`` / ``"bfalse"``
- null stays ``null``; objects and arrays keep their shape with tagged leaves.

A JSON path lookup on tagged text then gives the kind (first character) and the value text (the
rest) in one pass, without re-parsing JSON per condition.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

NUMERIC_STRING = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")
NUMERIC_STRING_PATTERN = r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$"


def number_text(value: int | float) -> str:
    """Shortest decimal text of a number, with no ``.0`` on whole numbers (12.0 -> "12")."""
    if isinstance(value, bool):  # bool is an int in Python; never a number here
        raise TypeError("booleans are not numbers")
    if isinstance(value, int):
        return str(value)
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)


def value_text(value: Any) -> str | None:
    """The text form SPEC section 3 gives a value (most_frequent, unique_list, distinct counts)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return number_text(value)
    if isinstance(value, str):
        return value
    return dumps(value)


def tag(value: Any) -> Any:
    """Replace every scalar leaf of a JSON value with its tagged string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "btrue" if value else "bfalse"
    if isinstance(value, int | float):
        return "n" + number_text(value)
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, dict):
        return {str(k): tag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [tag(v) for v in value]
    return "s" + str(value)


def untag(value: Any) -> Any:
    """Inverse of :func:`tag` (numbers come back as int when whole, else float)."""
    if value is None:
        return None
    if isinstance(value, str):
        kind, text = value[:1], value[1:]
        if kind == "s":
            return text
        if kind == "b":
            return text == "true"
        if kind == "n":
            try:
                return int(text)
            except ValueError:
                return float(text)
        return value
    if isinstance(value, dict):
        return {k: untag(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untag(v) for v in value]
    return value


def dumps(value: Any) -> str:
    """Compact JSON text; falls back to the stdlib for integers beyond 64 bits."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def loads(text: str | bytes) -> Any:
    """Parse JSON; falls back to the stdlib for integers beyond 64 bits."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def tagged_dumps(value: Any) -> str:
    return dumps(tag(value))


def untag_text(tagged_json: str | None) -> str | None:
    """Tagged JSON text of a container -> plain JSON text."""
    if tagged_json is None:
        return None
    return dumps(untag(loads(tagged_json)))


def flat_tag(
    value: Any, prefix: str = "", out: dict[str, str | None] | None = None
) -> dict[str, str | None]:
    """Flatten a JSON object to dotted paths with tagged scalar values.

    Objects appear both as themselves (``"o" + raw JSON``) and through their leaves
    (``address`` and ``address.city``); arrays only as themselves. Events store properties and
    context this way so that a referenced path is a plain column or key lookup, never a JSON
    parse per condition.
    """
    result: dict[str, str | None] = {} if out is None else out
    if not isinstance(value, dict):
        return result
    for key, item in value.items():
        path = f"{prefix}{key}"
        if isinstance(item, dict):
            result[path] = "o" + dumps(item)
            flat_tag(item, path + ".", result)
        elif isinstance(item, list):
            result[path] = "o" + dumps(item)
        else:
            result[path] = tag(item)
    return result


def flat_to_json(tagged: str) -> str:
    """A flat-tagged value (``s..``, ``n..``, ``b..``, ``o<json>``) -> plain JSON text."""
    kind, text = tagged[:1], tagged[1:]
    if kind == "o":
        return text
    return dumps(untag(tagged))
