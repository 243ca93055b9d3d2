"""JSON-typed values as Polars expressions (SPEC section 5's typing rules).

A name in a definition has no type of its own: the comparison it stands in decides whether it is
read as a number, a string or a boolean. A `Typed` value therefore offers each reading, plus its
JSON kind for comparisons between two names. This module is the one coercion chokepoint of the
Polars backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import polars as pl

from audience_pipeline.values import NUMERIC_STRING_PATTERN, number_text

KIND_NUMBER, KIND_STRING, KIND_BOOL, KIND_OTHER = "n", "s", "b", "o"
# A string-tagged value whose text is a number: the pattern behind the `s` tag.
TAGGED_NUMERIC_STRING = "^" + KIND_STRING + NUMERIC_STRING_PATTERN.removeprefix("^")


def null_bool() -> pl.Expr:
    return pl.lit(None, dtype=pl.Boolean)


def float_text(expr: pl.Expr) -> pl.Expr:
    """Number text of a float column (shortest decimal, no `.0`), as SPEC section 3 writes it."""
    return expr.map_elements(number_text, return_dtype=pl.String, skip_nulls=True)


class Typed(ABC):
    """A value whose reading depends on context."""

    @abstractmethod
    def num(self) -> pl.Expr: ...

    @abstractmethod
    def text(self) -> pl.Expr:
        """String reading: a string as itself, a number as its text; else null."""

    @abstractmethod
    def boolean(self) -> pl.Expr: ...

    @abstractmethod
    def kind(self) -> pl.Expr:
        """JSON kind: n, s, b, o (object/array), or null when missing/null."""

    @abstractmethod
    def is_null(self) -> pl.Expr:
        """True for a missing key or JSON null (never null itself)."""

    def distinct_text(self) -> pl.Expr:
        """Text used by unique_list / most_frequent / count(distinct): booleans as true/false."""
        return (
            pl.when(self.kind() == KIND_BOOL)
            .then(pl.when(self.boolean()).then(pl.lit("true")).otherwise(pl.lit("false")))
            .otherwise(self.text())
        )


class TaggedValue(Typed):
    """A flat-tagged scalar (see audience_pipeline.values): the first character is the kind.

    ``s``/``n``/``b`` carry the string, the number text or ``true``/``false``; ``o`` carries the
    raw JSON of an object or array.
    """

    def __init__(self, expr: pl.Expr) -> None:
        self.expr = expr

    def _tag(self) -> pl.Expr:
        return self.expr.str.slice(0, 1)

    def _body(self) -> pl.Expr:
        return self.expr.str.slice(1)

    # The readings test the tag with starts_with and match whole tagged strings, so that only
    # the one result column is allocated (slicing out tags and bodies costs a string per row).
    def _is(self, kind: str) -> pl.Expr:
        return self.expr.str.starts_with(kind)

    def num(self) -> pl.Expr:
        numeric = self._is(KIND_NUMBER) | (
            self._is(KIND_STRING) & self.expr.str.contains(TAGGED_NUMERIC_STRING)
        )
        return pl.when(numeric).then(self._body().cast(pl.Float64, strict=False)).otherwise(None)

    def text(self) -> pl.Expr:
        is_text = self._is(KIND_STRING) | self._is(KIND_NUMBER)
        return pl.when(is_text).then(self._body()).otherwise(None)

    def boolean(self) -> pl.Expr:
        return pl.when(self._is(KIND_BOOL)).then(self.expr == KIND_BOOL + "true").otherwise(None)

    def kind(self) -> pl.Expr:
        return self._tag()

    def is_null(self) -> pl.Expr:
        return self.expr.is_null()

    def distinct_text(self) -> pl.Expr:
        # strings as themselves, numbers as their text, booleans true/false, containers as JSON
        return self._body()


class NumberValue(Typed):
    """A native numeric column (count, sum, avg, min, max traits; aggregates)."""

    def __init__(self, expr: pl.Expr) -> None:
        self.expr = expr.cast(pl.Float64)

    def num(self) -> pl.Expr:
        return self.expr

    def text(self) -> pl.Expr:
        return float_text(self.expr)

    def boolean(self) -> pl.Expr:
        return null_bool()

    def kind(self) -> pl.Expr:
        return pl.when(self.expr.is_not_null()).then(pl.lit(KIND_NUMBER))

    def is_null(self) -> pl.Expr:
        return self.expr.is_null()


class TextValue(Typed):
    """A native string column (most_frequent traits)."""

    def __init__(self, expr: pl.Expr) -> None:
        self.expr = expr

    def num(self) -> pl.Expr:
        ok = self.expr.str.contains(NUMERIC_STRING_PATTERN)
        return pl.when(ok).then(self.expr.cast(pl.Float64, strict=False)).otherwise(None)

    def text(self) -> pl.Expr:
        return self.expr

    def boolean(self) -> pl.Expr:
        return null_bool()

    def kind(self) -> pl.Expr:
        return pl.when(self.expr.is_not_null()).then(pl.lit(KIND_STRING))

    def is_null(self) -> pl.Expr:
        return self.expr.is_null()


class OtherValue(Typed):
    """A list or object (unique_list traits): neither number, string nor boolean."""

    def __init__(self, expr: pl.Expr) -> None:
        self.expr = expr

    def num(self) -> pl.Expr:
        return pl.lit(None, dtype=pl.Float64)

    def text(self) -> pl.Expr:
        return pl.lit(None, dtype=pl.String)

    def boolean(self) -> pl.Expr:
        return null_bool()

    def kind(self) -> pl.Expr:
        return pl.when(self.expr.is_not_null()).then(pl.lit(KIND_OTHER))

    def is_null(self) -> pl.Expr:
        return self.expr.is_null()


class CoalesceValue(Typed):
    """coalesce(a, b, ...) of untyped names: each reading coalesces the same reading of the args."""

    def __init__(self, args: Sequence[Typed]) -> None:
        self.args = list(args)

    def num(self) -> pl.Expr:
        return pl.coalesce([a.num() for a in self.args])

    def text(self) -> pl.Expr:
        return pl.coalesce([a.text() for a in self.args])

    def boolean(self) -> pl.Expr:
        return pl.coalesce([a.boolean() for a in self.args])

    def kind(self) -> pl.Expr:
        return pl.coalesce([a.kind() for a in self.args])

    def is_null(self) -> pl.Expr:
        return pl.all_horizontal([a.is_null() for a in self.args])


class NullValue(Typed):
    """Literal NULL."""

    def num(self) -> pl.Expr:
        return pl.lit(None, dtype=pl.Float64)

    def text(self) -> pl.Expr:
        return pl.lit(None, dtype=pl.String)

    def boolean(self) -> pl.Expr:
        return null_bool()

    def kind(self) -> pl.Expr:
        return pl.lit(None, dtype=pl.String)

    def is_null(self) -> pl.Expr:
        return pl.lit(True)
