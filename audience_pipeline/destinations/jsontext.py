"""JSON text built column-wise with Polars string expressions (no per-row Python)."""

from __future__ import annotations

import polars as pl

# Characters JSON must escape; a value without any is quoted as it is (the common case).
NEEDS_ESCAPE = ['"', "\\", *(chr(code) for code in range(0x20))]


def needs_escape(values: pl.Series) -> bool:
    """Whether any value holds a character JSON must escape."""
    return bool(values.str.contains_any(NEEDS_ESCAPE).any())


def json_string(column: pl.Expr, escape: bool) -> list[pl.Expr]:
    """Pieces that concatenate to the column as a JSON string literal (null stays null).

    ``escape``: whether any value may need escaping (see :func:`needs_escape`); when not, the
    value is only put between quotes, which is several times cheaper than encoding.
    """
    if not escape:
        return [pl.lit('"'), column, pl.lit('"')]
    encoded = pl.struct(column.alias("x")).struct.json_encode()  # {"x":"..."}
    inner = encoded.str.slice(5, encoded.str.len_chars() - 6)  # characters, not bytes
    return [pl.when(column.is_not_null()).then(inner)]
