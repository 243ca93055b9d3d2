"""The Profile API application: FastAPI routes over a `Store`, token auth, JSON errors."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from audience_pipeline.api import audiences, profiles
from audience_pipeline.api.auth import token_check, token_problem
from audience_pipeline.api.errors import ApiError, install_handlers
from audience_pipeline.api.fastpath import FastPath
from audience_pipeline.api.responses import iso, ok
from audience_pipeline.api.schemas import Health
from audience_pipeline.api.store import Store

DESCRIPTION = """\
Read any profile's (or account's) traits and audience memberships at request time, compatible
with Segment's Profile API: the same paths, parameters and response shapes. Audiences are
boolean traits named by the audience key. Authenticate with HTTP basic auth, the access token
(AUDIENCE_PIPELINE_API_TOKEN) as user name and an empty password. See docs/api.md.
"""


def create_app(store: Store, token: str, *, definitions_dir: str = "definitions") -> FastAPI:
    """The ASGI app serving `store`'s current generation to holders of `token`."""
    problem = token_problem(token)
    if problem is not None:
        raise ValueError(problem)
    app = FastAPI(
        title="audience-pipeline Profile API",
        version="1",
        description=DESCRIPTION,
    )
    install_handlers(app)
    # Hot reads skip FastAPI's parameter solving; anything unusual still goes through FastAPI.
    app.add_middleware(FastPath, store=store, token=token)
    secured = [Depends(token_check(token)), Depends(known_parameters_only)]
    app.include_router(profiles.build_router(store, definitions_dir), dependencies=secured)
    app.include_router(audiences.build_router(store), dependencies=secured)

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Response:
        """Liveness and the run being served (no customer data; no token needed)."""
        generation = store.current
        body = {
            "status": "ok",
            "generation": generation.number,
            "as_of": iso(generation.as_of),
            "loaded_at": iso(generation.loaded_at),
            "profiles": len(generation.users.ids),
            "accounts": len(generation.accounts.ids),
        }
        return ok(body, generation)

    _document_errors_as_400(app)
    return app


async def known_parameters_only(request: Request) -> None:
    """400 for a query parameter the route does not take (a typo like `limt=` must not be
    silently ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = {p.alias for p in dependant.query_params}
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        names = ", ".join(repr(u[:40]) for u in unknown[:3])
        raise ApiError(400, f"unknown query parameter(s) {names}; this route takes "
                       f"{', '.join(sorted(known)) or 'none'}")  # fmt: skip


def _document_errors_as_400(app: FastAPI) -> None:
    """FastAPI documents 422 for invalid parameters; this API answers those with 400."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for operations in schema.get("paths", {}).values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


__all__ = ["create_app"]
