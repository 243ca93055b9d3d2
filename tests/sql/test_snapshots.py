"""Golden SQL per dialect for every audience of the demo space and of tests/sql/space.

Regenerate with `pytest tests/sql --update-snapshots`; never edit the files by hand.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

import pytest
import sqlglot

from audience_pipeline.compile_sql import compile_audience, compile_audiences
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.sql import DIALECTS

ROOT = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).parent.parent / "snapshots"
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)  # only fixes created_at defaults of backfill: false
SPACES = {"demo": ROOT / "definitions", "sqltest": Path(__file__).parent / "space"}


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for space, folder in SPACES.items():
        if not (folder / "space.yaml").exists():
            continue
        definitions, issues = load_definitions(folder)
        if issues:
            continue
        cases += [(space, a.key, d) for a in definitions.audiences for d in DIALECTS]
    return cases


@cache
def _compiled(space: str, dialect: str) -> dict[str, str]:
    return compile_audiences(SPACES[space], dialect, as_of=AS_OF)


@pytest.mark.parametrize(("space", "key", "dialect"), _cases())
def test_golden_sql(space: str, key: str, dialect: str, update_snapshots: bool) -> None:
    sql = _compiled(space, dialect)[key] + "\n"
    path = SNAPSHOTS / space / f"{key}.{dialect}.sql"
    if update_snapshots:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sql)
    assert path.exists(), f"no snapshot {path}: run pytest tests/sql --update-snapshots"
    assert sql == path.read_text(), f"{path} differs: run pytest tests/sql --update-snapshots"
    # The golden text is also valid SQL of its dialect.
    assert sqlglot.parse_one(sql, read=DIALECTS[dialect].sqlglot_dialect) is not None


def test_compile_audience_is_the_space_compilation() -> None:
    for dialect in ("duckdb", "spark"):
        got = compile_audience(SPACES["sqltest"], "active_accounts", dialect, as_of=AS_OF)
        assert got == _compiled("sqltest", dialect)["active_accounts"]


def test_every_dialect_differs_somewhere() -> None:
    texts = {d: compile_audience(SPACES["sqltest"], "active_accounts", d, as_of=AS_OF)
             for d in DIALECTS}  # fmt: skip
    assert len(set(texts.values())) == len(DIALECTS)
    assert "GET_JSON_OBJECT" in texts["spark"]
    assert "CAST(e.properties AS JSON) ->>" in texts["postgres"]


def test_no_definition_text_outside_literals() -> None:
    sql = compile_audience(SPACES["sqltest"], "cart_abandoners", "duckdb", as_of=AS_OF)
    tree = sqlglot.parse_one(sql, read="duckdb")
    identifiers = {i.name for i in tree.find_all(sqlglot.exp.Identifier)}
    assert "price" not in identifiers  # property names are JSON keys (string literals)
    assert any(
        isinstance(lit, sqlglot.exp.Literal) and "%gift%" in lit.this
        for lit in tree.find_all(sqlglot.exp.Literal)
    )


def test_unknown_dialect_and_key() -> None:
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        compile_audience(SPACES["sqltest"], "big_spenders", "oracle", as_of=AS_OF)
    with pytest.raises(ValueError, match="unknown audience"):
        compile_audience(SPACES["sqltest"], "nope", "duckdb", as_of=AS_OF)
