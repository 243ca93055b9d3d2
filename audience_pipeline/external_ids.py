"""`id_type:id_value` (Segment's external id form), parsed and normalized as ingestion does."""

from __future__ import annotations

from audience_pipeline.spec.models import SpaceConfig

PROFILE_ID = "profile_id"
GROUP_ID = "group_id"


class BadExternalId(ValueError):
    """Not `id_type:id_value`, or an id type that does not exist at that level."""


def parse_external_id(text: str, space: SpaceConfig, level: str) -> tuple[str, str]:
    """Split and normalize an external id for a user- or account-level lookup.

    Values are trimmed and emails lower-cased, as ingestion normalizes identifiers. Users are
    looked up by any configured identifier type or `profile_id`; accounts by `group_id`.

    Raises:
        BadExternalId: malformed, or an id type that does not apply.
    """
    id_type, sep, raw = text.partition(":")
    value = raw.strip()
    if not sep or not id_type or not value:
        msg = f"expected <id_type>:<id_value>, got {text[:100]!r}"
        raise BadExternalId(msg)
    if level == "account":
        if id_type != GROUP_ID:
            msg = f"accounts are looked up by group_id, not {id_type[:50]!r}"
            raise BadExternalId(msg)
        return id_type, value
    if id_type == PROFILE_ID:
        return id_type, value
    spec = space.identifier(id_type)
    if spec is None:
        known = ", ".join([*(s.type for s in space.identifiers), PROFILE_ID])
        msg = f"unknown id type {id_type[:50]!r}; use one of {known}"
        raise BadExternalId(msg)
    return id_type, value.lower() if spec.type == "email" else value


__all__ = ["GROUP_ID", "PROFILE_ID", "BadExternalId", "parse_external_id"]
