"""The DuckDB engine reading the normalized Parquet itself (a run's `_normalized/`) computes what
the Polars engine computes from the frames, under a small memory limit that makes it spill."""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import compute
from audience_pipeline.engines import engine_compute
from audience_pipeline.ingest import ingest_to_parquet, read_normalized
from audience_pipeline.limits import parse_size
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql.compute import compute_duckdb_normalized, spilling_connection
from tests.agreement import Scenario, write_scenario
from tests.reference.strategies import scenario
from tests.sql.test_equivalence import assert_same_tables

SQL_SPACE = Path(__file__).parent / "space"


@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
@given(scenario(max_messages=60))
def test_random_definitions_agree_from_parquet(case: tuple) -> None:  # type: ignore[type-arg]
    files, space, traits, audiences, as_of = case
    with tempfile.TemporaryDirectory() as tmp:
        events, defs = write_scenario(Scenario(files, space, traits, audiences, as_of), Path(tmp))
        definitions, compiled = load_space_ir(str(defs), as_of)
        folder = Path(tmp) / "_normalized"
        ingest_to_parquet(events, definitions.space, folder)
        ingested = read_normalized(folder)
        expected = compute(ingested.events, ingested.trait_updates, definitions.space, compiled,
                           as_of)  # fmt: skip
        got = compute_duckdb_normalized(folder, definitions.space, compiled, as_of)
    assert_same_tables(expected, got)


@pytest.fixture(scope="module")
def normalized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    events = tmp_path_factory.mktemp("events")
    generate(events, events=4000, seed=5, gzip=False, workers=1)
    folder = tmp_path_factory.mktemp("run") / "_normalized"
    definitions, _ = load_space_ir(str(SQL_SPACE), DEFAULT_AS_OF)
    ingest_to_parquet(events, definitions.space, folder)
    return folder


@pytest.mark.parametrize("days_back", [0, 30])
def test_engine_entry_reads_the_parquet_under_a_small_limit(normalized: Path,
                                                           days_back: int) -> None:  # fmt: skip
    """Through `engines.engine_compute` (as `compute --engine duckdb` calls it), with a limit so
    small that DuckDB must spill; an earlier as-of cuts the messages the same way."""
    as_of = DEFAULT_AS_OF - timedelta(days=days_back)
    definitions, compiled = load_space_ir(str(SQL_SPACE), as_of)
    ingested = read_normalized(normalized)
    args = (ingested.events, ingested.trait_updates, definitions.space, compiled, as_of)
    fn = engine_compute("duckdb", normalized=normalized, memory_limit="200MiB")
    got = fn(*args)
    assert_same_tables(compute(*args), got)
    assert (
        got.stats["messages"]
        == ingested.events.filter(ingested.events["timestamp"] <= as_of).height
    )


def test_without_parquet_the_entry_computes_from_the_frames(tmp_path: Path,
                                                            normalized: Path) -> None:  # fmt: skip
    definitions, compiled = load_space_ir(str(SQL_SPACE), DEFAULT_AS_OF)
    ingested = read_normalized(normalized)
    args = (ingested.events, ingested.trait_updates, definitions.space, compiled, DEFAULT_AS_OF)
    fn = engine_compute("duckdb", normalized=tmp_path / "missing", memory_limit="256MiB")
    assert_same_tables(compute(*args), fn(*args))


def test_the_spilling_connection_has_its_limit_and_removes_its_folder() -> None:
    with spilling_connection("300MiB") as con:
        row = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
        assert row is not None
        limit, spill = row
        assert Path(spill).is_dir()
    assert abs(parse_size(limit.replace(" ", "")) - parse_size("300MiB")) < parse_size("1MiB")
    assert not Path(spill).exists()
    assert isinstance(con, duckdb.DuckDBPyConnection)
