"""HTTP basic auth with the access token as user name (as Segment's Profile API takes it)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from audience_pipeline.api.errors import ApiError

TOKEN_ENV = "AUDIENCE_PIPELINE_API_TOKEN"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="audience-pipeline"'}

basic = HTTPBasic(
    auto_error=False,
    description="The access token (AUDIENCE_PIPELINE_API_TOKEN) as user name, no password.",
)


def token_problem(token: str) -> str | None:
    """Why `token` cannot work as a basic-auth user name, or None."""
    if not token:
        return "the token is empty"
    if not token.isascii() or not token.isprintable():
        return "the token must be printable ASCII (basic auth credentials are ASCII)"
    if ":" in token:
        return "the token cannot contain ':' (it separates user name and password)"
    return None


def token_digest(text: str) -> bytes:
    # Comparing fixed-size digests keeps the comparison constant-time whatever the lengths.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def token_check(token: str) -> Callable[..., Awaitable[None]]:
    """A dependency that admits requests whose basic-auth user name is `token`."""
    expected = token_digest(token)

    async def check(credentials: Annotated[HTTPBasicCredentials | None, Depends(basic)]) -> None:
        if credentials is None or not hmac.compare_digest(
            token_digest(credentials.username), expected
        ):
            raise ApiError(401, "a valid access token is required (basic auth user name)",
                           headers=CHALLENGE)  # fmt: skip

    return check


__all__ = ["TOKEN_ENV", "token_check", "token_problem"]
