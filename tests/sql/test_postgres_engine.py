"""`compute --engine postgres` on a real PostgreSQL server: the Polars engine's tables, exactly.

One server for the module (tests/support/postgres.py starts it); random definitions (the
hypothesis scenarios), the demo space, Segment's warehouse schema inside the server with bad
rows, and the output tables written into a schema of it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from polars.testing import assert_frame_equal

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import compute
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql.postgres_compute import compute_postgres
from tests.agreement import Scenario, write_scenario
from tests.reference.strategies import scenario
from tests.sql.test_equivalence import assert_same_tables
from tests.sql.test_warehouse import TABLES
from tests.support.postgres import PostgresServer, postgres_available, running_postgres

pytestmark = pytest.mark.skipif(not postgres_available(), reason="PostgreSQL not installed")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    with running_postgres() as running:
        yield running


@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=scenario(max_messages=60))
def test_random_definitions_agree_with_polars(server: PostgresServer, case: tuple) -> None:  # type: ignore[type-arg]
    files, space, traits, audiences, as_of = case
    with tempfile.TemporaryDirectory() as tmp:
        events, defs = write_scenario(Scenario(files, space, traits, audiences, as_of), Path(tmp))
        definitions, compiled = load_space_ir(str(defs), as_of)
        ingested = ingest(events, definitions.space, workers=1)
    args = (ingested.events, ingested.trait_updates, definitions.space, compiled, as_of)
    assert_same_tables(compute(*args), compute_postgres(*args, dsn=server.dsn))


@pytest.mark.parametrize("space", ["demo", "sqltest"])
def test_demo_events_agree_with_polars(server: PostgresServer, space: str,
                                       tmp_path: Path) -> None:  # fmt: skip
    folder = ROOT / "definitions" if space == "demo" else Path(__file__).parent / "space"
    generate(tmp_path / "events", events=4000, seed=3, gzip=False, workers=1)
    definitions, compiled = load_space_ir(str(folder), DEFAULT_AS_OF)
    ingested = ingest(tmp_path / "events", definitions.space, workers=1)
    args = (ingested.events, ingested.trait_updates, definitions.space, compiled, DEFAULT_AS_OF)
    got = compute_postgres(*args, dsn=server.dsn)
    assert_same_tables(compute(*args), got)
    assert got.memberships.height > 0
    assert got.stats["identity_sql_rounds"] >= 1


def _load_segment_schema(dsn: str, schema: str) -> None:
    """Segment's tables (tests/sql/test_warehouse.py) plus bad rows: a track without an event,
    a group without a groupId, a call without any identifier."""
    import psycopg

    bad = {
        "tracks": "('t4', 'anon-2', NULL, '2026-01-03 09:00:00', NULL, NULL, NULL)",
        "groups": "('g2', NULL, 'u1', '2026-01-03 11:00:00', NULL, 'x')",
        "identifies": "('i2', NULL, NULL, '2026-01-03 10:00:00', NULL, NULL, 'free', 1)",
    }
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
        for table, (columns, rows) in TABLES.items():
            con.execute(f"CREATE TABLE {schema}.{table} ({columns})")  # type: ignore[arg-type]
            for row in [*rows, *([bad[table]] if table in bad else [])]:
                con.execute(f"INSERT INTO {schema}.{table} VALUES {row}")  # type: ignore[arg-type]


def _definitions(root: Path) -> Path:
    folder = root / "definitions"
    (folder / "audiences").mkdir(parents=True)
    (folder / "space.yaml").write_text("space: w\n")
    (folder / "audiences" / "buyers.yaml").write_text(
        "key: buyers\nname: Buyers\ninclude_anonymous: true\n"
        'condition: {event: Order Completed, where: "revenue > 40"}\n'
    )
    (folder / "audiences" / "pros.yaml").write_text(
        "key: pros\nname: Pros\ncondition: {traits: \"plan = 'pro'\"}\n"
    )
    return folder


def _pg_table(dsn: str, name: str) -> pl.DataFrame:
    import psycopg

    from audience_pipeline.sql.postgres_tables import fetch

    with psycopg.connect(dsn) as con, con.cursor() as cur:
        return fetch(cur, f"SELECT * FROM out_tables.{name}")  # noqa: S608


def test_cli_computes_inside_postgres_from_segment_tables(server: PostgresServer,
                                                          tmp_path: Path) -> None:  # fmt: skip
    from audience_pipeline.cli import main

    _load_segment_schema(server.dsn, "segment")
    definitions = _definitions(tmp_path)
    runs = {}
    for engine in ("polars", "postgres"):
        out = tmp_path / engine
        code = main(["compute", "--engine", engine, "--dsn", server.dsn, "--events-schema",
                     "segment", "--definitions", str(definitions), "--out", str(out),
                     "--out-schema", "out_tables", "--as-of", "2026-02-01T00:00:00Z"])  # fmt: skip
        assert code == 0
        runs[engine] = {p.stem: pl.read_parquet(p) for p in out.glob("*.parquet")}
    polars_run, pg_run = runs["polars"], runs["postgres"]
    # Bad rows are quarantined by the same rules, as the same rows.
    assert polars_run["quarantine"].height == 4
    assert_frame_equal(pg_run["quarantine"], polars_run["quarantine"])
    for name in ("identities", "user_traits", "account_traits", "memberships",
                 "membership_changes", "membership_history"):  # fmt: skip
        assert_frame_equal(pg_run[name], polars_run[name], check_column_order=False)
    # The same tables, queryable in place in the server.
    for name in ("memberships", "quarantine", "user_traits", "membership_history"):
        in_db = _pg_table(server.dsn, name)
        assert_frame_equal(in_db.sort(in_db.columns), pg_run[name].sort(in_db.columns),
                           check_dtypes=False)  # fmt: skip
    assert set(pg_run["memberships"]["audience_key"]) == {"buyers", "pros"}


def test_cli_reports_a_bad_dsn_in_one_line(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from audience_pipeline.cli import main

    generate(tmp_path / "events", events=50, seed=1, gzip=False, workers=1)
    code = main(["-q", "compute", "--engine", "postgres", "--dsn", "postgresql://nobody@127.0.0.1:1/x",
                 "--events", str(tmp_path / "events"), "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: --dsn: cannot connect to PostgreSQL") and err.count("\n") == 1
