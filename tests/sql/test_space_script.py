"""`compile --all`: the whole-space script from Segment's warehouse tables gives the demo's tables.

The demo generator's events are loaded as Segment's tables (tests/support/segment_tables.py);
the expected tables are the Polars engine's on the same tables (read by `read_segment_warehouse`).
The Snowflake and BigQuery scripts are read back statement by statement with sqlglot and run in
DuckDB (transpiled; loops run by the reader); the PostgreSQL script runs as one script in a real
server; the DuckDB script runs as one script in DuckDB.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline.compile_sql import compile_script
from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import ComputeResult, compute
from audience_pipeline.ingest.segment_warehouse import read_segment_warehouse
from audience_pipeline.membership.diff import membership_changes, membership_history
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql.script.catalog import Catalog, catalog_from_database, kind_of
from audience_pipeline.sql.script.program import iter_statements, read_script, run_on_duckdb
from tests.support.postgres import postgres_available, running_postgres
from tests.support.segment_tables import segment_frames

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "definitions"
SQLTEST = Path(__file__).parent / "space"
TABLES = ("identities", "user_traits", "account_traits", "memberships",
          "account_user_memberships")  # fmt: skip


@dataclass
class Warehouse:
    frames: dict[str, pl.DataFrame]
    catalog: Catalog
    expected: dict[str, ComputeResult]
    quarantine: pl.DataFrame

    def duckdb(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect()
        con.execute("CREATE SCHEMA segment")
        for name, frame in self.frames.items():
            con.register("_rows", frame.to_arrow())
            con.execute(f'CREATE TABLE segment."{name}" AS SELECT * FROM _rows')  # noqa: S608
            con.unregister("_rows")
        return con


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Warehouse:
    folder = tmp_path_factory.mktemp("events")
    generate(folder, events=3000, seed=11, gzip=False, workers=1)
    frames = segment_frames(folder)
    probe = Warehouse(frames, Catalog("segment", {}), {}, pl.DataFrame())
    con = probe.duckdb()
    catalog = catalog_from_database(con, "segment")
    expected = {}
    quarantine = pl.DataFrame()
    for name, space in (("demo", DEMO), ("sqltest", SQLTEST)):
        definitions, compiled = load_space_ir(str(space), DEFAULT_AS_OF)
        ingested = read_segment_warehouse(con, "segment", space=definitions.space)
        expected[name] = compute(ingested.events, ingested.trait_updates, definitions.space,
                                 compiled, DEFAULT_AS_OF)  # fmt: skip
        quarantine = ingested.quarantine
    con.close()
    return Warehouse(frames, catalog, expected, quarantine)


def _assert_tables(expected: ComputeResult, read: object) -> None:
    """`read(name)`: the script's output table as a Polars frame."""
    for name, want in expected.tables().items():
        got: pl.DataFrame = read(name)  # type: ignore[operator]
        assert sorted(got.columns) == sorted(want.columns), name
        keys = want.columns[:3]
        assert_frame_equal(got.select(want.columns).sort(keys), want.sort(keys),
                           check_dtypes=False, check_exact=False, rel_tol=1e-9)  # fmt: skip


