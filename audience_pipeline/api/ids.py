"""`id_type:id_value` in the path -> a profile or account row of the generation."""

from __future__ import annotations

from audience_pipeline.api.errors import bad_request, not_found
from audience_pipeline.api.responses import stamp
from audience_pipeline.api.tables import USERS, Generation
from audience_pipeline.external_ids import PROFILE_ID, BadExternalId, parse_external_id


def resolve(generation: Generation, collection: str, external_id: str) -> int:
    """The row of the entity an external id names.

    Raises:
        ApiError: 400 for a malformed id or an unknown id type, 404 when nobody has it.
    """
    level = "user" if collection == USERS else "account"
    try:
        id_type, value = parse_external_id(external_id, generation.definitions.space, level)
    except BadExternalId as error:
        raise bad_request(str(error)) from None
    if level == "account":
        row = generation.accounts.row_of(value)
    elif id_type == PROFILE_ID:
        row = generation.users.row_of(value)
    else:
        index = generation.id_index.get(id_type)
        row = index.get(value) if index is not None else None
    if row is None:
        missing = not_found(f"{'Profile' if level == 'user' else 'Account'} was not found.")
        missing.headers.update(stamp(generation))
        raise missing
    return row


__all__ = ["resolve"]
