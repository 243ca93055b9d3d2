"""Custom traits as the levels read them: each owner's latest value per key, pivoted wide.

`owners_latest` is the one step from an entity's messages and trait updates to its latest
custom traits and its accounts' members; `compute` (every profile) and `explain` (a few) both
call it before `engine.levels.evaluate_levels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from audience_pipeline.engine.aggregate import ORDER
from audience_pipeline.engine.columns import ENTITY
from audience_pipeline.engine.traitvalues import custom_column


def latest_traits(updates: pl.DataFrame, owner: str) -> pl.DataFrame:
    """Per (owner, key) the latest non-null value by (timestamp, messageId, read order).

    `updates`: key, value, tagged, <ORDER> (the message's processing order), <owner>.
    Returns owner, key, value (raw JSON), tagged (tagged text).
    """
    return (
        updates.group_by(owner, "key")
        .agg(pl.col("value", "tagged").sort_by(ORDER).last())
        .with_columns(flat_scalar(pl.col("tagged"), pl.col("value")).alias("tagged"))
    )


def flat_scalar(tagged: pl.Expr, raw: pl.Expr) -> pl.Expr:
    """Nested-tagged JSON of a trait value -> a flat-tagged scalar (containers: ``o`` + raw JSON).

    A JSON string without a backslash is its text between the quotes; only the others go
    through the JSON reader (which costs most of this step when every row takes it: a
    when/then computes each branch over every row, so it gets the escaped rows alone).
    """
    text = tagged.str.starts_with('"')
    escaped = tagged.str.contains("\\", literal=True)
    decoded = pl.when(text & escaped).then(tagged).str.json_path_match("$")
    plain = tagged.str.slice(1, tagged.str.len_chars() - 2)
    return (
        pl.when(text & ~escaped).then(plain).when(text).then(decoded).otherwise(pl.lit("o") + raw)
    )


def custom_wide(
    latest: pl.DataFrame, owner: str, entities: pl.DataFrame
) -> tuple[pl.DataFrame, set[str]]:
    """entity_id + one tagged column per custom trait key (`_ct_<key>`) for every entity of
    `entities` (its `owner` column), and the keys."""
    keys = set(latest["key"].unique().to_list()) if latest.height else set()
    if not keys:
        return entities.select(pl.col(owner).alias(ENTITY)), keys
    wide = latest.pivot(on="key", index=owner, values="tagged")
    wide = wide.rename({k: custom_column(k) for k in keys}).rename({owner: ENTITY})
    return entities.select(pl.col(owner).alias(ENTITY)).join(wide, on=ENTITY, how="left"), keys


@dataclass(frozen=True)
class Latest:
    """The latest custom traits of the messages' owners, and the accounts they belong to."""

    users: pl.DataFrame  # profile_id, key, value, tagged
    accounts: pl.DataFrame  # account_id, key, value, tagged
    members: pl.DataFrame  # account_id, profile_id (unique pairs)
    account_ids: pl.DataFrame  # account_id: every groupId of a group call, sorted

    def scoped(self, accounts: list[str]) -> Latest:
        """Only the accounts of `accounts` (explain's scope)."""
        keep = pl.col("account_id").is_in(accounts)
        return Latest(self.users, self.accounts.filter(keep), self.members.filter(keep),
                      self.account_ids.filter(keep))  # fmt: skip


def owners_latest(messages: pl.DataFrame, trait_updates: pl.DataFrame) -> Latest:
    """Latest user and account traits from `trait_updates`, and the accounts' members.

    `messages`: seq, type, group_id, profile_id and the processing order (`ORDER`); type and
    group_id may be Categorical (the engine's thin message columns).
    An account trait counts from a group call with a groupId only (the account it names).
    """
    is_group = (pl.col("type") == "group") & pl.col("group_id").is_not_null()
    groups = messages.filter(is_group).select(
        "seq", ORDER, "profile_id", account_id=pl.col("group_id").cast(pl.String)
    )
    # The updates are joined to their messages by row number alone: the value and tagged text
    # of the one row each (owner, key) keeps are gathered after the group-by, so the join and
    # the group-by carry integers and the short key, not every update's JSON text.
    updates = trait_updates.select("seq", "kind", "key").with_row_index(_ROW)
    users = updates.filter(pl.col("kind") == "user").select(_ROW, "seq", "key")
    users = users.join(messages.select("seq", ORDER, "profile_id"), on="seq", how="inner")
    user_latest = _latest_rows(users, "profile_id", trait_updates)
    del users
    accounts = updates.filter(pl.col("kind") == "account").select(_ROW, "seq", "key")
    accounts = accounts.join(groups.select("seq", ORDER, "account_id"), on="seq", how="inner")
    account_latest = _latest_rows(accounts, "account_id", trait_updates)
    account_ids = groups.select("account_id").unique().sort("account_id")
    members = groups.select("account_id", "profile_id").unique()
    return Latest(user_latest, account_latest, members, account_ids)


_ROW = "_update_row"


def _latest_rows(keyed: pl.DataFrame, owner: str, updates: pl.DataFrame) -> pl.DataFrame:
    """`latest_traits` of the updates `keyed` names by row (`_ROW`, with key, `ORDER`, owner):
    the same sort per (owner, key), over the row numbers instead of the texts."""
    picked = keyed.group_by(owner, "key").agg(pl.col(_ROW).sort_by(ORDER).last())
    rows = picked.get_column(_ROW)
    return picked.select(
        owner,
        "key",
        value=updates.get_column("value").gather(rows),
        tagged=updates.get_column("tagged").gather(rows),
    ).with_columns(flat_scalar(pl.col("tagged"), pl.col("value")).alias("tagged"))


__all__ = ["Latest", "custom_wide", "flat_scalar", "latest_traits", "owners_latest"]
