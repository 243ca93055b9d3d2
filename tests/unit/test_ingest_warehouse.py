"""`--events-schema` streams: Segment's tables become message lines in SQL (a batch at a time),
byte for byte the lines of the reference path (whole tables, rows sorted in Python,
`to_message` per row: tests/support/segment_reference.py), on random tables with odd types,
nulls, duplicate ids, unicode, control characters, big and tiny numbers, in DuckDB and in a real
PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import decimal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_pipeline.ingest import ingest
from audience_pipeline.ingest.progress import Progress
from audience_pipeline.ingest.segment_warehouse import read_segment_warehouse, write_message_files
from audience_pipeline.spec.models import SpaceConfig
from tests.support import segment_reference
from tests.support.postgres import postgres_available, running_postgres

SCHEMA = "segment"
# DuckDB type -> PostgreSQL type of the same values.
TYPES = {"VARCHAR": "text", "BIGINT": "bigint", "DOUBLE": "double precision",
         "BOOLEAN": "boolean", "TIMESTAMP": "timestamp", "TIMESTAMPTZ": "timestamptz",
         "DATE": "date", "DECIMAL(18,4)": "numeric(18,4)", "INTEGER": "integer",
         "REAL": "real"}  # fmt: skip
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=6)
WORDS = st.sampled_from(["a", "b", "Order Completed", "Signed In", "é😀", "", "x\ny", "a\x0bb",
                         "back\\u000Bslash", '"q"'])  # fmt: skip
DOUBLES = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-5, 9.99e-6, 1e16, 1e16 - 2, 0.1, 2.5, 1e-7, 123.456]),
)
TIMES = st.datetimes(min_value=dt.datetime(900, 1, 1), max_value=dt.datetime(9999, 12, 31),
                     timezones=st.none())  # fmt: skip
VALUES = {
    "VARCHAR": st.one_of(TEXT, WORDS),
    "BIGINT": st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(-5, 5)),
    "INTEGER": st.integers(-(2**31), 2**31 - 1),
    "DOUBLE": DOUBLES,
    "REAL": st.sampled_from([0.1, 1.5, -2.0, 3.25e10]),
    "BOOLEAN": st.booleans(),
    "TIMESTAMP": st.one_of(TIMES, st.sampled_from([dt.datetime(2026, 1, 1, 10, 0, 0)])),
    "TIMESTAMPTZ": TIMES.map(lambda t: t.replace(tzinfo=dt.UTC)),
    "DATE": st.dates(min_value=dt.date(900, 1, 1)),
    "DECIMAL(18,4)": st.decimals(
        min_value=-(10**12), max_value=10**12, places=4, allow_nan=False, allow_infinity=False
    ),  # fmt: skip
}
COMMON = ["VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "TIMESTAMP", "DATE"]
CONTEXT = ["context_page_url", "context_page_path", "context_ip", "context_traits_email",
           "context_device_type", "context_page", "context_library_name", "context_locale"]  # fmt: skip
EXTRAS = ["plan", "revenue", "name", "seats", "title", "when", "score", "flag", "amount"]
EVENT_TABLES = ["order_completed", "signed_in"]


@st.composite
def _column_type(draw: st.DrawFn, odd: bool) -> str:
    if odd and draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["DECIMAL(18,4)", "TIMESTAMPTZ", "INTEGER", "REAL"]))
    return draw(st.sampled_from(COMMON))


@st.composite
def _table(draw: st.DrawFn, table: str) -> tuple[list[tuple[str, str]], list[tuple[Any, ...]]]:
    odd = draw(st.booleans())
    columns: list[tuple[str, str]] = [
        ("id", draw(st.sampled_from(["VARCHAR", "VARCHAR", "BIGINT"])))
    ]
    for column in ("user_id", "anonymous_id"):
        if draw(st.booleans()) or column == "user_id":
            columns.append((column, "VARCHAR"))
    columns.append(
        ("timestamp", draw(st.sampled_from(["TIMESTAMP", "TIMESTAMP", "TIMESTAMPTZ", "VARCHAR"])))
    )
    if draw(st.booleans()):
        columns.append(("received_at", "TIMESTAMP"))
    specific = {"groups": ["group_id"], "aliases": ["previous_id"], "tracks": ["event_text", "event"],
                "pages": ["name"], "screens": ["name"]}.get(table, ["event_text", "event"])  # fmt: skip
    columns += [(c, "VARCHAR") for c in specific if draw(st.integers(0, 4)) > 0]
    contexts = draw(st.lists(st.sampled_from(CONTEXT), unique=True, max_size=5))
    extras = draw(st.lists(st.sampled_from(EXTRAS), unique=True, max_size=4))
    if table == "tracks" and draw(st.integers(0, 3)) > 0:
        extras = []  # Segment's tracks table has no property columns, mostly
    for column in draw(st.permutations(contexts + extras)):
        kind = "VARCHAR" if column.startswith("context_") and draw(st.booleans()) else None
        columns.append((column, kind or draw(_column_type(odd))))
    seen: set[str] = set()
    columns = [c for c in columns if not (c[0] in seen or seen.add(c[0]))]  # type: ignore[func-returns-value]
    ids = st.sampled_from(["m1", "m2", "m3", "m4", "None"]) if columns[0][1] == "VARCHAR" \
        else st.integers(1, 4)  # fmt: skip
    rows = []
    for _ in range(draw(st.integers(0, 8))):
        row = []
        for column, kind in columns:
            if draw(st.integers(0, 3)) == 0:
                row.append(None)
            elif column == "id":
                row.append(draw(ids))
            elif column in ("event_text", "event"):
                row.append(draw(st.sampled_from(["Order Completed", "order_completed",
                                                 "Signed In", "", "Other"])))  # fmt: skip
            elif column == "timestamp" and kind == "VARCHAR":
                row.append(draw(st.sampled_from(["2026-01-01T00:00:00Z", "bad", "2025-12-31"])))
            else:
                row.append(draw(VALUES[kind]))
        rows.append(tuple(row))
    return columns, rows


@st.composite
def _warehouse(draw: st.DrawFn) -> dict[str, tuple[list[tuple[str, str]], list[tuple[Any, ...]]]]:
    calls = draw(st.lists(st.sampled_from(["identifies", "groups", "aliases", "tracks", "pages",
                                           "screens"]), unique=True, min_size=1))  # fmt: skip
    if "tracks" in calls:
        calls += draw(st.lists(st.sampled_from(EVENT_TABLES), unique=True))
    return {table: draw(_table(table)) for table in calls}


def _duckdb(tables: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"CREATE SCHEMA {SCHEMA}")
    for table, (columns, rows) in tables.items():
        definition = ", ".join(f'"{c}" {k}' for c, k in columns)
        con.execute(f'CREATE TABLE {SCHEMA}."{table}" ({definition})')
        if rows:
            marks = ", ".join("?" for _ in columns)
            con.executemany(f'INSERT INTO {SCHEMA}."{table}" VALUES ({marks})', rows)
    return con


def _files(write: Any, source: Any) -> tuple[dict[str, bytes] | None, str | None]:
    """Each message file's bytes (by name), or the error the writer raised."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            write(source, SCHEMA, Path(tmp))
        except Exception as exc:  # the reference fails on some values (e.g. 2^64 in orjson)
            return None, type(exc).__name__
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())}, None


