"""`audience-pipeline explain KEY ID_TYPE:ID_VALUE`: one explanation, as text or JSON."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import polars as pl

from audience_pipeline.explain.explainer import (
    Explainer,
    LevelMismatch,
    UnknownAudience,
    UnknownEntity,
)
from audience_pipeline.explain.render import render
from audience_pipeline.external_ids import PROFILE_ID, BadExternalId, parse_external_id
from audience_pipeline.warehouse.snapshot import SnapshotMissing, open_snapshot


def explain_command(
    key: str, external_id: str, warehouse: str | Path, definitions: str | Path, as_json: bool
) -> int:
    """Print why the entity is (or is not) in the audience; 0 when explained, 2 on errors.

    Raises:
        DefinitionsError: invalid definitions (the CLI prints them and exits 1).
    """
    try:
        snapshot = open_snapshot(Path(warehouse))
        explainer = Explainer(snapshot, definitions)
        level = explainer.level_of(key)
        id_type, value = parse_external_id(external_id, explainer.definitions.space, level)
        entity = (
            value
            if level == "account" or id_type == PROFILE_ID
            else _profile_of(explainer, id_type, value)
        )
        explanation = explainer.explain(level, entity, [key])[key]
    except (UnknownAudience, UnknownEntity) as error:
        print(f"error: {error.args[0]}", file=sys.stderr)
        return 2
    except (SnapshotMissing, BadExternalId, LevelMismatch) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if as_json:
        print(orjson.dumps(explanation, option=orjson.OPT_INDENT_2).decode())
    else:
        subject = external_id if external_id.endswith(entity) else f"{external_id} ({entity})"
        print(render(explanation, subject=subject))
    return 0


def _profile_of(explainer: Explainer, id_type: str, value: str) -> str:
    found = (
        explainer.snapshot.scan("identities")
        .filter((pl.col("id_type") == id_type) & (pl.col("id_value") == value))
        .select("profile_id")
        .collect()
    )
    if found.height == 0:
        raise UnknownEntity(f"no profile has {id_type}:{value}")
    return str(found["profile_id"][0])


__all__ = ["explain_command"]
