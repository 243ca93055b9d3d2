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
    user_audiences = [a for a in space_ir.audiences if a.level == "user"]
    account_audiences = [a for a in space_ir.audiences if a.level == "account"]
    rows = pl.concat([
        memberships(user_frame, user_audiences, "user", as_of),
        memberships(account_frame, account_audiences, "account", as_of),
    ])  # fmt: skip
    user_keys = set(user_latest["key"].unique().to_list())
    account_keys = set(account_latest["key"].unique().to_list())
    user_traits, user_json = native_traits(
        user_frame.sort(ENTITY), user_latest, "profile_id", space_ir, "user", user_keys,
        user_audiences,
    )  # fmt: skip
    account_traits, account_json = native_traits(
        account_frame.sort(ENTITY), account_latest, "account_id", space_ir, "account",
        account_keys, account_audiences,
    )  # fmt: skip
    sql: MatchedSqlTraits | None = prepared["sql_traits"]  # type: ignore[assignment]
    if sql is not None:
        user_traits, more = expand_columns(user_traits.rename({ENTITY: "profile_id"}), "profile_id",
                                           sql.rows["user"], sql.fields["user"])  # fmt: skip
        user_traits = user_traits.rename({"profile_id": ENTITY})
        user_json = (user_json - set(sql.fields["user"])) | more
        account_traits, more = expand_columns(account_traits.rename({ENTITY: "account_id"}),
                                              "account_id", sql.rows["account"],
                                              sql.fields["account"])  # fmt: skip
        account_traits = account_traits.rename({"account_id": ENTITY})
        account_json = (account_json - set(sql.fields["account"])) | more
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
