"""Trait columns as analysts read them: native types where a trait has one JSON type.

SPEC section 5a: trait columns hold native values where a trait has one type; values of mixed
JSON types (and objects or arrays) are stored as JSON text.
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from audience_pipeline.ir import nodes as ir
from audience_pipeline.ir.naming import ENTITY, audience_column, computed_column
from audience_pipeline.values import flat_to_json


def is_mixed(tagged: pl.Series) -> bool:
    """Whether a tagged column's values need JSON text (several JSON types, or containers)."""
    present = tagged.drop_nulls()
    tags = set(present.str.slice(0, 1).unique().to_list()) if present.len() else set()
    return len(tags) > 1 or "o" in tags


def native_column(
    tagged: pl.Series, raw: pl.Series | None = None, *, as_json: bool = False
) -> pl.Series:
    """Tagged values -> a String, Float64 or Boolean series, or JSON text when types mix (or
    `as_json` asks for it).

    `raw` (the values' original JSON text, when known) is what mixed columns keep.
    """
    present = tagged.drop_nulls()
    tags = set(present.str.slice(0, 1).unique().to_list()) if present.len() else set()
    body = tagged.str.slice(1)
    if not tags:
        return body.rename(tagged.name)
    if len(tags) == 1 and not as_json:
        (tag,) = tags
        if tag == "s":
            return body.rename(tagged.name)
        if tag == "n":
            return body.cast(pl.Float64).rename(tagged.name)
        if tag == "b":
            return (body == "true").rename(tagged.name)
    # Mixed types, objects or arrays, or asked for: JSON text.
    if raw is not None:
        return raw.rename(tagged.name)
    return tagged.map_elements(flat_to_json, return_dtype=pl.String, skip_nulls=True).rename(
        tagged.name
    )


def native_traits(
    frame: pl.DataFrame,
    latest: pl.DataFrame,
    owner: str,
    space: ir.Space,
    level: str,
    custom_keys: set[str],
    audiences: list[ir.Audience],
    keep_json: Collection[str] = (),
) -> tuple[pl.DataFrame, set[str]]:
    """entity_id, custom traits, computed traits (shadowing custom), then one boolean per audience.

    Also returns the names of the columns stored as JSON text (mixed JSON types, and those of
    `keep_json` that hold a value: an incremental pass keeps the previous run's JSON-text
    columns as text, so that merging them with the previous rows loses nothing).
    """
    json_columns: set[str] = set()
    traits = [t for t in space.traits if t.level == level]
    computed_keys = {t.key for t in traits}
    columns = [frame[ENTITY]]
    for trait in traits:
        series = frame[computed_column(trait.key)]
        if trait.kind in ("first", "last"):
            as_json = trait.key in keep_json and series.null_count() < series.len()
            if is_mixed(series) or as_json:
                json_columns.add(trait.key)
            series = native_column(series, as_json=as_json)
        columns.append(series.rename(trait.key))
    taken = computed_keys | custom_keys | {ENTITY}
    columns += [
        frame[audience_column(a.key)].rename(a.key) for a in audiences if a.key not in taken
    ]
    out = pl.DataFrame(columns)
    custom = sorted(custom_keys - computed_keys)
    if custom:
        chosen = latest.filter(pl.col("key").is_in(custom))
        wide = chosen.pivot(on="key", index=owner, values="tagged").rename({owner: ENTITY})
        raw = chosen.pivot(on="key", index=owner, values="value").rename({owner: ENTITY})
        raw = wide.select(ENTITY).join(raw, on=ENTITY, how="left", maintain_order="left")
        forced = {k for k in custom if k in keep_json and wide[k].null_count() < wide.height}
        json_columns |= {k for k in custom if is_mixed(wide[k])} | forced
        converted = wide.select(
            ENTITY, *[native_column(wide[k], raw[k], as_json=k in forced) for k in custom]
        )
        out = out.join(converted, on=ENTITY, how="left")
        ordered = [ENTITY, *custom, *[c for c in out.columns if c != ENTITY and c not in custom]]
        out = out.select(ordered)
    return out, json_columns
