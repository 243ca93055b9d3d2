"""Where an entity's traits live in a frame, and how a `trait.k` name reads them."""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from audience_pipeline.engine.typed import (
    NullValue,
    NumberValue,
    OtherValue,
    TaggedValue,
    TextValue,
    Typed,
)
from audience_pipeline.ir.naming import (  # noqa: F401 (moved, re-exported)
    STORAGE_BY_KIND,
    TraitStorage,
    computed_column,
    custom_column,
)
from audience_pipeline.values import flat_tag, loads


def nested(tagged: pl.Expr, path: tuple[str, ...]) -> pl.Expr:
    """`address.city` of a trait whose value is an object (flat-tagged ``o{...}``)."""
    dotted = ".".join(path)

    def lookup(value: str) -> str | None:
        if not value.startswith("o"):
            return None
        return flat_tag(loads(value[1:])).get(dotted)

    return tagged.map_elements(lookup, return_dtype=pl.String, skip_nulls=True)


@dataclass
class TraitColumns:
    """Computed traits (shadowing) and custom traits of one level, by key."""

    computed: dict[str, TraitStorage] = field(default_factory=dict)
    custom: set[str] = field(default_factory=set)

    def columns(self) -> list[str]:
        return [computed_column(k) for k in self.computed] + [custom_column(k) for k in self.custom]

    def typed(self, path: tuple[str, ...], *, custom_only: bool = False, prefix: str = "") -> Typed:
        key, rest = path[0], path[1:]
        if not custom_only and key in self.computed:
            storage = self.computed[key]
            col = pl.col(prefix + computed_column(key))
            if rest:
                if storage == "tagged":
                    return TaggedValue(nested(col, rest))
                return NullValue()
            if storage == "number":
                return NumberValue(col)
            if storage == "text":
                return TextValue(col)
            if storage == "list":
                return OtherValue(col)
            return TaggedValue(col)
        if key in self.custom:
            col = pl.col(prefix + custom_column(key))
            if rest:
                return TaggedValue(nested(col, rest))
            return TaggedValue(col)
        return NullValue()
