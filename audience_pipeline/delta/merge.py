"""Replace some entities' rows in the previous tables, laid out as a full run lays them out.

A full run decides some column types from all the values it holds: a custom trait column is
JSON text exactly when its values mix JSON types (or hold containers), a custom key nobody holds
is no column, an empty first/last column is text. Merging old rows with recomputed ones settles
those the same way, or raises `NeedsFull` when it cannot (a native column would turn mixed: the
raw JSON text it came from is gone).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import polars as pl

from audience_pipeline.ir import nodes as ir


class NeedsFull(Exception):
    """The merge cannot be proven equal to a full run; recompute everything."""


def _all_null(series: pl.Series) -> bool:
    return series.null_count() == series.len()


def _stack(a: pl.DataFrame, b: pl.DataFrame, key: str) -> pl.DataFrame:
    """Two parts of one table (`_conform`) in one, sorted by `key` as `a` is: `b` is sorted
    and merged in (linear, where a sort of the whole table would not be), so equal keys must
    not span both parts."""
    a, b = _conform(a, b)
    return a.merge_sorted(b.sort(key, maintain_order=True), key)


def _conform(a: pl.DataFrame, b: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two parts of one table with the same columns: a column missing or all-null on one side
    takes the other side's type. Clashing types raise `NeedsFull`."""
    columns = list(dict.fromkeys([*a.columns, *b.columns]))
    target: dict[str, pl.DataType] = {}
    for name in columns:
        if name not in b.columns or (name in a.columns and _all_null(b[name])):
            target[name] = a.schema[name]
        elif name not in a.columns or _all_null(a[name]):
            target[name] = b.schema[name]
        elif a.schema[name] == b.schema[name]:
            target[name] = a.schema[name]
        else:
            msg = f"column {name!r} has types {a.schema[name]} and {b.schema[name]}"
            raise NeedsFull(msg)

    def conform(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            pl.col(n).cast(t) if n in frame.columns else pl.lit(None, dtype=t).alias(n)
            for n, t in target.items()
        )

    return conform(a), conform(b)


def _merge_blocks(
    old: pl.DataFrame, new: pl.DataFrame, blocks: list[str], key: str, order: list[pl.Expr]
) -> pl.DataFrame:
    """`old` and `new` (same schema) in one frame sorted by `order` (first the `blocks`, as
    expressions that sort them, then the rows within a block, starting with `key`),
    where `old` is already sorted by `order`.

    Sorting the whole table again (three string keys over millions of memberships) took
    seconds; here `old` is only cut into its blocks (runs of equal `blocks` values, zero-copy
    slices) and each block that has new rows is merged with them by `key`, linearly. Equal
    `key` values must not span both frames within a block (whole entities are replaced).
    """
    new = new.sort(order, maintain_order=True)
    # A block starts where any block column differs from the row before (neighbours compared
    # column by column: cheaper than run-length encoding a struct of them).
    changed = pl.any_horizontal(pl.col(b).ne_missing(pl.col(b).shift(1)) for b in blocks)
    starts = old.select(changed.arg_true())[:, 0].to_list()
    ends = [*starts[1:], old.height][: len(starts)]
    values = old.select(blocks)[starts].iter_rows()
    spans = {
        value: (start, end - start) for value, start, end in zip(values, starts, ends, strict=True)
    }
    parts = new.partition_by(blocks, maintain_order=True, as_dict=True)
    # The blocks of both frames, in `order`'s order: one row per block, sorted by Polars.
    every = pl.DataFrame(list(spans.keys() | parts.keys()), schema=old.select(blocks).schema,
                         orient="row")  # fmt: skip
    pieces: list[pl.DataFrame] = []
    for row in every.sort(order[: len(blocks)]).iter_rows():
        span = spans.get(row)
        kept = old.slice(*span) if span is not None else None
        added = parts.get(row)
        if kept is None or added is None:
            pieces.append(kept if added is None else added)  # type: ignore[arg-type]
        else:
            pieces.append(kept.merge_sorted(added, key))
    return pl.concat(pieces) if pieces else old


