"""Opaque keyset cursors: the page after a key stays right when a new run is swapped in."""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import urlencode

import orjson

from audience_pipeline.api.errors import bad_request

MAX_LIMIT = 200


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(key)).rstrip(b"=").decode()


def decode_cursor(text: str | None) -> Any:
    """The key a `next` cursor carries (None for no cursor); 400 when it is not ours."""
    if not text:
        return None
    try:
        return orjson.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise bad_request(
            "invalid cursor (pass back the `next` value of a previous page)"
        ) from None


def cursor_body(path: str, params: dict[str, Any], next_key: Any, limit: int) -> dict[str, Any]:
    """Segment's cursor object: url of this list, has_more, next (empty at the end), limit."""
    query = {k: v for k, v in params.items() if v is not None and k not in ("next", "cursor")}
    url = f"{path}?{urlencode(query)}" if query else path
    nxt = "" if next_key is None else encode_cursor(next_key)
    return {"url": url, "has_more": next_key is not None, "next": nxt, "limit": limit}


def split_list(text: str | None) -> list[str] | None:
    """A comma-separated parameter (include=, exclude=) as a list; None when absent."""
    if text is None:
        return None
    return [part.strip() for part in text.split(",") if part.strip()]


__all__ = ["MAX_LIMIT", "cursor_body", "decode_cursor", "encode_cursor", "split_list"]
