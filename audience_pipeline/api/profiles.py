"""Segment Profile API routes: traits, external_ids, events, metadata, links, explain.

Every handler reads `store.current` once and answers from that generation only. The fast ones
(traits, external_ids, metadata, links) are `async` and touch memory only; events and explain do
more work and run in the thread pool.
"""

from __future__ import annotations

from bisect import bisect_right
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
import polars as pl
from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from audience_pipeline.api.errors import ApiError, bad_request, not_found
from audience_pipeline.api.ids import resolve
from audience_pipeline.api.pagination import cursor_body, decode_cursor, split_list
from audience_pipeline.api.responses import external_id as id_json
from audience_pipeline.api.responses import iso, ok, unflatten
from audience_pipeline.api.schemas import (
    ERRORS,
    UNAVAILABLE,
    EventsResponse,
    ExplainResponse,
    ExternalIdsResponse,
    LinksResponse,
    MetadataResponse,
    TraitsResponse,
)
from audience_pipeline.api.store import Store
from audience_pipeline.api.tables import ACCOUNTS, USERS, Collection, Generation

PROFILE = "/v1/spaces/{space}/collections/{collection}/profiles/{external_id}"


class CollectionName(StrEnum):
    users = USERS
    accounts = ACCOUNTS


ISO_8601 = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
Limit = Annotated[int, Query(ge=1, le=200, description="Page size, 1 to 200")]
Next = Annotated[str | None, Query(description="Cursor: the `next` of the previous page")]
CursorAlias = Annotated[str | None, Query(description="Same as `next`")]
ExternalIdPath = Annotated[
    str, "id_type:id_value, e.g. user_id:u123, email:jane@example.com, group_id:acct_1"
]


def check_space(generation: Generation, space: str) -> None:
    if space != generation.space:
        raise not_found("Space was not found.")


def locate(generation: Generation, space: str, collection: str, ext: str) -> tuple[Collection, int]:
    check_space(generation, space)
    return generation.collection(collection), resolve(generation, collection, ext)


def string_cursor(text: str | None) -> str | None:
    key = decode_cursor(text)
    if key is not None and not isinstance(key, str):
        raise bad_request("invalid cursor")
    return key


def _pair_cursor(text: str | None, kind: type) -> tuple[Any, Any] | None:
    """A two-part keyset cursor whose parts are both of `kind` (str or int)."""
    key = decode_cursor(text)
    if key is None:
        return None
    valid = isinstance(key, list) and len(key) == 2
    if not valid or not all(isinstance(k, kind) and not isinstance(k, bool) for k in key):
        raise bad_request("invalid cursor")
    return key[0], key[1]


def build_router(store: Store, definitions_dir: str) -> APIRouter:
    """The profile routes, each answering from `store.current`."""
    router = APIRouter(tags=["profiles"])
    _add_traits(router, store)
    _add_external_ids(router, store)
    _add_metadata(router, store)
    _add_links(router, store)
    _add_events(router, store)
    _add_explain(router, store, definitions_dir)
    return router


def _add_traits(router: APIRouter, store: Store) -> None:
    @router.get(PROFILE + "/traits", response_model=TraitsResponse, responses=ERRORS)
    async def traits(
        request: Request,
        space: str,
        collection: CollectionName,
        external_id: ExternalIdPath,
        include: Annotated[str | None, Query(description="Comma-separated trait names")] = None,
        class_: Annotated[
            Literal["audience", "computed_trait", "custom_trait"] | None,
            Query(alias="class", description="Only audiences, computed or custom traits"),
        ] = None,
        limit: Limit = 10,
        verbose: bool = False,
        next: Next = None,
        cursor: CursorAlias = None,
    ) -> Response:
        """A profile's (or account's) traits: custom, computed, and audiences as booleans."""
        generation = store.current
        body = traits_body(generation, space, collection.value, external_id, request.url.path,
                           include=include, class_=class_, limit=limit, verbose=verbose,
                           cursor=next or cursor)  # fmt: skip
        return ok(body, generation)


def _add_external_ids(router: APIRouter, store: Store) -> None:
    @router.get(PROFILE + "/external_ids", response_model=ExternalIdsResponse, responses=ERRORS)
    async def external_ids(
        request: Request,
        space: str,
        collection: CollectionName,
        external_id: ExternalIdPath,
        include: Annotated[str | None, Query(description="Comma-separated id types")] = None,
        limit: Limit = 25,
        verbose: bool = False,
        next: Next = None,
        cursor: CursorAlias = None,
    ) -> Response:
        """Every identifier of the profile (for an account: its group_id)."""
        generation = store.current
        body = external_ids_body(generation, space, collection.value, external_id,
                                 request.url.path, include=include, limit=limit,
                                 verbose=verbose, cursor=next or cursor)  # fmt: skip
        return ok(body, generation)