def _assert_same_lines(source: Any) -> None:
    expected = _files(segment_reference.write_message_files, source)
    got = _files(write_message_files, source)
    if expected[0] is not None and got[0] is not None:
        assert set(got[0]) == set(expected[0])
        for name, text in expected[0].items():
            assert got[0][name].splitlines() == text.splitlines(), name
            assert got[0][name] == text, name
    assert got == expected


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(tables=_warehouse())
def test_duckdb_tables_give_the_reference_lines(tables: dict[str, Any]) -> None:
    _assert_same_lines(_duckdb(tables))


def test_a_database_file_gives_the_reference_lines(tmp_path: Path) -> None:
    tables = {
        "tracks": ([("id", "VARCHAR"), ("user_id", "VARCHAR"), ("timestamp", "TIMESTAMP"),
                    ("event_text", "VARCHAR"), ("event", "VARCHAR"),
                    ("context_page_url", "VARCHAR"), ("context_ip", "VARCHAR"),
                    ("context_page_title", "VARCHAR")],
                   [("m1", "u", dt.datetime(2026, 1, 2), "Order Completed", "order_completed",
                     None, "1.2.3.4", "T"), ("m2", "u", dt.datetime(2026, 1, 1), "Signed In",
                     "signed_in", "https://x", "\x01", None)]),
        "order_completed": ([("id", "VARCHAR"), ("timestamp", "TIMESTAMP"), ("revenue", "DOUBLE"),
                             ("coupon", "DECIMAL(18,4)")],
                            [("m1", dt.datetime(2026, 1, 2), 1e-7, decimal.Decimal("2.5000"))]),
    }  # fmt: skip
    database = tmp_path / "w.duckdb"
    con = _duckdb(tables)
    con.execute(f"ATTACH '{database}' AS f")
    con.execute(
        f"COPY FROM DATABASE {con.execute('SELECT current_database()').fetchall()[0][0]} TO f"
    )
    con.close()
    _assert_same_lines(str(database))


