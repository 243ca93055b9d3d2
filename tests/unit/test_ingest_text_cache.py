"""The per-line normalizer's cache of flat-tagged texts never changes a text."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audience_pipeline.ingest import normalize
from audience_pipeline.ingest.normalize import Columns, Normalizer
from audience_pipeline.spec.models import SpaceConfig

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0, 0.0, -0.0, 1, 1.0, True, False, "1", "true", "", "é", "\\", '"']),
    st.text(max_size=5),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)
OBJECTS = st.dictionaries(st.sampled_from(["a", "b", "a.b", ""]), VALUES, max_size=3)


def _texts(messages: list[dict[str, Any]], cache: bool) -> list[tuple[str, str]]:
    normalizer = Normalizer(SpaceConfig())
    normalizer.cache_texts = cache
    cols = Columns()
    for seq, message in enumerate(messages):
        normalizer.add(message, seq, seq + 1, cols)
    return [(row[8], row[9]) for row in cols.rows]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(OBJECTS, OBJECTS), max_size=12))
def test_cached_texts_equal_fresh_ones(pairs: list[Any]) -> None:
    # Parsed by orjson, as the JSON-lines readers parse them (integers beyond 64 bits become
    # doubles there); every object twice: the second is a hit.
    messages = [orjson.loads(_line(p, c)) for p, c in pairs + pairs]
    assert _texts(messages, cache=True) == _texts(messages, cache=False)


def _line(properties: dict[str, Any], context: dict[str, Any]) -> str:
    message = {"type": "track", "event": "E", "userId": "u", "timestamp": "2026-01-01T00:00:00Z",
               "properties": properties, "context": context}  # fmt: skip
    return json.dumps(message)


def test_a_full_cache_starts_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(normalize, "_MAX_CACHED_TEXTS", 2)
    messages = [orjson.loads(_line({"k": i % 3}, {})) for i in range(7)]
    assert _texts(messages, cache=True) == _texts(messages, cache=False)
