"""Random definitions and events on both engines: identical memberships, traits and identities."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import ComputeResult, compute
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql import compute_duckdb
from tests.agreement import Scenario, write_scenario
from tests.reference.strategies import scenario

SQL_SPACE = Path(__file__).parent / "space"


def _both(sc: Scenario, root: Path) -> tuple[ComputeResult, ComputeResult]:
    events, defs = write_scenario(sc, root)
    definitions, space = load_space_ir(str(defs), sc.as_of)
    ingested = ingest(events, definitions.space, workers=1)
    args = (ingested.events, ingested.trait_updates, definitions.space, space, sc.as_of)
    return compute(*args), compute_duckdb(*args)


def assert_same_tables(polars_result: ComputeResult, duckdb_result: ComputeResult) -> None:
    for name, expected in polars_result.tables().items():
        got = duckdb_result.tables()[name]
        assert_frame_equal(got, expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
    assert duckdb_result.json_columns == polars_result.json_columns
    assert_frame_equal(duckdb_result.message_profiles, polars_result.message_profiles)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario(max_messages=80))
def test_random_definitions_agree(case: tuple) -> None:  # type: ignore[type-arg]
    files, space, traits, audiences, as_of = case
    with tempfile.TemporaryDirectory() as tmp:
        expected, got = _both(Scenario(files, space, traits, audiences, as_of), Path(tmp))
    assert_same_tables(expected, got)


@pytest.fixture(scope="module")
def demo_events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("demo_events")
    generate(folder, events=4000, seed=3, gzip=False, workers=1)
    return folder


@pytest.mark.parametrize("space", ["sqltest", "demo"])
def test_generated_events_agree(space: str, demo_events: Path) -> None:
    """Demo-generator events on tests/sql/space (every trait kind, funnels, users:) and demo."""
    folder = (
        SQL_SPACE if space == "sqltest" else Path(__file__).resolve().parents[2] / "definitions"
    )
    if not (folder / "space.yaml").exists():
        pytest.skip(f"no space at {folder}")
    definitions, compiled = load_space_ir(str(folder), DEFAULT_AS_OF)
    ingested = ingest(demo_events, definitions.space, workers=1)
    args = (ingested.events, ingested.trait_updates, definitions.space, compiled, DEFAULT_AS_OF)
    expected, got = compute(*args), compute_duckdb(*args)
    assert_same_tables(expected, got)
    assert got.memberships.height > 0


def test_sql_identity_matches_polars_where_limits_bite() -> None:
    lines = []
    # Three user ids on one anonymous device: the user_id limit (1) bites, so that component
    # goes through the sequential rule; a second, plain component does not.
    for i, user in enumerate(["u1", "u2", "u3"]):
        lines.append(
            {"type": "identify", "messageId": f"m{i}", "userId": user, "anonymousId": "dev1",
             "timestamp": f"2026-01-0{i + 1}T00:00:00Z", "traits": {"plan": "pro"}}
        )  # fmt: skip
    lines.append({"type": "track", "event": "A", "messageId": "m9", "anonymousId": "dev2",
                  "timestamp": "2026-01-05T00:00:00Z"})  # fmt: skip
    text = "\n".join(orjson.dumps(line).decode() for line in lines)
    sc = Scenario({"e.jsonl": text}, {"space": "t", "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
    ]}, [], [{"key": "pros", "name": "p", "condition": {"traits": "plan = 'pro'"}}],
        datetime(2026, 2, 1, tzinfo=UTC))  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        expected, got = _both(sc, Path(tmp))
    assert_same_tables(expected, got)
    assert got.stats["identity_sequential_components"] == 1
    assert got.memberships.filter(pl.col("audience_key") == "pros").height == 3