def _add_metadata(router: APIRouter, store: Store) -> None:
    @router.get(PROFILE + "/metadata", response_model=MetadataResponse, responses=ERRORS)
    async def metadata(
        space: str, collection: CollectionName, external_id: ExternalIdPath, verbose: bool = False
    ) -> Response:
        """First and last message of the profile (of the account: its group calls)."""
        generation = store.current
        return ok(metadata_body(generation, space, collection.value, external_id), generation)


def _add_links(router: APIRouter, store: Store) -> None:
    @router.get(PROFILE + "/links", response_model=LinksResponse, responses=ERRORS)
    async def links(
        request: Request,
        space: str,
        collection: CollectionName,
        external_id: ExternalIdPath,
        limit: Limit = 20,
        next: Next = None,
        cursor: CursorAlias = None,
    ) -> Response:
        """A user's accounts (group calls), or an account's member users."""
        generation = store.current
        body = links_body(generation, space, collection.value, external_id, request.url.path,
                          limit=limit, cursor=next or cursor)  # fmt: skip
        return ok(body, generation)


def _add_events(router: APIRouter, store: Store) -> None:
    @router.get(PROFILE + "/events", response_model=EventsResponse,
                responses={**ERRORS, **UNAVAILABLE})  # fmt: skip
    def events(
        request: Request,
        space: str,
        collection: CollectionName,
        external_id: ExternalIdPath,
        start: Annotated[
            str | None, Query(pattern=ISO_8601, description="Only events after")
        ] = None,
        end: Annotated[
            str | None, Query(pattern=ISO_8601, description="Only events before")
        ] = None,
        include: Annotated[str | None, Query(description="Comma-separated event names")] = None,
        exclude: Annotated[str | None, Query(description="Comma-separated event names")] = None,
        sort: Literal["asc", "desc"] = "desc",
        limit: Limit = 10,
        next: Next = None,
        cursor: CursorAlias = None,
    ) -> Response:
        """Recent track/page/screen calls (the last --events-days before the run's as-of;
        for an account, its members' events pooled)."""
        generation = store.current
        params = {"start": start, "end": end, "include": include,
                  "exclude": exclude, "sort": sort, "limit": limit}  # fmt: skip
        body = events_body(generation, space, collection.value, external_id, request.url.path,
                           params, cursor=next or cursor)  # fmt: skip
        return ok(body, generation)


