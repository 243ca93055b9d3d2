"""Column names both backends give the values they compute (a shared IR pass, no backend code).

The Polars engine and the SQL backend name an entity's precomputed columns alike, so that the
shaping of the output tables (`audience_pipeline.tables`) reads either engine's level frame.
"""

from __future__ import annotations

from typing import Literal

ENTITY = "entity_id"

TraitStorage = Literal["number", "text", "list", "tagged"]

# How each computed trait kind is stored in a level frame (and so how `trait.k` reads it).
STORAGE_BY_KIND: dict[str, TraitStorage] = {
    "count": "number",
    "sum": "number",
    "avg": "number",
    "min": "number",
    "max": "number",
    "unique_count": "number",
    "score": "number",
    "most_frequent": "text",
    "unique_list": "list",
    "first": "tagged",
    "last": "tagged",
}


def audience_column(key: str) -> str:
    """The boolean column of an audience."""
    return f"_a_{key}"


def custom_column(key: str) -> str:
    """The column of a custom (sent) trait."""
    return f"_ct_{key}"


def computed_column(key: str) -> str:
    """The column of a computed trait."""
    return f"_tr_{key}"
