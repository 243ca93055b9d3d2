"""Response shapes, for the OpenAPI document (handlers serialize with orjson themselves)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    code: str = Field(description="validation_error, authentication_error, not_found, ...")
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class Cursor(BaseModel):
    url: str = Field(description="This list's URL (with its parameters, without next)")
    has_more: bool
    next: str = Field(description="Pass as `next` for the following page; empty at the end")
    limit: int


class TraitsResponse(BaseModel):
    traits: dict[str, Any] = Field(
        description="Trait name -> value; with verbose=true, -> {value, class, updated_at, "
        "source_id}. Audiences are booleans named by the audience key."
    )
    cursor: Cursor


class ExternalId(BaseModel):
    id: str
    type: str
    collection: str
    source_id: str | None = None
    created_at: str | None = Field(None, description="First message that carried it")
    encoding: str = "none"


class ExternalIdsResponse(BaseModel):
    data: list[ExternalId]
    cursor: Cursor


class Event(BaseModel):
    type: str
    event: str | None
    message_id: str | None
    source_id: str | None = None
    timestamp: str
    properties: dict[str, Any]
    context: dict[str, Any]
    external_ids: list[ExternalId]
    related: dict[str, str]


class EventsResponse(BaseModel):
    data: list[Event]
    cursor: Cursor


class Metadata(BaseModel):
    created_at: str | None
    updated_at: str | None
    expires_at: str | None = None
    first_message_id: str | None
    first_source_id: str | None = None
    last_message_id: str | None
    last_source_id: str | None = None


class MetadataResponse(BaseModel):
    metadata: Metadata


class Link(BaseModel):
    to_collection: str
    external_ids: list[ExternalId]


class LinksResponse(BaseModel):
    data: list[Link]
    cursor: Cursor


class Member(BaseModel):
    id: str = Field(description="profile_id or account_id (groupId)")
    collection: str
    external_ids: list[ExternalId] | None = Field(None, description="With verbose=true")


class MembersResponse(BaseModel):
    audience: str
    level: str
    size: int
    data: list[Member]
    cursor: Cursor


class ExplainResponse(BaseModel):
    """See docs/api.md ("Explain") for the node types and their fields."""

    audience: str
    name: str
    level: str
    entity_id: str
    as_of: str
    member: bool
    warehouse_member: bool
    condition: dict[str, Any]


class Health(BaseModel):
    status: str
    generation: int
    as_of: str
    loaded_at: str
    profiles: int
    accounts: int


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Malformed id or parameter"},
    401: {"model": ErrorResponse, "description": "Missing or wrong access token"},
    404: {"model": ErrorResponse, "description": "Unknown space, profile, account or audience"},
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorResponse, "description": "The run kept no normalized messages"},
}
