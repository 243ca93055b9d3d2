"""Steps grouping a table by entity, run one entity-hash bucket at a time (`sql.buckets`): the
same tables as the Polars engine, and only steps that read no other entity's rows are split."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import pytest
import sqlglot
from hypothesis import HealthCheck, given, settings

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import compute
from audience_pipeline.ingest import ingest_to_parquet, read_normalized
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql import buckets
from audience_pipeline.sql.buckets import bucket_count, split_source
from audience_pipeline.sql.compute import compute_duckdb_normalized
from tests.agreement import Scenario, write_scenario
from tests.reference.strategies import scenario
from tests.sql.test_equivalence import assert_same_tables

SQL_SPACE = Path(__file__).parent / "space"


def _split(text: str) -> str | None:
    return split_source(sqlglot.parse_one(text, read="duckdb"))


def test_only_a_plain_group_by_entity_over_one_table_is_split() -> None:
    assert _split("SELECT entity_id, SUM(x) AS s FROM t AS e GROUP BY entity_id") == "t"
    assert _split("SELECT entity_id, COUNT(DISTINCT x) FROM t WHERE y GROUP BY entity_id") == "t"
    never = [
        "SELECT entity_id, SUM(x) FROM t GROUP BY other",  # groups are not entities
        "SELECT entity_id, x FROM t",  # no group
        "SELECT a.entity_id, SUM(x) FROM t a JOIN u b ON a.k = b.k GROUP BY a.entity_id",
        "SELECT entity_id, SUM(x) FROM (SELECT * FROM t) s GROUP BY entity_id",
        "SELECT entity_id, RANK() OVER (ORDER BY SUM(x)) FROM t GROUP BY entity_id",
        "SELECT entity_id, SUM(x) FROM t WHERE x > (SELECT AVG(x) FROM t) GROUP BY entity_id",
        "WITH c AS (SELECT * FROM t) SELECT entity_id, SUM(x) FROM c GROUP BY entity_id",
        "SELECT entity_id, SUM(x) FROM t GROUP BY entity_id ORDER BY 2 LIMIT 3",
    ]
    for text in never:
        assert _split(text) is None, text


def test_bucket_count_follows_the_rows_and_the_limit() -> None:
    per_gib = 2**30 // buckets.BYTES_PER_ROW
    assert bucket_count(0, 2**30) == 1
    assert bucket_count(per_gib, 2**30) == 1
    assert bucket_count(per_gib + 1, 2**30) == 2
    assert bucket_count(3 * per_gib, 2**30) == 3
    assert bucket_count(3 * per_gib, 3 * 2**30) == 1


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=scenario(max_messages=60))
def test_random_definitions_agree_in_buckets(case: tuple, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[type-arg]
    """A few rows per bucket: every grouped step of random definitions runs in many buckets."""
    monkeypatch.setattr(buckets, "BYTES_PER_ROW", 2**30 // 8)
    files, space, traits, audiences, as_of = case
    with tempfile.TemporaryDirectory() as tmp:
        events, defs = write_scenario(Scenario(files, space, traits, audiences, as_of), Path(tmp))
        definitions, compiled = load_space_ir(str(defs), as_of)
        folder = Path(tmp) / "_normalized"
        ingest_to_parquet(events, definitions.space, folder)
        ingested = read_normalized(folder)
        expected = compute(ingested.events, ingested.trait_updates, definitions.space, compiled,
                           as_of)  # fmt: skip
        got = compute_duckdb_normalized(folder, definitions.space, compiled, as_of,
                                        memory_limit="2GiB")  # fmt: skip
    assert_same_tables(expected, got)


def test_generated_events_agree_in_buckets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    events = tmp_path / "events"
    generate(events, events=4000, seed=11, gzip=False, workers=1)
    definitions, compiled = load_space_ir(str(SQL_SPACE), DEFAULT_AS_OF)
    folder = tmp_path / "_normalized"
    ingest_to_parquet(events, definitions.space, folder)
    ingested = read_normalized(folder)
    args = (ingested.events, ingested.trait_updates, definitions.space, compiled, DEFAULT_AS_OF)
    monkeypatch.setattr(buckets, "BYTES_PER_ROW", 2**30 // 500)  # about 500 rows a bucket
    with caplog.at_level(logging.DEBUG, logger="audience_pipeline.sql.compute"):
        got = compute_duckdb_normalized(folder, *args[2:], memory_limit="2GiB")
    assert_same_tables(compute(*args), got)
    split = [r.getMessage() for r in caplog.records if "bucket(s)" in r.getMessage()]
    assert split and all(not m.endswith(" 1 bucket(s)") for m in split), split
