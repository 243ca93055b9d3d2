"""identity.encode: the identity input read as integers, against the string-based answers."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_pipeline.identity import resolve_identities, resolve_sequential
from audience_pipeline.identity.encode import encode
from audience_pipeline.identity.prepare import processing_rank
from audience_pipeline.spec.models import SpaceConfig
from tests.unit.test_identity import SCHEMA, T0, message_sets

SPACE = SpaceConfig()


@st.composite
def scattered(draw: st.DrawFn) -> tuple[pl.DataFrame, SpaceConfig]:
    """`message_sets` with seqs far apart (some negative) and rows out of seq order: the
    encoder's search path instead of its dense seq array."""
    messages, space = draw(message_sets())
    gaps = draw(st.lists(st.integers(1, 10**12), min_size=messages.height,
                         max_size=messages.height))  # fmt: skip
    start = draw(st.integers(-(10**12), 0))
    seqs = [start + sum(gaps[: i + 1]) for i in range(messages.height)]
    order = draw(st.permutations(range(messages.height)))
    return messages.with_columns(seq=pl.Series(seqs)).select(pl.all().gather(order)), space


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scattered())
def test_scattered_seqs_resolve_as_the_rule_does(case: tuple[pl.DataFrame, SpaceConfig]) -> None:
    messages, space = case
    fast = resolve_identities(messages.lazy(), space)
    slow = resolve_sequential(messages, space)
    assert fast.message_profiles.equals(slow.message_profiles)
    assert fast.identities.equals(slow.identities)
    coded = encode(messages.lazy(), space)
    expected = messages.with_columns(rank=processing_rank(messages)).sort("seq")
    assert coded.messages.equals(expected.select("seq", "rank"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message_sets())
def test_codes_decode_to_the_identifiers(case: tuple[pl.DataFrame, SpaceConfig]) -> None:
    messages, space = case
    coded = encode(messages.lazy(), space)
    assert coded.values.is_sorted() and coded.values.n_unique() == coded.values.len()
    types = {spec.type: rank for rank, spec in enumerate(sorted(space.identifiers,
                                                                key=lambda s: s.priority))}  # fmt: skip
    rank_of_seq = dict(zip(coded.messages["seq"], coded.messages["rank"], strict=True))
    expected = sorted(
        (rank_of_seq[row["seq"]], types[d["id_type"]], d["id_value"])
        for row in messages.iter_rows(named=True)
        for d in row["ids"]
    )
    found = sorted((r, t, coded.values[v]) for r, t, v in coded.occurrences.iter_rows())
    assert found == expected


def test_ties_read_message_ids_only_where_timestamps_are_shared() -> None:
    # Two messages share a timestamp (ordered by messageId, nulls last, then seq); one does not.
    rows = [
        {"seq": 0, "message_id": None, "type": "track", "timestamp": T0,
         "ids": [{"id_type": "anonymous_id", "id_value": "a"}], "previous_id": None},
        {"seq": 1, "message_id": "z", "type": "track", "timestamp": T0,
         "ids": [{"id_type": "anonymous_id", "id_value": "b"}], "previous_id": None},
        {"seq": 2, "message_id": "a", "type": "track", "timestamp": T0 - timedelta(seconds=1),
         "ids": [{"id_type": "anonymous_id", "id_value": "c"}], "previous_id": None},
    ]  # fmt: skip
    messages = pl.DataFrame(rows, schema=SCHEMA)
    assert encode(messages.lazy(), SPACE).messages["rank"].to_list() == [2, 1, 0]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message_sets())
def test_first_identifiers_found_a_range_of_messages_at_a_time(
    case: tuple[pl.DataFrame, SpaceConfig],
) -> None:
    # Past FIRSTS_ROWS messages the group-by of each message's first identifier runs over
    # ranges of ranks; a tiny range here takes that path on small inputs.
    from audience_pipeline.identity import prepare

    messages, space = case
    saved = prepare.FIRSTS_ROWS
    prepare.FIRSTS_ROWS = 2
    try:
        fast = resolve_identities(messages.lazy(), space)
    finally:
        prepare.FIRSTS_ROWS = saved
    slow = resolve_sequential(messages, space)
    assert fast.message_profiles.equals(slow.message_profiles)
    assert fast.identities.equals(slow.identities)
