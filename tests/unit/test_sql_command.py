"""`audience-pipeline sql` is read-only and reaches the warehouse's tables only.

Each refusal is checked through the CLI (exit 1, one line on stderr, no traceback) and the
file system is checked afterwards; the DuckDB guards are also checked on their own, without
the sqlglot check in front, since each guard must hold by itself.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from audience_pipeline.cli import main
from audience_pipeline.query import QueryOptions, connect, run_query, warehouse_tables

FIXTURE = Path(__file__).parents[1] / "fixtures" / "smoke"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wh") / "warehouse"
    code = main([
        "compute", "--definitions", str(FIXTURE / "definitions"),
        "--events", str(FIXTURE / "events.jsonl"), "--as-of", "2026-01-10T00:00:00Z",
        "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    return out


def refusals(target: Path, warehouse: Path) -> list[str]:
    table = warehouse / "memberships.parquet"
    return [
        f"COPY memberships TO '{target}'",
        f"COPY (SELECT 1 AS x) TO '{table}' (FORMAT parquet)",
        f"ATTACH '{target}.db' AS other",
        "INSTALL httpfs",
        "LOAD httpfs",
        "PRAGMA database_list",
        "SET enable_external_access = true",
        "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
        "SELECT * FROM glob('/root/*')",
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT getenv('HOME') AS h",
        "SELECT current_setting('home_directory') AS h",
        f"SELECT * FROM read_parquet('{table}')",
        f"SELECT * FROM '{table}'",
        "CREATE TABLE t AS SELECT 1 AS x",
        "DROP VIEW memberships",
        "SELECT * FROM main.memberships",
        "SELECT 1 AS a; SELECT 2 AS b",
        "SELECT * FROM memberships WHERE",
        "SELECT no_such_column FROM memberships",
    ]


def test_each_refusal_is_one_line_and_changes_nothing(
    warehouse: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "stolen.csv"
    before = {p.name: p.stat().st_mtime_ns for p in warehouse.iterdir()}
    members = pl.read_parquet(warehouse / "memberships.parquet")
    for sql in refusals(target, warehouse):
        assert main(["sql", sql, "--warehouse", str(warehouse)]) == 2, sql
        captured = capsys.readouterr()
        assert captured.out == "", sql
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: sql: "), (sql, captured.err)
        assert "Traceback" not in captured.err and "sqlglot" not in captured.err
        assert "Error(" not in captured.err and "Exception" not in captured.err
    assert not list(tmp_path.iterdir())
    assert {p.name: p.stat().st_mtime_ns for p in warehouse.iterdir()} == before
    assert pl.read_parquet(warehouse / "memberships.parquet").equals(members)


def test_duckdb_guards_hold_without_the_statement_check(warehouse: Path, tmp_path: Path) -> None:
    con = connect(warehouse_tables(warehouse))
    try:
        assert con.sql("SELECT count(*) FROM memberships").fetchall()[0][0] > 0
        for sql in [
            "SELECT * FROM read_csv('/etc/passwd', sep = ':')",
            "SELECT * FROM glob('/root/*')",
            f"COPY memberships TO '{tmp_path / 'x.csv'}'",
            f"COPY (SELECT 1 AS x) TO '{warehouse / 'memberships.parquet'}' (FORMAT parquet)",
            f"ATTACH '{tmp_path / 'x.db'}'",
            "INSTALL httpfs",
            "LOAD httpfs",
            "SET enable_external_access = true",
            "SET allowed_directories = ['/']",
            "SET lock_configuration = false",
        ]:
            with pytest.raises(duckdb.Error):
                con.execute(sql)
    finally:
        con.close()
    assert not list(tmp_path.iterdir())


def test_analysts_queries_still_work(warehouse: Path, capsys: pytest.CaptureFixture[str]) -> None:
    queries = {
        "join": "SELECT m.audience_key, i.id_type, count(*) AS n FROM memberships m "
        "JOIN identities i ON i.profile_id = m.entity_id GROUP BY ALL ORDER BY ALL",
        "cte": "WITH sizes AS (SELECT audience_key, count(*) AS n FROM memberships GROUP BY 1) "
        "SELECT max(n) AS biggest FROM sizes",
        "union": "SELECT entity_id FROM memberships UNION SELECT profile_id FROM user_traits",
        "window": "SELECT audience_key, row_number() OVER (PARTITION BY audience_key) AS r "
        "FROM memberships",
        "unnest": "SELECT unnest([1, 2, 3]) AS x",
    }
    for name, sql in queries.items():
        frame = run_query(QueryOptions(sql, warehouse))
        assert frame.height > 0, name
    expected = pl.read_parquet(warehouse / "memberships.parquet").height
    frame = run_query(QueryOptions("SELECT count(*) AS n FROM memberships", warehouse))
    assert frame["n"][0] == expected
    assert main(["sql", "SELECT count(*) AS n FROM quarantine", "--warehouse", str(warehouse)]) == 0
    assert "│ 1   │" in capsys.readouterr().out  # the one quarantined line of the fixture


def test_unsafe_opts_out(warehouse: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(warehouse, copy)
    target = tmp_path / "members.csv"
    sql = f"COPY memberships TO '{target}'"
    assert main(["sql", sql, "--warehouse", str(copy), "--unsafe"]) == 0
    assert target.exists()


def test_a_missing_warehouse_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sql", "SELECT 1", "--warehouse", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: sql: no warehouse folder at {tmp_path / 'nope'} (--warehouse)"
    )
