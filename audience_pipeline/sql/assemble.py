"""The output tables from the level frames an SQL engine computed (shared by the DuckDB and
PostgreSQL engines, so that every engine writes the Polars engine's tables and dtypes)."""

from __future__ import annotations

from datetime import datetime

import polars as pl

from audience_pipeline.ir import nodes as ir
from audience_pipeline.sql.relations import ENTITY
from audience_pipeline.sqltraits.columns import expand_columns
from audience_pipeline.sqltraits.match import MatchedSqlTraits
from audience_pipeline.tables.memberships import account_user_memberships, memberships
from audience_pipeline.tables.native import native_traits
from audience_pipeline.tables.result import ComputeResult


def _frame_or_empty(frames: dict[str, pl.DataFrame], level: str, entities: pl.DataFrame,
                    owner: str) -> pl.DataFrame:  # fmt: skip
    if level in frames:
        return frames[level]
    return entities.select(pl.col(owner).alias(ENTITY))


def assemble_result(
    prepared: dict[str, object],
    frames: dict[str, pl.DataFrame],
    profiles: pl.DataFrame,
    accounts: pl.DataFrame,
    members: pl.DataFrame,
    space_ir: ir.Space,
    as_of: datetime,
) -> ComputeResult:
    """The output tables from the level frames an SQL engine computed (shared by the DuckDB and
    PostgreSQL engines, so that every engine writes the Polars engine's tables and dtypes).

    `prepared`: ``identity``, ``user_latest``, ``account_latest`` and ``messages`` (as
    `prepare_inputs` returns them); `profiles`, `accounts`, `members`: the entity relations.
    """
    identity = prepared["identity"]
    user_latest: pl.DataFrame = prepared["user_latest"]  # type: ignore[assignment]
    account_latest: pl.DataFrame = prepared["account_latest"]  # type: ignore[assignment]
    user_frame = _frame_or_empty(frames, "user", profiles, "profile_id")
    account_frame = _frame_or_empty(frames, "account", accounts, "account_id")
    rows = pl.concat([
        memberships(user_frame, _audiences(space_ir, "user"), "user", as_of),
        memberships(account_frame, _audiences(space_ir, "account"), "account", as_of),
    ])  # fmt: skip
    sql: MatchedSqlTraits | None = prepared["sql_traits"]  # type: ignore[assignment]
    user_traits, user_json = _traits_table(user_frame, user_latest, "profile_id", space_ir,
                                           "user", sql)  # fmt: skip
    account_traits, account_json = _traits_table(account_frame, account_latest, "account_id",
                                                 space_ir, "account", sql)  # fmt: skip
    stats = {
        "messages": int(prepared["messages"]),  # type: ignore[call-overload]
        **(sql.stats() if sql is not None else {}),
        "profiles": profiles.height,
        "accounts": accounts.height,
        **{f"identity_{k}": v for k, v in identity.stats.items()},  # type: ignore[attr-defined]
    }
    return ComputeResult(
        as_of=as_of,
        identities=identity.identities,  # type: ignore[attr-defined]
        user_traits=user_traits.rename({ENTITY: "profile_id"}).sort("profile_id"),
        account_traits=account_traits.rename({ENTITY: "account_id"}).sort("account_id"),
        memberships=rows,
        account_user_memberships=account_user_memberships(rows, members),
        message_profiles=identity.message_profiles,  # type: ignore[attr-defined]
        stats=stats,
        json_columns={"user_traits": user_json, "account_traits": account_json},
    )


def _audiences(space_ir: ir.Space, level: str) -> list[ir.Audience]:
    return [a for a in space_ir.audiences if a.level == level]


def _traits_table(
    frame: pl.DataFrame,
    latest: pl.DataFrame,
    owner: str,
    space_ir: ir.Space,
    level: str,
    sql: MatchedSqlTraits | None,
) -> tuple[pl.DataFrame, set[str]]:
    """One level's traits table (entity_id, native columns; SQL traits as `<key>.<field>`
    columns) and its JSON-text columns."""
    keys = set(latest["key"].unique().to_list())
    traits, json_columns = native_traits(frame.sort(ENTITY), latest, owner, space_ir, level,
                                         keys, _audiences(space_ir, level))  # fmt: skip
    if sql is None:
        return traits, json_columns
    traits, more = expand_columns(traits.rename({ENTITY: owner}), owner, sql.rows[level],
                                  sql.fields[level])  # fmt: skip
    return traits.rename({owner: ENTITY}), (json_columns - set(sql.fields[level])) | more
