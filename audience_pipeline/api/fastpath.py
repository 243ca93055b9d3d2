"""A pure-ASGI fast path for the hot profile reads (traits, external_ids, metadata, links).

FastAPI's per-request parameter and dependency solving costs about 2/3 of a traits request. This
middleware answers the common, well-formed GETs of those four routes itself, with the same
handler functions (`profiles.traits_body`, ...) and the same JSON bodies and headers. Anything it
does not recognise exactly (another route, a missing or wrong token, an unknown or repeated query
parameter, a value outside the plain forms below) goes on to FastAPI unchanged, which then
validates, documents and answers errors; so both paths always agree.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from audience_pipeline.api import profiles
from audience_pipeline.api.auth import token_digest
from audience_pipeline.api.errors import ApiError
from audience_pipeline.api.responses import stamp
from audience_pipeline.api.store import Store
from audience_pipeline.api.tables import ACCOUNTS, USERS, Generation

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]],
                   Awaitable[None]]  # fmt: skip

PARAMS = {
    "traits": {"include", "class", "limit", "verbose", "next", "cursor"},
    "external_ids": {"include", "limit", "verbose", "next", "cursor"},
    "metadata": {"verbose"},
    "links": {"limit", "next", "cursor"},
}
DEFAULT_LIMIT = {"traits": 10, "external_ids": 25, "links": 20}
CLASSES = {"audience", "computed_trait", "custom_trait"}
BOOLS = {"true": True, "false": False}
JSON_HEADER = (b"content-type", b"application/json")


class FastPath:
    """ASGI middleware: answers plain hot reads, passes everything else to `app`."""

    def __init__(self, app: ASGIApp, store: Store, token: str) -> None:
        self.app = app
        self.store = store
        self.expected = token_digest(token)

    async def __call__(
        self,
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = self._answer(scope)
            if answer is not None:
                status, body, headers = answer
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        path: str = scope["path"]
        parts = path.split("/")
        if (
            len(parts) != 9
            or parts[1] != "v1"
            or parts[2] != "spaces"
            or parts[4] != "collections"
            or parts[6] != "profiles"
            or parts[5] not in (USERS, ACCOUNTS)
            or parts[8] not in PARAMS
            or not self._authorized(scope)
        ):
            return None
        resource = parts[8]
        params = _params(scope.get("query_string", b""), resource)
        if params is None:
            return None
        generation = self.store.current
        space, collection, external_id = parts[3], parts[5], parts[7]
        try:
            body = _body(generation, resource, space, collection, external_id, path, params)
        except ApiError as error:
            payload = orjson.dumps({"error": {"code": error.code, "message": error.message}})
            headers = [JSON_HEADER, *_raw_headers(error.headers)]
            return error.status, payload, headers
        data = orjson.dumps(body)
        return 200, data, [JSON_HEADER, *_raw_headers(stamp(generation))]

    def _authorized(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, encoded = value.partition(b" ")
                if scheme.lower() != b"basic":
                    return False
                try:
                    user, sep, _ = (
                        base64.b64decode(encoded, validate=True).decode("ascii").partition(":")
                    )
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    return False
                return bool(sep) and hmac.compare_digest(token_digest(user), self.expected)
        return False


def _raw_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def _params(query: bytes, resource: str) -> dict[str, Any] | None:
    """The query's parameters in their plain forms, or None to let FastAPI handle it."""
    allowed = PARAMS[resource]
    out: dict[str, Any] = {}
    for key, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if key not in allowed or key in out:
            return None
        out[key] = value
    if "limit" in allowed:
        text = out.get("limit")
        if text is None:
            out["limit"] = DEFAULT_LIMIT[resource]
        elif text.isdigit() and text.isascii() and len(text) <= 3 and 1 <= int(text) <= 200:
            out["limit"] = int(text)
        else:
            return None
    if "verbose" in out:
        if out["verbose"] not in BOOLS:
            return None
        out["verbose"] = BOOLS[out["verbose"]]
    if "class" in out and out["class"] not in CLASSES:
        return None
    return out


def _body(
    generation: Generation,
    resource: str,
    space: str,
    collection: str,
    external_id: str,
    path: str,
    params: dict[str, Any],
) -> dict[str, Any]:
    cursor = params.get("next") or params.get("cursor")
    if resource == "traits":
        return profiles.traits_body(
            generation, space, collection, external_id, path, include=params.get("include"),
            class_=params.get("class"), limit=params["limit"],
            verbose=params.get("verbose", False), cursor=cursor,
        )  # fmt: skip
    if resource == "external_ids":
        return profiles.external_ids_body(
            generation, space, collection, external_id, path, include=params.get("include"),
            limit=params["limit"], verbose=params.get("verbose", False), cursor=cursor,
        )  # fmt: skip
    if resource == "metadata":
        return profiles.metadata_body(generation, space, collection, external_id)
    return profiles.links_body(
        generation, space, collection, external_id, path, limit=params["limit"], cursor=cursor
    )


__all__ = ["FastPath"]
