"""The DuckDB engine's identity (graph input built in SQL, `sql.identity_graph`) against SPEC's
rule applied one message at a time (`identity.resolve_sequential`)."""

from __future__ import annotations

from dataclasses import replace

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_pipeline.identity import IdentityResult, resolve_sequential
from audience_pipeline.identity.prepare import prepare
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sql.identity import (
    identity_result,
    message_profiles_frame,
    resolve_identities_sql,
)
from tests.unit.test_identity import SCHEMA, SPACE, frame, message_sets, msg
from tests.unit.test_identity_encode import scattered


def sql_identity(messages: pl.DataFrame, space: SpaceConfig) -> IdentityResult:
    con = duckdb.connect()
    try:
        con.register("_id_input", messages.to_arrow())
        stats = resolve_identities_sql(con, space)
        assert stats["messages"] == messages.height
        assert not [t for (t,) in con.sql("SHOW TABLES").fetchall() if t.startswith("_id_")
                    and t != "_id_input"]  # fmt: skip
        result = identity_result(con, stats)
        return replace(result, message_profiles=message_profiles_frame(con))
    finally:
        con.close()


def assert_rule(messages: pl.DataFrame, space: SpaceConfig) -> IdentityResult:
    got = sql_identity(messages, space)
    expected = resolve_sequential(messages, space)
    assert got.message_profiles.equals(expected.message_profiles)
    assert got.identities.equals(expected.identities)
    assert got.stats["profiles"] == expected.stats["profiles"]
    return got


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message_sets())
def test_sql_identity_is_the_rule(case: tuple[pl.DataFrame, SpaceConfig]) -> None:
    assert_rule(*case)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scattered())
def test_scattered_seqs(case: tuple[pl.DataFrame, SpaceConfig]) -> None:
    assert_rule(*case)


# Values whose byte order differs from a case-folded or locale order: the first identifier of a
# message (its smallest node) must be the one Polars' byte order gives.
ODD_VALUES = ("b", "B", "a", "é", "Z", "aa", "ä", "_", "10", "9")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message_sets(), st.lists(st.sampled_from(ODD_VALUES), min_size=5, max_size=5, unique=True))
def test_values_order_as_bytes(case: tuple[pl.DataFrame, SpaceConfig], names: list[str]) -> None:
    messages, space = case
    rename = dict(zip("abcde", names, strict=True))
    ids = pl.col("ids").list.eval(
        pl.struct(
            pl.element().struct.field("id_type"),
            pl.element().struct.field("id_value").replace_strict(rename),
        )
    )
    renamed = messages.with_columns(ids, pl.col("previous_id").replace_strict(rename, default=None))
    assert_rule(renamed, space)


def test_message_ids_order_ties_with_missing_ones_last() -> None:
    rows = [msg(0, user="u1", message_id=None), msg(0, user="u2", anon="d", message_id="m2"),
            msg(0, anon="d", email="e", message_id="m1"), msg(1, previous="u1", anon="d")]  # fmt: skip
    assert_rule(frame(rows), SPACE)


def test_empty_input() -> None:
    result = sql_identity(pl.DataFrame(schema=SCHEMA), SPACE)
    assert result.message_profiles.height == 0
    assert result.identities.height == 0
    assert result.stats["profiles"] == 0


def _error(call: object) -> str:
    with pytest.raises(ValueError) as caught:
        call()  # type: ignore[operator]
    return str(caught.value)


def test_errors_as_the_polars_preparation_gives_them() -> None:
    unknown = frame([msg(0, user="u1"), {**msg(1, user="u2"), "ids": [
        {"id_type": "phone", "id_value": "1"}, {"id_type": "fax", "id_value": "2"}]}])  # fmt: skip
    assert _error(lambda: sql_identity(unknown, SPACE)) == _error(lambda: prepare(unknown, SPACE))
    assert "['fax', 'phone']" in _error(lambda: sql_identity(unknown, SPACE))
    bare = frame([msg(0, user="u1"), {**msg(1, user="u2"), "ids": []}])
    assert _error(lambda: sql_identity(bare, SPACE)) == _error(lambda: prepare(bare, SPACE))
