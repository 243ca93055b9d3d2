"""`KeyIndex` (api/tables.py) answers exactly what a dict of the same keys answers."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_pipeline.api.tables import KeyIndex

texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=6)


@settings(max_examples=60, deadline=None)
@given(st.sets(texts, max_size=300), st.lists(texts, max_size=30))
def test_lookups_equal_a_dict(keys: set[str], probes: list[str]) -> None:
    ordered = list(keys)
    index = KeyIndex.of(pl.Series(ordered, dtype=pl.String), pl.Series(range(len(ordered))))
    expected = {key: row for row, key in enumerate(ordered)}
    assert len(index) == len(expected)
    for key in [*ordered, *probes]:
        assert index.get(key) == expected.get(key), key
