"""The readers' flat columns (DuckDB's key extraction) equal Polars' decode of the same texts."""

from __future__ import annotations

from typing import Any

import orjson
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_pipeline.ingest import flatten

KEYS = st.one_of(
    st.sampled_from(
        ["", "~", "/", "~1", "~0", "a/b", "*", "^a$", '"', "\\", "a.b", "é", "😀", " "]
    ),
    st.text(max_size=6),
)
VALUES = st.one_of(
    st.none(),
    st.text(max_size=8).map(lambda text: "s" + text),
    st.sampled_from(["n1", "n-2.5", "btrue", "bfalse", 'o{"a":[1,"x\\"y"]}', "s\\u0000", "s\n"]),
)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=6)


def _decoded(texts: pl.Series) -> pl.DataFrame:
    fields = flatten.decode_fields(texts)
    return fields.select(fields.get_column(name) for name in sorted(fields.columns))


@settings(max_examples=150, deadline=None)
@given(st.lists(OBJECTS, max_size=12))
def test_extracted_fields_equal_the_decode(objects: list[dict[str, Any]]) -> None:
    repeated = objects + objects[::2]  # each distinct text is extracted once, then joined back
    texts = pl.Series([orjson.dumps(o).decode() for o in repeated], dtype=pl.String)
    got = flatten.extracted_fields(texts, limit=1_000)
    assert got is not None
    expected = _decoded(texts)
    assert got.columns == expected.columns
    assert got.equals(expected)


def test_the_empty_key_keeps_its_name() -> None:
    # A frame built from a list of Series names the Series "" column_N (N: its position).
    texts = pl.Series(['{"b":"s1","":"s2"}', '{"":null}'])
    assert flatten.decode_fields(texts).columns == ["b", ""]
    extracted = flatten.extracted_fields(texts, limit=5)
    assert extracted is not None
    assert extracted.columns == ["", "b"]
    assert extracted.get_column("").to_list() == ["s2", None]


def test_more_keys_than_the_cap_give_none() -> None:
    texts = pl.Series(['{"a":"s1","b":null}', '{"c":"s2"}'])
    assert flatten.extracted_fields(texts, limit=2) is None
    assert flatten.extracted_fields(texts, limit=3) is not None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(OBJECTS, OBJECTS), min_size=1, max_size=10), st.integers(1, 8))
def test_part_columns_equal_the_reference(pairs: list[Any], limit: int) -> None:
    events = pl.DataFrame(
        {
            "properties": [orjson.dumps(p).decode() for p, _ in pairs],
            "context": [orjson.dumps(c).decode() for _, c in pairs],
        }
    )
    part = flatten.part_columns(events, limit=limit)
    reference = flatten.add_flat_columns(events, limit=1_000).drop("properties", "context")
    if part.over:
        width = {prefix: 0 for prefix in flatten.PREFIXES.values()}
        for name in reference.columns:
            width[name[:2]] += 1
        assert max(width.values()) > limit
        return
    assert [column.name for column in part.columns] == reference.columns
    for column, expected in zip(part.columns, reference.iter_columns(), strict=True):
        assert column.equals(expected)
    assert part.counts == {c.name: c.len() - c.null_count() for c in reference.iter_columns()}
