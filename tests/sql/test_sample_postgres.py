"""The compiled `sample` buckets and anchors on a real PostgreSQL server equal the engine's
(SHA-256 as hex, the digit-by-digit modulo, code-point order of identifier values)."""

from __future__ import annotations

import psycopg
import pytest
from sqlglot import exp

from audience_pipeline.engine.samples import bucket
from audience_pipeline.sql.dialects import get_dialect
from audience_pipeline.sql.samples import anchor_select, buckets_select
from tests.support.postgres import postgres_available, running_postgres

IDENTITIES = [
    ("p1", "anonymous_id", "a-9"),
    ("p1", "email", "zed@x.com"),
    ("p1", "email", "Ångström@x.com"),  # code point order: 'Z' < 'z' < 'Å'
    ("p2", "anonymous_id", "B"),
    ("p2", "anonymous_id", "a"),
    ("p3", "user_id", "ü"),
    ("p3", "email", "a@x.com"),
]


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL server binaries not installed")
def test_postgres_buckets_and_anchors_match_the_engine() -> None:
    d = get_dialect("postgres")
    anchors = anchor_select(d, "ids", ("user_id", "email", "anonymous_id"))
    query = buckets_select(d, "anchors", {"exp-1": "b1", "2026": "b2"})
    query = query.select(exp.column("id_type"), exp.column("id_value"))
    query = query.with_("anchors", as_=anchors)
    with running_postgres() as server, psycopg.connect(server.dsn, autocommit=True) as con:
        con.execute("CREATE TABLE ids (profile_id text, id_type text, id_value text)")
        with con.cursor() as cursor:
            cursor.executemany("INSERT INTO ids VALUES (%s, %s, %s)", IDENTITIES)
            cursor.execute(d.render(query))
            rows = cursor.fetchall()
    got = {r[0]: (r[3], r[4], r[1], r[2]) for r in rows}
    assert {k: v[:2] for k, v in got.items()} == {
        "p1": ("email", "zed@x.com"),
        "p2": ("anonymous_id", "B"),
        "p3": ("user_id", "ü"),
    }
    for id_type, value, b1, b2 in got.values():
        assert (b1, b2) == (bucket("exp-1", id_type, value), bucket("2026", id_type, value))


def test_polars_anchors_use_priority_then_code_point_order() -> None:
    import polars as pl

    from audience_pipeline.engine.samples import profile_anchors

    frame = pl.DataFrame(IDENTITIES, schema=["profile_id", "id_type", "id_value"], orient="row")
    anchors = profile_anchors(frame, ("user_id", "email", "anonymous_id")).sort("profile_id")
    assert anchors.rows() == [
        ("p1", "email", "zed@x.com"),
        ("p2", "anonymous_id", "B"),
        ("p3", "user_id", "ü"),
    ]