def _json_kind(text: pl.Expr) -> pl.Expr:
    """The JSON type of a JSON text: s(tring), n(umber), b(oolean), o(bject/array)."""
    first = text.str.strip_chars().str.slice(0, 1)
    return (
        pl.when(text.is_null() | (text.str.strip_chars() == "null"))
        .then(None)
        .when(first == '"')
        .then(pl.lit("s"))
        .when(first.is_in(["t", "f"]))
        .then(pl.lit("b"))
        .when(first.is_in(["{", "["]))
        .then(pl.lit("o"))
        .otherwise(pl.lit("n"))
    )


def _kinds(frame: pl.DataFrame, name: str, is_json: bool) -> set[str]:
    if name not in frame.columns:
        return set()
    column = frame[name].drop_nulls()
    if column.len() == 0:
        return set()
    if is_json:
        kinds = column.to_frame().select(_json_kind(pl.col(name)).alias(name))[name]
        return set(kinds.drop_nulls().to_list())
    dtype = frame.schema[name]
    return {"s" if dtype == pl.String else "b" if dtype == pl.Boolean else "n"}


def _to_native(frame: pl.DataFrame, name: str, kind: str) -> pl.DataFrame:
    """A JSON-text column whose values all have one JSON type -> that type's native column."""
    text = pl.col(name)
    if kind == "s":
        value = text.str.json_decode(pl.String)
    elif kind == "b":
        value = text.str.strip_chars() == "true"
    else:
        value = text.str.json_decode(pl.Float64)
    return frame.with_columns(value.alias(name))


def _traits(
    old: pl.DataFrame,
    new: pl.DataFrame,
    entity: str,
    space: ir.Space,
    level: str,
    old_json: set[str],
    new_json: set[str],
) -> tuple[pl.DataFrame, list[str]]:
    """Merge two parts of a traits table, settling native vs JSON-text columns as a full run
    would: JSON text exactly when the merged values mix JSON types (or hold containers)."""
    json_columns: list[str] = []
    for name in sorted((set(old.columns) & set(new.columns)) - old_json - new_json):
        # Two native types (a number before, a string now) are mixed JSON types too.
        clash = old.schema[name] != new.schema[name]
        if clash and not _all_null(old[name]) and not _all_null(new[name]):
            msg = f"trait column {name!r} became mixed"
            raise NeedsFull(msg)
    for name in sorted(old_json | new_json):
        kinds = _kinds(old, name, name in old_json) | _kinds(new, name, name in new_json)
        if len(kinds) > 1 or "o" in kinds:
            # Mixed: a full run keeps raw JSON text, which a native column cannot give back.
            for frame, flagged in ((old, old_json), (new, new_json)):
                if name not in flagged and name in frame.columns and not _all_null(frame[name]):
                    msg = f"trait column {name!r} became mixed"
                    raise NeedsFull(msg)
            json_columns.append(name)
            continue
        kind = next(iter(kinds), "s")
        if name in old_json and name in old.columns:
            old = _to_native(old, name, kind)
        if name in new_json and name in new.columns:
            new = _to_native(new, name, kind)
    computed = {t.key for t in space.traits if t.level == level}
    merged = _stack(old, new, entity)
    native = {t.key for t in space.traits if t.level == level and t.kind in ("first", "last")}
    audiences = {a.key for a in space.audiences if a.level == level}
    fixed = {entity} | computed | audiences
    custom = sorted(c for c in merged.columns if c not in fixed)
    # A custom key no entity holds any more is not a column of a full run; an empty first/last
    # column is text there.
    dropped = [c for c in custom if _all_null(merged[c])]
    merged = merged.drop(dropped).with_columns(
        pl.col(c).cast(pl.String) for c in native if c in merged.columns and _all_null(merged[c])
    )
    custom = [c for c in custom if c not in dropped]
    rest = [c for c in new.columns if c != entity and c not in custom and c not in dropped]
    return merged.select(entity, *custom, *rest), json_columns


_UTC = pl.Datetime("us", "UTC")


def restamp(frame: pl.DataFrame, name: str, as_of: object) -> pl.DataFrame:
    """The table with the run's as-of (only memberships carries one)."""
    if name == "memberships":
        return frame.with_columns(pl.lit(as_of).cast(_UTC).alias("as_of"))
    return frame


