"""A CTE chain run in steps (`sql.steps`) answers as the query does, and leaves no step table."""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from audience_pipeline.sql import steps as steps_module
from audience_pipeline.sql.steps import STEP_PREFIX, chain_steps, run_in_steps

QUERY = """
WITH base AS (SELECT i AS id, i % 7 AS k FROM range(100) t(i)),
     once AS (SELECT id FROM base WHERE k = 1),
     shared AS (SELECT k, COUNT(*) AS n FROM base GROUP BY k),
     left_ AS (SELECT b.id, s.n FROM base AS b JOIN shared AS s ON s.k = b.k),
     unused AS (SELECT * FROM shared),
     final_ AS (SELECT l.id, l.n, base.k FROM left_ AS l JOIN base ON base.id = l.id
                WHERE l.id IN (SELECT id FROM once) OR l.n > 14)
SELECT * FROM final_ ORDER BY id
"""


def _query() -> exp.Expr:
    return sqlglot.parse_one(QUERY, read="duckdb")


@pytest.mark.parametrize("readers", [1, 2])
def test_steps_answer_as_the_query_and_drop_their_tables(
    readers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(steps_module, "TABLE_READERS", readers)
    con = duckdb.connect()
    expected = con.sql(_query().sql("duckdb")).fetchall()

    def execute(statement: exp.Expr) -> None:
        con.execute(statement.sql("duckdb"))

    run_in_steps(execute, _query(), "out")
    assert con.sql("SELECT * FROM out ORDER BY id").fetchall() == expected
    left = con.sql("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
    assert [name for (name,) in left] == ["out"]


def test_every_read_cte_is_a_table_by_default() -> None:
    steps, final, last_read = chain_steps(_query())
    names = [STEP_PREFIX + n for n in ("base", "once", "shared", "left_", "final_")]
    assert [name for name, _ in steps] == names
    assert last_read == {names[0]: 4, names[1]: 4, names[2]: 3, names[3]: 4, names[4]: 5}
    assert not list(final.find_all(exp.CTE))


def test_with_two_readers_only_shared_ctes_become_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(steps_module, "TABLE_READERS", 2)
    steps, final, last_read = chain_steps(_query())
    assert [name for name, _ in steps] == [STEP_PREFIX + "base", STEP_PREFIX + "shared"]
    # `shared` is last read by `left_`, which runs inside the final statement (one reader).
    assert last_read == {STEP_PREFIX + "base": 2, STEP_PREFIX + "shared": 2}
    assert {cte.alias_or_name for cte in final.find_all(exp.CTE)} >= {"once", "left_", "final_"}
