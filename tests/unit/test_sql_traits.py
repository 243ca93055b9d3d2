"""`kind: sql` traits (SPEC 7, 7a): validation, the inputs they read, typing, matching, sources
(CSV, Parquet, a real PostgreSQL table), and the same values on both engines."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import psycopg
import pytest
import yaml

from audience_pipeline.engine.compute import ComputeResult, compute
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import load_space_ir, validate_definitions
from audience_pipeline.sql import compute_duckdb
from audience_pipeline.sqltraits.inputs import read_csv_source
from audience_pipeline.sqltraits.run import SqlTraitError, run_sql_traits
from tests.sql.test_equivalence import assert_same_tables
from tests.support.postgres import postgres_available, running_postgres

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPACE: dict[str, Any] = {"space": "default", "identifiers": [
    {"type": "user_id", "from": "userId", "limit": 1},
    {"type": "email", "from": ["traits.email", "context.traits.email"], "limit": 5},
    {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
]}  # fmt: skip


def _msg(n: int, kind: str, **fields: Any) -> str:
    at = fields.pop("at", T - timedelta(days=1))
    return json.dumps({"type": kind, "messageId": f"m{n}", "timestamp": at.isoformat(), **fields})


MESSAGES = [
    _msg(
        1, "identify", userId="u1", anonymousId="a1", traits={"email": " Ann@X.com", "plan": "free"}
    ),
    _msg(2, "track", userId="u1", event="Order Completed", properties={"revenue": 10, "sku": "x"}),
    _msg(3, "track", anonymousId="a1", event="Order Completed", properties={"revenue": 5}),
    _msg(4, "track", userId="u2", event="Order Completed", properties={"revenue": "7"}),
    _msg(5, "page", anonymousId="a9", name="Home", context={"page": {"url": "https://x/"}}),
    _msg(6, "group", userId="u1", groupId="acme", traits={"tier": "gold"}),
    _msg(7, "track", userId="u3", event="Order Completed", at=T + timedelta(days=1)),  # after T
    _msg(8, "identify", userId="null", anonymousId="a2", traits={"plan": "pro"}),
]


def _space(root: Path, traits: list[dict[str, Any]], audiences: list[dict[str, Any]] | None = None,
           space: dict[str, Any] | None = None) -> Path:  # fmt: skip
    defs = root / "definitions"
    (defs / "traits").mkdir(parents=True)
    (defs / "audiences").mkdir()
    (defs / "space.yaml").write_text(yaml.safe_dump(space or SPACE))
    for trait in traits:
        (defs / "traits" / f"{trait['key']}.yaml").write_text(yaml.safe_dump(trait))
    for audience in audiences or []:
        (defs / "audiences" / f"{audience['key']}.yaml").write_text(yaml.safe_dump(audience))
    events = root / "events"
    events.mkdir()
    (events / "e.jsonl").write_text("\n".join(MESSAGES) + "\n")
    return defs


def _run(root: Path, traits: list[dict[str, Any]], audiences: list[dict[str, Any]] | None = None,
         space: dict[str, Any] | None = None) -> ComputeResult:  # fmt: skip
    defs = _space(root, traits, audiences, space)
    definitions, compiled = load_space_ir(str(defs), T)
    data = ingest(root / "events", definitions.space, workers=1)
    rows = run_sql_traits(definitions, data.events, data.trait_updates, T)
    args = (data.events, data.trait_updates, definitions.space, compiled, T)
    polars_result = compute(*args, sql_traits=rows)
    assert_same_tables(polars_result, compute_duckdb(*args, sql_traits=rows))
    return polars_result


def _by_user(result: ComputeResult) -> dict[str, dict[str, Any]]:
    ids = result.identities.filter(pl.col("id_type") == "user_id")
    owner = dict(zip(ids["profile_id"], ids["id_value"], strict=True))
    return {
        owner.get(r["profile_id"], r["profile_id"]): r
        for r in result.user_traits.iter_rows(named=True)
    }


def test_inputs_and_typing(tmp_path: Path) -> None:
    trait = {"key": "facts", "kind": "sql", "query": """
        SELECT user_id, count(*) AS orders, sum(CAST(properties->>'revenue' AS DOUBLE)) AS revenue,
               max(timestamp) AS last_at, CAST(1.5 AS DECIMAL(4, 2)) AS dec,
               CAST('nan' AS DOUBLE) AS nan, [1, 2] AS list, {'a': 1} AS obj,
               DATE '2026-01-02' AS day, any_value(properties) AS props
        FROM events WHERE user_id IS NOT NULL GROUP BY user_id"""}  # fmt: skip
    result = _run(tmp_path, [trait])
    rows = _by_user(result)
    u1, u2 = rows["u1"], rows["u2"]
    assert (u1["facts.orders"], u1["facts.revenue"], u2["facts.revenue"]) == (1.0, 10.0, 7.0)
    assert u1["facts.last_at"] == (T - timedelta(days=1)).replace(tzinfo=None).isoformat()
    assert u1["facts.dec"] == 1.5 and u1["facts.nan"] is None and u1["facts.day"] == "2026-01-02"
    assert json.loads(u1["facts.list"]) == [1, 2] and json.loads(u1["facts.obj"]) == {"a": 1}
    assert json.loads(u1["facts.props"]) == {"revenue": 10, "sku": "x"}
    assert {"facts.list", "facts.obj", "facts.props"} <= result.json_columns["user_traits"]
    assert "u3" not in rows  # its only message is after as-of
    assert result.stats["sql_trait_unmatched.facts"] == 0


def test_identifies_groups_and_page_properties(tmp_path: Path) -> None:
    traits = [
        {"key": "ident", "kind": "sql", "query":
         "SELECT anonymous_id, traits->>'plan' AS plan FROM identifies WHERE anonymous_id = 'a2'"},
        {"key": "pages", "kind": "sql", "query":
         "SELECT anonymous_id, properties->>'url' AS url, properties->>'name' AS name, event "
         "FROM events WHERE event = 'Page Viewed'"},
        {"key": "acct", "kind": "sql", "level": "account", "query":
         "SELECT group_id, traits->>'tier' AS tier, user_id AS member FROM groups"},
    ]  # fmt: skip
    result = _run(tmp_path, traits)
    anon = result.identities.filter(pl.col("id_type") == "anonymous_id")
    owner = dict(zip(anon["id_value"], anon["profile_id"], strict=True))
    table = {r["profile_id"]: r for r in result.user_traits.iter_rows(named=True)}
    # userId "null" is blocked: the identify's user_id is NULL, its anonymous id still counts.
    assert table[owner["a2"]]["ident.plan"] == "pro"
    page = table[owner["a9"]]
    assert (page["pages.url"], page["pages.name"], page["pages.event"]) == (
        "https://x/", "Home", "Page Viewed")  # fmt: skip
    accounts = {r["account_id"]: r for r in result.account_traits.iter_rows(named=True)}
    assert (accounts["acme"]["acct.tier"], accounts["acme"]["acct.member"]) == ("gold", "u1")


def test_matching_normalizes_counts_unmatched_and_rejects_two_rows(tmp_path: Path) -> None:
    trait = {"key": "mail", "kind": "sql", "query":
             "SELECT * FROM (VALUES ('  ANN@x.com ', 'a'), ('nobody@x.com', 'b'), (NULL, 'c')) "
             "AS t(email, v)"}  # fmt: skip
    result = _run(tmp_path / "one", [trait])
    assert _by_user(result)["u1"]["mail.v"] == "a"
    assert result.stats["sql_trait_unmatched.mail"] == 2
    # Two anonymous ids of one profile reach it twice: the run fails naming the trait.
    twice = {"key": "twice", "kind": "sql", "query":
             "SELECT anonymous_id, 1 AS x FROM events WHERE anonymous_id IS NOT NULL "
             "UNION ALL SELECT 'a1', 2"}  # fmt: skip
    with pytest.raises(SqlTraitError, match="twice"):
        _run(tmp_path / "two", [twice])


@pytest.mark.parametrize(
    "query,needle",
    [
        ("SELECT * FROM (SELECT 'u1' AS who, 1 AS x)", "first column"),
        ("SELECT user_id FROM events", "at least one column"),
        ("SELECT user_id, 1 AS x, 2 AS x FROM events", "distinct"),
    ],
)
def test_result_shape_errors_name_the_trait(tmp_path: Path, query: str, needle: str) -> None:
    defs = _space(tmp_path, [{"key": "bad", "kind": "sql", "query": query}])
    definitions, _ = load_space_ir(str(defs), T)
    data = ingest(tmp_path / "events", definitions.space, workers=1)
    with pytest.raises(SqlTraitError, match=rf"'bad'.*{needle}"):
        run_sql_traits(definitions, data.events, data.trait_updates, T)


def test_validate_names_a_literal_first_column(tmp_path: Path) -> None:
    defs = _space(tmp_path, [{"key": "bad", "kind": "sql", "query": "SELECT 'u1' AS who, 1 AS x"}])
    assert any("first column" in str(i) for i in validate_definitions(str(defs), T))


@pytest.mark.parametrize(
    "query,needle",
    [
        ("DROP TABLE events", "one SELECT"),
        ("SELECT user_id, 1 AS x FROM events; SELECT 1", "exactly one"),
        ("SELECT * FROM read_csv('/etc/passwd')", "not allowed"),
        ("SELECT user_id, getenv('HOME') AS h FROM events", "not allowed"),
        ("SELECT user_id, 1 AS x FROM main.events", "qualified"),
        ("SELECT user_id, 1 AS x FROM secrets", "unknown relation"),
        ("SELECT email, 1 AS x FROM '/tmp/x.csv'", "unknown relation"),
        ("COPY events TO '/tmp/out.csv'", "one SELECT"),
        ("ATTACH '/tmp/x.db'", "one SELECT"),
        ("PRAGMA version", "one SELECT"),
        ("SELECT group_id, 1 AS x FROM groups", "first column"),
        ("SELEC user_id", "one SELECT"),
        ("SELECT user_id, (1 AS x FROM events", "not valid SQL"),
    ],
)
def test_validate_rejects_unsafe_or_malformed_queries(
    tmp_path: Path, query: str, needle: str
) -> None:
    defs = _space(tmp_path, [{"key": "q", "kind": "sql", "query": query}])
    issues = [str(i) for i in validate_definitions(str(defs), T)]
    assert any(needle in i and "query" in i for i in issues), issues


def test_validate_fields_and_sources(tmp_path: Path) -> None:
    space = {**SPACE, "sources": [{"name": "crm", "path": "missing.csv"},
                                  {"name": "events", "path": "x.parquet"},
                                  {"name": "pg", "dsn": "postgresql://x/y", "table": "a.b.c"}]}  # fmt: skip
    traits = [{"key": "q", "kind": "sql", "query": "SELECT user_id, 1 AS x FROM events",
               "within": "7d"}]  # fmt: skip
    issues = [str(i) for i in validate_definitions(str(_space(tmp_path, traits, space=space)), T)]
    assert any("within" in i and "unknown field" in i for i in issues)
    assert any("file not found" in i for i in issues)
    assert any("already taken" in i for i in issues)
    assert any("sources[2]" in i for i in issues)


def test_read_only_connection_blocks_file_access_at_run_time(tmp_path: Path) -> None:
    """Even a query that slipped past validation cannot read files: external access is off."""
    from audience_pipeline.sqltraits import run as run_module

    defs = _space(
        tmp_path, [{"key": "q", "kind": "sql", "query": "SELECT user_id, 1 AS x FROM events"}]
    )
    definitions, _ = load_space_ir(str(defs), T)
    data = ingest(tmp_path / "events", definitions.space, workers=1)
    secret = tmp_path / "secret.csv"
    secret.write_text("user_id,x\nu1,1\n")
    original = run_module.check_query

    def lenient(query: str, sources: set[str]) -> Any:
        import sqlglot

        del query, sources
        return sqlglot.parse_one(f"SELECT * FROM read_csv('{secret}')", read="duckdb")

    run_module.check_query = lenient  # type: ignore[assignment]
    try:
        with pytest.raises(SqlTraitError, match="q"):
            run_sql_traits(definitions, data.events, data.trait_updates, T)
    finally:
        run_module.check_query = original


def test_csv_typing(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,n,f,b,s,empty\nx,1,1.5,true,a,\ny,,2,FALSE,7,\nz,3,,,,\n")
    frame = read_csv_source(path)
    assert frame.schema == pl.Schema({"id": pl.String, "n": pl.Int64, "f": pl.Float64,
                                      "b": pl.Boolean, "s": pl.String, "empty": pl.String})  # fmt: skip
    assert frame["n"].to_list() == [1, None, 3] and frame["b"].to_list() == [True, False, None]


def test_csv_and_parquet_sources_in_audiences(tmp_path: Path) -> None:
    space = {**SPACE, "sources": [{"name": "crm", "path": "crm.csv"},
                                  {"name": "extra", "path": "extra.parquet"}]}  # fmt: skip
    traits = [
        {"key": "crm", "kind": "sql", "query": "SELECT user_id, plan FROM crm"},
        {"key": "extra", "kind": "sql", "query": "SELECT email, score FROM extra"},
    ]
    audiences = [
        {"key": "pro", "name": "pro", "condition": {"traits": "crm.plan = 'pro'"}},
        {"key": "pro_buyers", "name": "pb", "condition": {
            "event": "Order Completed", "where": "trait.crm.plan = 'pro' AND trait.extra.score > 0.1"}},
        {"key": "no_plan", "name": "np", "condition": {"not": {"traits": "crm.plan IS NOT NULL"}}},
    ]  # fmt: skip
    defs = _space(tmp_path, traits, audiences, space)
    (defs / "crm.csv").write_text("user_id,plan\nu1,pro\nu2,free\nghost,pro\n")
    pl.DataFrame({"email": ["ann@x.com"], "score": [0.5]}).write_parquet(defs / "extra.parquet")
    definitions, compiled = load_space_ir(str(defs), T)
    data = ingest(tmp_path / "events", definitions.space, workers=1)
    rows = run_sql_traits(definitions, data.events, data.trait_updates, T)
    args = (data.events, data.trait_updates, definitions.space, compiled, T)
    result = compute(*args, sql_traits=rows)
    assert_same_tables(result, compute_duckdb(*args, sql_traits=rows))
    ids = result.identities.filter(pl.col("id_type") == "user_id")
    who = dict(zip(ids["profile_id"], ids["id_value"], strict=True))
    members: dict[str, set[str]] = {}
    for row in result.memberships.iter_rows(named=True):
        members.setdefault(row["audience_key"], set()).add(who.get(row["entity_id"], "anon"))
    assert members["pro"] == {"u1"} and members["pro_buyers"] == {"u1"}
    assert "u1" not in members["no_plan"] and "u2" not in members["no_plan"]
    assert result.stats["sql_trait_unmatched.crm"] == 1


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL server binaries not installed")
def test_postgres_table_source(tmp_path: Path) -> None:
    with running_postgres() as server:
        with psycopg.connect(server.dsn, autocommit=True) as con:
            con.execute("CREATE SCHEMA crm")
            con.execute("CREATE TABLE crm.contacts (user_id text, plan text, seats int)")
            con.execute("INSERT INTO crm.contacts VALUES ('u1', 'business', 12), ('u2', NULL, 3)")
        space = {**SPACE, "sources": [{"name": "contacts", "dsn": server.dsn,
                                       "table": "crm.contacts"}]}  # fmt: skip
        traits = [
            {"key": "pg", "kind": "sql", "query": "SELECT user_id, plan, seats FROM contacts"}
        ]
        rows = _by_user(_run(tmp_path, traits, space=space))
    assert (rows["u1"]["pg.plan"], rows["u1"]["pg.seats"]) == ("business", 12.0)
    assert (rows["u2"]["pg.plan"], rows["u2"]["pg.seats"]) == (None, 3.0)
