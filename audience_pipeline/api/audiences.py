"""GET /v1/spaces/{space}/audiences/{key}/members: an audience's members, paged by id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from audience_pipeline.api.errors import not_found
from audience_pipeline.api.pagination import cursor_body
from audience_pipeline.api.profiles import (
    CursorAlias,
    Limit,
    Next,
    check_space,
    external_id_of_account,
    external_ids_of,
    string_cursor,
)
from audience_pipeline.api.responses import ok
from audience_pipeline.api.schemas import ERRORS, MembersResponse
from audience_pipeline.api.store import Store
from audience_pipeline.api.tables import ACCOUNTS, USERS


def build_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["audiences"])

    @router.get("/v1/spaces/{space}/audiences/{key}/members", response_model=MembersResponse,
                responses=ERRORS)  # fmt: skip
    async def members(
        request: Request,
        space: str,
        key: str,
        limit: Limit = 100,
        verbose: Annotated[bool, Query(description="Include each member's external ids")] = False,
        next: Next = None,
        cursor: CursorAlias = None,
    ) -> Response:
        """Members in id order (profile_id for user audiences, account_id for account ones)."""
        generation = store.current
        check_space(generation, space)
        level = generation.audience_levels.get(key)
        if level is None:
            raise not_found(f"Audience {key[:100]!r} was not found.")
        after = string_cursor(next or cursor)
        ids = generation.members.get(key)
        collection = generation.users if level == "user" else generation.accounts
        page: list[str] = []
        size = 0
        if ids is not None:
            size = ids.len()
            start = int(ids.search_sorted(after, side="right")) if after is not None else 0
            page = ids.slice(start, limit + 1).to_list()
        more = len(page) > limit
        page = page[:limit]
        data = []
        for entity in page:
            item: dict = {"id": entity, "collection": collection.name}
            if verbose:
                row = collection.row_of(entity)
                if collection.name == ACCOUNTS:
                    item["external_ids"] = [external_id_of_account(entity, None)]
                elif row is not None:
                    item["external_ids"] = external_ids_of(collection, row)
            data.append(item)
        params = {"limit": limit, "verbose": "true" if verbose else None}
        body = {"audience": key, "level": level, "size": size, "data": data,
                "cursor": cursor_body(request.url.path, params, page[-1] if more else None, limit)}  # fmt: skip
        return ok(body, generation)

    return router


__all__ = ["build_router", "USERS"]