def _quarantine_rows(frame: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(frame.select("source", "line", "reason").iter_rows())


@pytest.mark.parametrize("dialect", ["snowflake", "bigquery"])
def test_warehouse_scripts_parse_back_and_give_the_demo_tables(warehouse: Warehouse,
                                                               dialect: str) -> None:  # fmt: skip
    text = compile_script(DEMO, dialect, warehouse.catalog, as_of=DEFAULT_AS_OF, out_schema="out")
    read = read_script(text, dialect)  # every statement parses in the dialect, loops included
    assert sum(1 for _ in iter_statements(read)) > 40
    con = warehouse.duckdb()
    run_on_duckdb(con, read)
    _assert_tables(warehouse.expected["demo"], lambda n: con.sql(f"SELECT * FROM out.{n}").pl())
    got = con.sql("SELECT * FROM out.quarantine").pl()
    assert _quarantine_rows(got) == _quarantine_rows(warehouse.quarantine)
    assert got.height > 0
    # A first run: every member entered, every stay is open.
    changes = con.sql("SELECT change, count(*) FROM out.membership_changes GROUP BY 1").fetchall()
    members = warehouse.expected["demo"].memberships.height
    assert changes == [("entered", members)]


def test_second_run_diffs_against_the_previous_tables(warehouse: Warehouse) -> None:
    """Run twice (as-of a day apart): changes and history equal the engine's diff."""
    con = warehouse.duckdb()
    first = compile_script(SQLTEST, "bigquery", warehouse.catalog, as_of=DEFAULT_AS_OF,
                           out_schema="out")  # fmt: skip
    later = DEFAULT_AS_OF + timedelta(days=20)
    second = compile_script(SQLTEST, "bigquery", warehouse.catalog, as_of=later,
                            out_schema="out")  # fmt: skip
    run_on_duckdb(con, read_script(first, "bigquery"))
    run_on_duckdb(con, read_script(second, "bigquery"))
    definitions, compiled = load_space_ir(str(SQLTEST), later)
    ingested = read_segment_warehouse(con, "segment", space=definitions.space)
    now = compute(ingested.events, ingested.trait_updates, definitions.space, compiled, later)
    before = warehouse.expected["sqltest"].memberships
    changes = membership_changes(before, now.memberships, later)
    history = membership_history(
        membership_history(None, membership_changes(None, before, DEFAULT_AS_OF), DEFAULT_AS_OF),
        changes, later,
    )  # fmt: skip
    assert changes.height > 0
    for name, want in (("membership_changes", changes), ("membership_history", history)):
        got = con.sql(f"SELECT * FROM out.{name}").pl().select(want.columns)  # noqa: S608
        keys = want.columns
        assert_frame_equal(got.sort(keys), want.sort(keys), check_dtypes=False)


def test_duckdb_script_runs_as_one_script(warehouse: Warehouse) -> None:
    con = warehouse.duckdb()
    text = compile_script(SQLTEST, "duckdb", warehouse.catalog, as_of=DEFAULT_AS_OF,
                          out_schema="out")  # fmt: skip
    con.execute(text)
    _assert_tables(warehouse.expected["sqltest"],
                   lambda n: con.sql(f"SELECT * FROM out.{n}").pl())  # fmt: skip


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL not installed")
def test_postgres_script_runs_in_a_real_server(warehouse: Warehouse) -> None:
    import psycopg

    from audience_pipeline.sql.postgres_tables import fetch, write_tables

    with running_postgres() as server:
        write_tables(server.dsn, "segment", warehouse.frames)
        catalog = catalog_from_database(server.dsn, "segment")
        text = compile_script(DEMO, "postgres", catalog, as_of=DEFAULT_AS_OF, out_schema="out")
        with psycopg.connect(server.dsn, autocommit=True) as con, con.cursor() as cur:
            cur.execute(text)  # type: ignore[arg-type]
            _assert_tables(warehouse.expected["demo"],
                           lambda n: fetch(cur, f"SELECT * FROM out.{n}"))  # fmt: skip


def test_spark_script_parses_back(warehouse: Warehouse) -> None:
    text = compile_script(DEMO, "spark", warehouse.catalog, as_of=DEFAULT_AS_OF)
    read = read_script(text, "spark")
    assert any(not hasattr(item, "sql") for item in read)  # the two identity loops


def test_column_kinds_follow_the_sql_types() -> None:
    assert [kind_of(t) for t in ("BIGINT", "NUMBER(38,0)", "FLOAT64", "BOOLEAN", "VARCHAR",
                                 "TIMESTAMP_NTZ", "DATE", "STRING", "JSON")] == [
        "n", "n", "n", "b", "s", "t", "d", "s", "s"]  # fmt: skip


def test_cli_compile_all_needs_the_columns(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    from audience_pipeline.cli import main

    assert main(["compile", "--all", "--dialect", "snowflake"]) == 2
    assert "--columns FILE" in capsys.readouterr().err
    columns = tmp_path / "columns.csv"
    columns.write_text("TABLE_NAME,COLUMN_NAME,DATA_TYPE\ntracks,id,VARCHAR\n"
                       "tracks,user_id,VARCHAR\ntracks,event_text,VARCHAR\n"
                       "tracks,timestamp,TIMESTAMP_NTZ\n")  # fmt: skip
    out = tmp_path / "space.sql"
    code = main(["compile", "--all", "--dialect", "bigquery", "--columns", str(columns),
                 "--definitions", str(SQLTEST), "--out", str(out)])  # fmt: skip
    assert code == 0
    read_script(out.read_text(), "bigquery")


def test_a_failed_check_stops_the_script() -> None:
    from sqlglot import exp

    from audience_pipeline.sql.script.program import Check, Script, Statement

    script = Script("duckdb")
    script.add(Statement(exp.select("1")), Check(exp.select(exp.Literal.number(1)), "stuck"))
    with pytest.raises(duckdb.ConversionException, match="stuck"):
        duckdb.connect().execute(script.render())