def kept_rows(
    old: dict[str, pl.DataFrame],
    *,
    identity_profiles: pl.Series,
    profiles: pl.Series,
    accounts: pl.Series,
) -> dict[str, pl.DataFrame]:
    """The rows of the previous tables that stay: all but those of the replaced entities.

    Args:
        old: the previous tables.
        identity_profiles: old profile ids whose identities rows go.
        profiles: old profile ids whose user rows (traits, user memberships) go.
        accounts: account ids whose account rows go.
    """
    gone_i = pl.col("profile_id").is_in(identity_profiles.implode())
    gone_p = pl.col("profile_id").is_in(profiles.implode())
    gone_a = pl.col("account_id").is_in(accounts.implode())
    gone_m = (
        pl.when(pl.col("level") == "user")
        .then(pl.col("entity_id").is_in(profiles.implode()))
        .otherwise(pl.col("entity_id").is_in(accounts.implode()))
    )
    gone = {
        "identities": gone_i,
        "user_traits": gone_p,
        "account_traits": gone_a,
        "memberships": gone_m,
        "account_user_memberships": gone_a,
    }
    return {name: old[name].filter(~gone[name]) for name in old}


def merge_tables(
    kept: dict[str, pl.DataFrame],
    old_json: dict[str, list[str]],
    new: dict[str, pl.DataFrame],
    new_json: dict[str, set[str]],
    *,
    space: ir.Space,
    as_of: object,
) -> tuple[dict[str, pl.DataFrame], dict[str, list[str]]]:
    """Add recomputed rows to the kept rows of the previous tables.

    Args:
        kept: the previous tables without the replaced entities' rows (`kept_rows`);
            old_json: the previous tables' JSON-text trait columns.
        new: recomputed rows, only of replaced entities (identities of the new profiles, user
            rows of the recomputed profiles' new ids, account rows of the recomputed accounts);
            new_json: the JSON-text trait columns of the run that computed them.
        space: the compiled space; as_of: the new as-of.

    Returns:
        The merged tables (each in the engine's row order) and their JSON-text trait columns.
    """

    def traits(table: str, entity: str, level: str) -> tuple[pl.DataFrame, list[str]]:
        old_columns, new_columns = set(old_json.get(table, [])), new_json.get(table, set())
        return _traits(kept[table], new[table], entity, space, level, old_columns, new_columns)

    # The tables merge independently and Polars releases the GIL while it copies: one thread
    # each keeps both cores busy (the sorted merges themselves run on one core).
    with ThreadPoolExecutor(max_workers=3) as pool:
        user = pool.submit(traits, "user_traits", "profile_id", "user")
        account = pool.submit(traits, "account_traits", "account_id", "account")
        identities = pool.submit(_merged_identities, kept, new)
        memberships = pool.submit(_merged_memberships, kept, new)
        account_users = pool.submit(_merged_account_users, kept, new)
        out = {
            "identities": identities.result(),
            "memberships": memberships.result(),
            "account_user_memberships": account_users.result(),
        }
        json: dict[str, list[str]] = {}
        out["user_traits"], json["user_traits"] = user.result()
        out["account_traits"], json["account_traits"] = account.result()
    tables = {name: restamp(out[name], name, as_of) for name in kept}
    return tables, json


def _merged_identities(kept: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame]) -> pl.DataFrame:
    # New profile ids never equal a kept one (a kept profile shares no value with the touched
    # components), so merging on profile_id alone keeps the full order.
    identity_order = ["profile_id", "id_type", "id_value"]
    return _stack(kept["identities"], new["identities"].sort(identity_order), "profile_id")


def _merged_memberships(
    kept: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame]
) -> pl.DataFrame:
    """In the engine's order: user rows, then account rows, each by audience and entity."""
    return _merge_blocks(
        *_conform(kept["memberships"], new["memberships"]),
        blocks=["level", "audience_key"],
        key="entity_id",
        order=[pl.col("level") != "user", pl.col("audience_key"), pl.col("entity_id")],
    )


def _merged_account_users(
    kept: dict[str, pl.DataFrame], new: dict[str, pl.DataFrame]
) -> pl.DataFrame:
    return _merge_blocks(
        *_conform(kept["account_user_memberships"], new["account_user_memberships"]),
        blocks=["audience_key"],
        key="account_id",
        order=[pl.col("audience_key"), pl.col("account_id"), pl.col("profile_id")],
    )


__all__ = ["NeedsFull", "kept_rows", "merge_tables", "restamp"]
