"""Events read from Segment's warehouse schema, in DuckDB and in a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator

import duckdb
import polars as pl
import pytest

from audience_pipeline.ingest.segment_warehouse import read_segment_warehouse
from audience_pipeline.values import untag_text
from tests.support.postgres import postgres_available, running_postgres

# Segment's layout: one table per call type, one per track event (by slug), flattened columns.
TABLES = {
    "identifies": (
        "id TEXT, anonymous_id TEXT, user_id TEXT, timestamp TIMESTAMP, received_at TIMESTAMP, "
        "context_traits_email TEXT, plan TEXT, seats INTEGER",
        [
            "('i1', 'anon-1', 'u1', '2026-01-01 10:00:00', '2026-01-01 10:00:01', "
            "' Ann@Example.com ', 'pro', 5)",
        ],
    ),
    "groups": (
        "id TEXT, anonymous_id TEXT, user_id TEXT, timestamp TIMESTAMP, group_id TEXT, "
        "industry TEXT",
        ["('g1', NULL, 'u1', '2026-01-01 11:00:00', 'acme', 'retail')"],
    ),
    "aliases": (
        "id TEXT, user_id TEXT, previous_id TEXT, timestamp TIMESTAMP",
        ["('a1', 'u1', 'anon-9', '2026-01-01 12:00:00')"],
    ),
    "tracks": (
        "id TEXT, anonymous_id TEXT, user_id TEXT, timestamp TIMESTAMP, event TEXT, "
        "event_text TEXT, context_device_type TEXT",
        [
            "('t1', 'anon-1', NULL, '2026-01-02 09:00:00', 'order_completed', "
            "'Order Completed', 'mobile')",
            "('t2', NULL, 'u1', '2026-01-02 09:30:00', 'signed_in', 'Signed In', NULL)",
            "('t3', NULL, NULL, '2026-01-02 09:40:00', 'signed_in', 'Signed In', NULL)",
        ],
    ),
    "order_completed": (
        "id TEXT, anonymous_id TEXT, user_id TEXT, timestamp TIMESTAMP, event TEXT, "
        "event_text TEXT, revenue NUMERIC(10, 2), currency TEXT",
        [
            "('t1', 'anon-1', NULL, '2026-01-02 09:00:00', 'order_completed', "
            "'Order Completed', 42.50, 'USD')",
        ],
    ),
    "pages": (
        "id TEXT, anonymous_id TEXT, user_id TEXT, timestamp TIMESTAMP, name TEXT, "
        "context_page_url TEXT, context_page_path TEXT, title TEXT",
        [
            "('p1', 'anon-1', NULL, '2026-01-01 09:00:00', 'Home', 'https://x.test/', '/', "
            "'Welcome')",
        ],
    ),
}


def _statements(schema: str) -> Iterator[str]:
    yield f"CREATE SCHEMA {schema}"
    for table, (columns, rows) in TABLES.items():
        yield f"CREATE TABLE {schema}.{table} ({columns})"
        for row in rows:
            yield f"INSERT INTO {schema}.{table} VALUES {row}"


def _check(events: pl.DataFrame, quarantine: pl.DataFrame, trait_updates: pl.DataFrame) -> None:
    by_id = {row["message_id"]: row for row in events.iter_rows(named=True)}
    assert set(by_id) == {"i1", "g1", "a1", "t1", "t2", "p1"}
    order = by_id["t1"]
    assert order["event"] == "Order Completed"
    assert untag_text(order["properties"]) is not None
    assert '"revenue":42.5' in untag_text(order["properties"])  # from the event's own table
    assert '"currency":"USD"' in untag_text(order["properties"])
    assert "mobile" in order["context"]  # context_device_type -> context.device.type
    page = by_id["p1"]
    assert page["event"] == "Page Viewed"
    props = untag_text(page["properties"]) or ""
    assert '"name":"Home"' in props and '"url":"https://x.test/"' in props
    ids = {(d["id_type"], d["id_value"]) for d in by_id["i1"]["ids"]}
    assert ("email", "ann@example.com") in ids and ("user_id", "u1") in ids
    assert by_id["g1"]["group_id"] == "acme"
    assert by_id["a1"]["previous_id"] == "anon-9"
    keys = set(zip(trait_updates["kind"].to_list(), trait_updates["key"].to_list(), strict=True))
    assert {("user", "plan"), ("user", "seats"), ("account", "industry")} <= keys
    assert quarantine.height == 1 and quarantine["reason"][0]  # t3 has no identifier
    assert quarantine["source"][0] == "warehouse:segment.tracks"
    assert set(events["source"].unique().to_list()) <= {f"warehouse:segment.{t}" for t in TABLES}


def test_duckdb_warehouse() -> None:
    con = duckdb.connect()
    for statement in _statements("segment"):
        con.execute(statement)
    result = read_segment_warehouse(con, "segment")
    _check(result.events, result.quarantine, result.trait_updates)


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL binaries not installed")
def test_postgres_warehouse_matches_duckdb() -> None:
    import psycopg

    with running_postgres() as server:
        with psycopg.connect(server.dsn, autocommit=True) as con:
            for statement in _statements("segment"):
                con.execute(statement)  # type: ignore[arg-type]
        result = read_segment_warehouse(server.dsn, "segment")
    _check(result.events, result.quarantine, result.trait_updates)
    con_duck = duckdb.connect()
    for statement in _statements("segment"):
        con_duck.execute(statement)
    expected = read_segment_warehouse(con_duck, "segment")
    columns = ["message_id", "type", "event", "timestamp", "ids", "properties", "context"]
    assert result.events.select(columns).equals(expected.events.select(columns))


def test_cli_computes_from_a_duckdb_warehouse_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from audience_pipeline.cli import main

    database = tmp_path / "source.duckdb"
    con = duckdb.connect(str(database))
    for statement in _statements("segment"):
        con.execute(statement)
    con.close()
    definitions = tmp_path / "definitions"
    (definitions / "audiences").mkdir(parents=True)
    (definitions / "space.yaml").write_text("name: w\n")
    (definitions / "audiences" / "buyers.yaml").write_text(
        "key: buyers\nname: Buyers\ninclude_anonymous: true\n"
        'condition: {event: Order Completed, where: "revenue > 40"}\n'
    )
    out = tmp_path / "out"
    code = main(["compute", "--definitions", str(definitions), "--events", str(database),
                 "--events-schema", "segment", "--as-of", "2026-02-01T00:00:00Z",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    members = pl.read_parquet(out / "memberships.parquet")["entity_id"].to_list()
    identities = pl.read_parquet(out / "identities.parquet")
    anon = identities.filter(pl.col("id_value") == "anon-1")["profile_id"].to_list()
    assert members == anon  # anon-1 ordered for 42.50 and is u1's profile (identify i1)
    quarantine = pl.read_parquet(out / "quarantine.parquet")
    assert quarantine.height == 1
