"""Custom trait values from their nested-tagged JSON: the quick path for strings without a
backslash reads exactly what Polars' JSON reader reads."""

from __future__ import annotations

import orjson
import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from audience_pipeline.engine.latest import flat_scalar


@given(st.lists(st.one_of(st.text(), st.none()), max_size=20))
def test_flat_scalar_equals_the_json_reader(texts: list[str | None]) -> None:
    tagged = [None if t is None else orjson.dumps("s" + t).decode() for t in texts]
    tagged += ['{"a":"sx"}', '["n1"]']
    frame = pl.DataFrame(
        {"t": tagged, "r": ["raw"] * len(tagged)},
        schema=pl.Schema({"t": pl.String, "r": pl.String}),
    )
    got = frame.select(flat_scalar(pl.col("t"), pl.col("r")))["t"]
    reader = pl.col("t").str.json_path_match("$")
    starts = pl.col("t").str.starts_with('"')
    want = frame.select(pl.when(starts).then(reader).otherwise(pl.lit("o") + pl.col("r")))["t"]
    assert got.to_list() == want.to_list()
