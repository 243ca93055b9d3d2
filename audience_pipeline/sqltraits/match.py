"""SQL trait rows -> per-entity trait values: identifiers normalized and matched to profiles
(or accounts); unmatched rows counted; two rows for one entity fail the run (SPEC 7a).

The values take the shape of custom-trait "latest" rows (owner, key, value, tagged) holding one
object per entity, so both engines read `trait.k.column` / `traits: "k.column ..."` the way they
read a nested custom trait."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import polars as pl

from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sqltraits.run import SqlTraitError, SqlTraitResult
from audience_pipeline.values import dumps

log = logging.getLogger(__name__)

LATEST_SCHEMA = {"key": pl.String, "value": pl.String, "tagged": pl.String}


def normalize_identifier(value: Any, id_type: str, space: SpaceConfig) -> str | None:
    """As identifiers are: integers as decimal text, trimmed, emails lower-cased, blocked and
    other values None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        return None
    if text == "" or space.is_blocked(text):
        return None
    return text.lower() if id_type == "email" else text


def match_sql_traits(results: list[SqlTraitResult], identities: pl.DataFrame,
                     accounts: list[str], space: SpaceConfig
                     ) -> tuple[dict[str, pl.DataFrame], dict[str, int]]:  # fmt: skip
    """Per level, latest-style rows (`profile_id` / `account_id`, key, value, tagged); and per
    trait, how many rows matched no entity.

    `identities`: profile_id, id_type, id_value of every profile of the run.
    """
    owners = {"user": "profile_id", "account": "account_id"}
    out: dict[str, list[dict[str, Any]]] = {"user": [], "account": []}
    unmatched: dict[str, int] = {}
    account_set = set(accounts)
    lookup: dict[tuple[str, str], str] = {}
    if any(r.level == "user" for r in results):
        for profile, id_type, id_value in identities.select(
            "profile_id", "id_type", "id_value"
        ).iter_rows():
            lookup[(id_type, id_value)] = profile
    for result in results:
        seen: set[str] = set()
        missing = 0
        for raw_id, fields in zip(result.ids, result.rows, strict=True):
            value = normalize_identifier(raw_id, result.id_type, space)
            entity = None
            if value is not None:
                if result.level == "account":
                    entity = value if value in account_set else None
                else:
                    entity = lookup.get((result.id_type, value))
            if entity is None:
                missing += 1
                continue
            if entity in seen:
                msg = (f"SQL trait {result.key!r}: two rows reach one "
                       f"{'account' if result.level == 'account' else 'profile'} ({entity})")  # fmt: skip
                raise SqlTraitError(msg)
            seen.add(entity)
            text = dumps(fields)
            out[result.level].append({owners[result.level]: entity, "key": result.key,
                                      "value": text, "tagged": "o" + text})  # fmt: skip
        unmatched[result.key] = missing
    frames = {
        level: pl.DataFrame(rows, schema={owners[level]: pl.String, **LATEST_SCHEMA})
        for level, rows in out.items()
    }
    return frames, unmatched


@dataclass
class MatchedSqlTraits:
    """What an engine needs of the run's SQL traits, per level (user, account)."""

    rows: dict[str, pl.DataFrame]  # owner (profile_id / account_id), key, value, tagged
    keys: dict[str, set[str]]  # every SQL trait key of the level (rows or not)
    fields: dict[str, dict[str, list[str]]]  # key -> its field columns, per level
    unmatched: dict[str, int]  # trait key -> rows that reached no entity

    def stats(self) -> dict[str, int]:
        return {f"sql_trait_unmatched.{k}": v for k, v in sorted(self.unmatched.items())}


def matched_sql_traits(results: list[SqlTraitResult] | None, identities: pl.DataFrame,
                       accounts: list[str], space: SpaceConfig) -> MatchedSqlTraits | None:  # fmt: skip
    if not results:
        return None
    rows, unmatched = match_sql_traits(results, identities, accounts, space)
    for key, count in unmatched.items():
        if count:
            log.warning("SQL trait %s: %d row(s) matched no entity", key, count)
    keys = {level: {r.key for r in results if r.level == level} for level in ("user", "account")}
    fields = {
        level: {r.key: r.fields for r in results if r.level == level}
        for level in ("user", "account")
    }
    return MatchedSqlTraits(rows, keys, fields, unmatched)


__all__ = ["MatchedSqlTraits", "match_sql_traits", "matched_sql_traits", "normalize_identifier"]