def events_body(
    generation: Generation, space: str, collection: str, external_id: str, path: str,
    params: dict[str, Any], *, cursor: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The events page: the entity's events (an account's members' pooled), filtered by
    `params` (start, end, include, exclude, sort, limit), after the keyset `cursor`."""
    col, row = locate(generation, space, collection, external_id)
    users = generation.users
    if users.events is None:
        raise ApiError(503, "events are not available for this warehouse run "
                       f"({generation.snapshot.inputs_problem or 'disabled'})")  # fmt: skip
    after = _pair_cursor(cursor, int)
    since, until = _time(params["start"], "start"), _time(params["end"], "end")
    frame = _filter_events(
        _entity_events(generation, col, row), since, until, split_list(params["include"]),
        split_list(params["exclude"]), after, params["sort"],
    )  # fmt: skip
    limit = params["limit"]
    page = frame.head(limit + 1).to_dicts()
    more = len(page) > limit
    page = page[:limit]
    data = [_event(e, users) for e in page]
    last = page[-1] if more else None
    key = [int(last["timestamp"].timestamp() * 1_000_000), last["seq"]] if last else None
    return {"data": data, "cursor": cursor_body(path, params, key, limit)}


def _entity_events(generation: Generation, col: Collection, row: int) -> pl.DataFrame:
    """The events of a user row, or the pooled events of an account row's members."""
    users = generation.users
    assert users.events is not None  # checked by the caller
    if col.name == USERS:
        rows = [row]
    else:
        begin, stop = col.link_offsets[row], col.link_offsets[row + 1]
        rows = col.links.slice(begin, stop - begin)["other_row"].to_list()
    offsets = users.event_offsets
    parts = [users.events.slice(offsets[r], offsets[r + 1] - offsets[r]) for r in rows]
    return pl.concat(parts) if parts else users.events.clear()


def _add_explain(router: APIRouter, store: Store, definitions_dir: str) -> None:
    @router.get(PROFILE + "/explain", response_model=ExplainResponse,
                responses={**ERRORS, **UNAVAILABLE})  # fmt: skip
    def explain(
        space: str,
        collection: CollectionName,
        external_id: ExternalIdPath,
        audience: Annotated[str, Query(description="The audience key to explain")],
    ) -> Response:
        """Why the profile (account) is or is not in an audience: the condition tree with each
        node's value for it (see docs/api.md)."""
        generation = store.current
        body = explain_body(generation, definitions_dir, space, collection.value, external_id,
                            audience)  # fmt: skip
        return ok(body, generation)


def explain_body(
    generation: Generation, definitions_dir: str, space: str, collection: str,
    external_id: str, audience: str,
) -> dict[str, Any]:  # fmt: skip
    """The explanation of one audience for one entity, its failures as API errors."""
    from audience_pipeline.explain import LevelMismatch, UnknownAudience, UnknownEntity
    from audience_pipeline.spec.issues import DefinitionsError
    from audience_pipeline.warehouse.snapshot import SnapshotMissing

    col, row = locate(generation, space, collection, external_id)
    level = "user" if col.name == USERS else "account"
    entity = col.ids[row]
    try:
        explainer = generation.explainer(definitions_dir)
        return explainer.explain(level, entity, [audience])[audience]
    except UnknownAudience:
        raise not_found(f"Audience {audience[:100]!r} was not found.") from None
    except LevelMismatch as error:
        raise bad_request(str(error)) from None
    except UnknownEntity as error:
        raise not_found(str(error)) from None
    except (SnapshotMissing, DefinitionsError) as error:
        raise ApiError(503, f"explain is not available: {str(error)[:300]}") from None


def traits_body(
    generation: Generation, space: str, collection: str, external_id: str, path: str, *,
    include: str | None, class_: str | None, limit: int, verbose: bool, cursor: str | None,
) -> dict[str, Any]:  # fmt: skip
    """The traits page (shared by the FastAPI route and the fast path)."""
    col, row = locate(generation, space, collection, external_id)
    after = string_cursor(cursor)
    wanted = set(split_list(include) or ()) if include is not None else None
    values = col.traits.row(row)
    columns = col.columns
    start = bisect_right(col.column_names, after) if after is not None else 0
    out: dict[str, Any] = {}
    last = None
    more = False
    stamp = iso(generation.as_of)
    for column in columns[start:]:
        if wanted is not None and column.name not in wanted:
            continue
        if class_ is not None and column.kind != class_:
            continue
        value = values[column.position]
        if value is None and column.kind == "custom_trait":
            continue  # the profile does not have this custom trait
        if len(out) == limit:
            more = True
            break
        if column.json_text and value is not None:
            value = orjson.loads(value)
        if verbose:
            value = {"value": value, "class": column.kind, "source_id": None,
                     "updated_at": None if column.kind == "custom_trait" else stamp}  # fmt: skip
        out[column.name] = value
        last = column.name
    params = {"include": include, "class": class_, "limit": limit,
              "verbose": "true" if verbose else None}  # fmt: skip
    return {"traits": out, "cursor": cursor_body(path, params, last if more else None, limit)}


def external_ids_body(
    generation: Generation, space: str, collection: str, external_id: str, path: str, *,
    include: str | None, limit: int, verbose: bool, cursor: str | None,
) -> dict[str, Any]:  # fmt: skip
    col, row = locate(generation, space, collection, external_id)
    after = _pair_cursor(cursor, str)
    types = set(split_list(include) or ()) if include is not None else None
    begin, end = col.external_offsets[row], col.external_offsets[row + 1]
    rows = col.external.slice(begin, end - begin).select("type", "id", "created_at").rows()
    data: list[dict[str, Any]] = []
    last: Any = None
    more = False
    for id_type, value, created in rows:
        if types is not None and id_type not in types:
            continue
        if after is not None and (id_type, value) <= after:
            continue
        if len(data) == limit:
            more = True
            break
        data.append(id_json(id_type, value, col.name, created))
        last = [id_type, value]
    params = {"include": include, "limit": limit, "verbose": "true" if verbose else None}
    return {"data": data, "cursor": cursor_body(path, params, last if more else None, limit)}


def metadata_body(
    generation: Generation, space: str, collection: str, external_id: str
) -> dict[str, Any]:
    col, row = locate(generation, space, collection, external_id)
    created, updated, first_id, last_id = col.metadata.row(row)
    body = {"created_at": iso(created), "updated_at": iso(updated), "expires_at": None,
            "first_message_id": first_id, "first_source_id": None,
            "last_message_id": last_id, "last_source_id": None}  # fmt: skip
    return {"metadata": body}


def links_body(
    generation: Generation, space: str, collection: str, external_id: str, path: str, *,
    limit: int, cursor: str | None,
) -> dict[str, Any]:  # fmt: skip
    col, row = locate(generation, space, collection, external_id)
    after = string_cursor(cursor)
    begin, end = col.link_offsets[row], col.link_offsets[row + 1]
    pairs = col.links.slice(begin, end - begin).select("other_row", "created_at").rows()
    other = generation.accounts if col.name == USERS else generation.users
    linked = sorted((other.ids[r], r, created) for r, created in pairs)
    data: list[dict[str, Any]] = []
    last: Any = None
    more = False
    for other_id, other_row, created in linked:
        if after is not None and other_id <= after:
            continue
        if len(data) == limit:
            more = True
            break
        if other.name == ACCOUNTS:
            ids = [external_id_of_account(other_id, created)]
        else:
            ids = external_ids_of(other, other_row)
        data.append({"to_collection": other.name, "external_ids": ids})
        last = other_id
    return {
        "data": data,
        "cursor": cursor_body(path, {"limit": limit}, last if more else None, limit),
    }


def external_id_of_account(account_id: str, created: datetime | None) -> dict[str, Any]:
    return id_json("group_id", account_id, ACCOUNTS, created)


def external_ids_of(users: Collection, row: int) -> list[dict[str, Any]]:
    begin, end = users.external_offsets[row], users.external_offsets[row + 1]
    rows = users.external.slice(begin, end - begin).select("type", "id", "created_at").rows()
    return [id_json(t, v, USERS, c) for t, v, c in rows]


def _time(text: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time parameter (no offset: UTC)."""
    if text is None:
        return None
    try:
        return _utc(datetime.fromisoformat(text))
    except ValueError:
        raise bad_request(f"{name}: not an ISO 8601 date or date-time: {text[:60]!r}") from None
    except OverflowError:  # readable, but outside years 1-9999 once converted to UTC
        raise bad_request(f"{name}: out of range in UTC: {text[:60]!r}") from None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _filter_events(
    frame: pl.DataFrame,
    start: datetime | None,
    end: datetime | None,
    include: list[str] | None,
    exclude: list[str] | None,
    after: tuple[Any, Any] | None,
    sort: str,
) -> pl.DataFrame:
    conditions = []
    if start is not None:
        conditions.append(pl.col("timestamp") > _utc(start))
    if end is not None:
        conditions.append(pl.col("timestamp") < _utc(end))
    if include is not None:
        conditions.append(pl.col("event").is_in(include))
    if exclude:
        conditions.append(~pl.col("event").is_in(exclude))
    descending = sort == "desc"
    if after is not None:
        micros = pl.col("timestamp").dt.epoch("us")
        if descending:
            conditions.append(
                (micros < after[0]) | ((micros == after[0]) & (pl.col("seq") < after[1]))
            )
        else:
            conditions.append(
                (micros > after[0]) | ((micros == after[0]) & (pl.col("seq") > after[1]))
            )
    if conditions:
        frame = frame.filter(pl.all_horizontal(conditions))
    return frame.sort("timestamp", "seq", descending=descending)


def _event(row: dict[str, Any], users: Collection) -> dict[str, Any]:
    ids = [id_json(i["id_type"], i["id_value"], USERS, None) for i in row.get("ids") or []]
    return {
        "type": row["type"],
        "event": row["event"],
        "message_id": row["message_id"],
        "source_id": None,
        "timestamp": iso(row["timestamp"]),
        "properties": unflatten(row["properties"]),
        "context": unflatten(row["context"]),
        "external_ids": ids,
        "related": {"users": users.ids[row["row"]]},
    }


__all__ = [
    "PROFILE",
    "CollectionName",
    "build_router",
    "check_space",
    "external_ids_body",
    "links_body",
    "metadata_body",
    "traits_body",
]
