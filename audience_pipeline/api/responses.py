"""Turning generation rows into Segment-shaped JSON (orjson), shared by the routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

from audience_pipeline.api.tables import Generation
from audience_pipeline.values import loads, untag

JSON = "application/json"


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def stamp(generation: Generation) -> dict[str, str]:
    """Headers naming the run that answered (also on a 404 that depends on the run)."""
    return {"X-Generation": str(generation.number), "X-As-Of": iso(generation.as_of) or ""}


def ok(body: Any, generation: Generation) -> Response:
    """A 200 JSON response stamped with the generation that answered it."""
    return Response(orjson.dumps(body), media_type=JSON, headers=stamp(generation))


def external_id(id_type: str, value: str, collection: str, created: datetime | None) -> dict:
    return {"id": value, "type": id_type, "collection": collection, "source_id": None,
            "created_at": iso(created), "encoding": "none"}  # fmt: skip


def _decode_leaf(tagged: Any) -> Any:
    if isinstance(tagged, str) and tagged.startswith("o"):
        return loads(tagged[1:])
    return untag(tagged)


def unflatten(flat_text: str | None) -> dict[str, Any]:
    """Flat-tagged properties/context (see audience_pipeline.values.flat_tag) -> plain JSON.

    Objects are stored both whole (``o`` + JSON) and through their dotted leaves; the top-level
    keys are those with no object key as a dotted prefix.
    """
    if not flat_text:
        return {}
    flat = loads(flat_text)
    if not isinstance(flat, dict):
        return {}
    objects = {k for k, v in flat.items() if isinstance(v, str) and v.startswith("o")}
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if objects and "." in key:
            parts = key.split(".")
            if any(".".join(parts[:i]) in objects for i in range(1, len(parts))):
                continue
        out[key] = _decode_leaf(value)
    return out


__all__ = ["JSON", "external_id", "iso", "ok", "stamp", "unflatten"]