def test_read_segment_warehouse_equals_ingesting_the_reference_files(tmp_path: Path) -> None:
    columns = [
        ("id", "VARCHAR"),
        ("user_id", "VARCHAR"),
        ("timestamp", "TIMESTAMP"),
        ("context_traits_email", "VARCHAR"),
        ("plan", "VARCHAR"),
        ("seats", "BIGINT"),
    ]
    rows = [
        (
            f"i{n % 7}",
            f"u{n % 5}",
            dt.datetime(2026, 1, 1) + dt.timedelta(minutes=n % 11),
            f"U{n}@x.test" if n % 3 else None,
            "pro" if n % 2 else None,
            n,
        )
        for n in range(300)
    ]
    con = _duckdb({"identifies": (columns, rows)})
    reports: list[Progress] = []
    got = read_segment_warehouse(con, SCHEMA, progress=reports.append)
    folder = tmp_path / "reference"
    folder.mkdir()
    sources = segment_reference.write_message_files(con, SCHEMA, folder)
    expected = ingest(folder, SpaceConfig(), workers=1)
    renamed = pl.col("source").replace(sources)
    assert got.events.equals(expected.events.with_columns(source=renamed))
    assert got.trait_updates.equals(expected.trait_updates)
    assert got.quarantine.equals(expected.quarantine.with_columns(source=renamed))
    assert got.stats == expected.stats
    exported = [r for r in reports if r.stage == "export"]
    assert exported[-1].rows_done == exported[-1].rows_total == 300
    assert [r.rows_done for r in exported] == sorted(r.rows_done for r in exported)
    assert "tables" in exported[-1].describe() and "rows/s" in exported[-1].describe()
    assert [r.stage for r in reports][-2:] == ["assemble", "done"]


# -- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    if not postgres_available():
        pytest.skip("PostgreSQL binaries not installed")
    with running_postgres() as server:
        yield server.dsn


def _postgres(dsn: str, tables: dict[str, Any], schema: str = SCHEMA) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")  # type: ignore[arg-type]
        con.execute(f"CREATE SCHEMA {schema}")  # type: ignore[arg-type]
        for table, (columns, rows) in tables.items():
            definition = ", ".join(f'"{c}" {TYPES[k]}' for c, k in columns)
            con.execute(f'CREATE TABLE {schema}."{table}" ({definition})')  # type: ignore[arg-type]
            if rows:
                marks = ", ".join("%s" for _ in columns)
                with con.cursor() as cursor:
                    cursor.executemany(
                        f'INSERT INTO {schema}."{table}" VALUES ({marks})',  # type: ignore[arg-type]
                        rows,
                    )


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(tables=_warehouse())
def test_postgres_tables_give_the_reference_lines(postgres: str, tables: dict[str, Any]) -> None:
    _postgres(postgres, tables)
    _assert_same_lines(postgres)


def test_postgres_outside_utc_gives_the_reference_lines(postgres: str) -> None:
    tables = {"tracks": ([("id", "VARCHAR"), ("user_id", "VARCHAR"), ("timestamp", "TIMESTAMPTZ"),
                          ("event_text", "VARCHAR"), ("sent", "TIMESTAMPTZ")],
                         [(f"m{n}", "u", dt.datetime(2026, 3, 8, n % 24, tzinfo=dt.UTC), "E",
                           dt.datetime(2026, 11, 1, 5, n, tzinfo=dt.UTC)) for n in range(60)])}  # fmt: skip
    _postgres(postgres, tables)
    _assert_same_lines(postgres + "?options=-c%20TimeZone%3DAmerica/New_York")
