"""`validate` rejects what `compute` cannot evaluate; what it accepts, every backend evaluates.

Deep expressions, numbers beyond a double and durations beyond 10,000 years fail validation
naming file, key, field and text (spec/limits.py); expressions at the depth limit and property
names with quotes and backslashes run on both engines and compile for every dialect.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from audience_pipeline.cli import main
from audience_pipeline.compile_sql import compile_audience
from audience_pipeline.service import validate
from audience_pipeline.spec.limits import MAX_EXPRESSION_DEPTH
from audience_pipeline.sql.dialects import DIALECTS
from tests.unit.test_validation import GOOD_TRAIT, audience, write

DEEP_PARENS = "(" * 201 + "price > 1" + ")" * 201  # 43 failed before; now fine, see below
MANY_NOTS = "NOT " * 98 + "price > 1"
LONG_AND = " AND ".join(f"p{i} = {i}" for i in range(983))
HUGE_DAYS = "99999999999999999999d"

CASES = [
    ("201 parentheses", {"event": "X", "where": DEEP_PARENS}, "condition.where", "nested"),
    ("98 NOTs", {"traits": MANY_NOTS}, "condition.traits", "nested"),
    ("983-term AND", {"event": "X", "where": LONG_AND}, "condition.where", "nested"),
    ("1e400", {"event": "X", "where": "price > 1e400"}, "condition.where", "out of range"),
    ("-1e400 in having", {"event": "X", "having": "sum(price) > -1e400"}, "condition.having",
     "out of range"),
    ("huge within", {"event": "X", "within": HUGE_DAYS}, "condition.within", "at most"),
    ("huge between", {"event": "X", "between": ["1d", HUGE_DAYS]}, "condition.between",
     "at most"),
    ("huge funnel within",
     {"funnel": {"within": "1d", "steps": [{"event": "A"}, {"event": "B", "within": HUGE_DAYS}]}},
     "condition.funnel.steps[1].within", "at most"),
]  # fmt: skip


@pytest.mark.parametrize(("label", "condition", "field", "words"), CASES, ids=[c[0] for c in CASES])
def test_what_compute_cannot_evaluate_fails_validation(
    tmp_path: Path, label: str, condition: dict, field: str, words: str
) -> None:
    root = write(tmp_path / "defs", [GOOD_TRAIT], [audience("a", condition)])
    issues = validate(root)
    assert len(issues) == 1, (label, issues)
    issue = issues[0]
    assert issue.file.endswith("a0.yaml") and issue.key == "a" and issue.field == field
    assert words in issue.message
    assert issue.text  # the offending text


def test_trait_fields_are_checked_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    deep = {**GOOD_TRAIT, "where": MANY_NOTS}
    long = {**GOOD_TRAIT, "key": "long", "within": HUGE_DAYS}
    root = write(tmp_path / "defs", [deep, long], [])
    assert main(["validate", "--definitions", str(root)]) == 1
    out = capsys.readouterr().out
    assert "t0.yaml: total_revenue: where: expression nested" in out
    assert "t1.yaml: long: within: a duration is at most" in out
    assert "Traceback" not in out


def _deep(depth: int) -> dict[str, str]:
    """Expressions exactly `depth` levels deep (spec/limits.py counts them), of three shapes."""
    nots = "NOT " * (depth - 2) + "price > 1"  # `price > 1` is two levels, each NOT one more
    ands = " AND ".join(f"price > {i}" for i in range(depth - 1))  # n terms: n - 1 ANDs
    parens = "price > 1"
    for _ in range(depth - 2):
        parens = f"(({parens}) OR price < 0)"
    return {"nots": nots, "ands": ands, "parens": parens}


def test_expressions_at_the_limit_run_on_both_engines_and_compile(tmp_path: Path) -> None:
    deep = _deep(MAX_EXPRESSION_DEPTH)
    nots_result = (MAX_EXPRESSION_DEPTH - 2) % 2 == 0  # an even number of NOTs keeps price > 1
    audiences = [
        audience("by_nots", {"event": "X", "where": deep["nots"]}),
        audience("by_ands", {"event": "X", "where": deep["ands"]}),
        audience("by_parens", {"event": "X", "where": deep["parens"]}),
        audience("by_traits", {"traits": deep["ands"].replace("price", "plan_level")}),
        audience("by_43_parens", {"event": "X", "where": "(" * 43 + "price > 1" + ")" * 43}),
    ]
    trait = {**GOOD_TRAIT, "key": "deep_revenue", "event": "X", "where": deep["parens"]}
    space = {"space": "t", "identifiers": [{"type": "user_id", "from": "userId", "limit": 1}]}
    root = write(tmp_path / "defs", [trait], audiences, space)
    assert validate(root) == []
    events = tmp_path / "events.jsonl"
    lines = [
        {"type": "track", "userId": "u1", "event": "X", "messageId": "m1",
         "timestamp": "2026-01-01T00:00:00Z", "properties": {"price": 100, "revenue": 5}},
        {"type": "identify", "userId": "u1", "messageId": "m2",
         "timestamp": "2026-01-01T00:00:00Z", "traits": {"plan_level": 100}},
    ]  # fmt: skip
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    for engine in ("polars", "duckdb"):
        out = tmp_path / engine
        code = main([
            "compute", "--definitions", str(root), "--events", str(events),
            "--as-of", "2026-02-01T00:00:00Z", "--out", str(out), "--engine", engine,
        ])  # fmt: skip
        assert code == 0
        members = set(pl.read_parquet(out / "memberships.parquet")["audience_key"].to_list())
        expected = {"by_ands", "by_parens", "by_traits", "by_43_parens"} | (
            {"by_nots"} if nots_result else set()
        )
        assert members == expected, engine
        traits = pl.read_parquet(out / "user_traits.parquet")
        assert traits["deep_revenue"].to_list() == [5.0]
    for key in ("by_nots", "by_ands", "by_parens", "by_traits"):
        for dialect in DIALECTS:
            assert "SELECT" in compile_audience(str(root), key, dialect).upper()


def test_one_level_deeper_is_rejected(tmp_path: Path) -> None:
    deep = _deep(MAX_EXPRESSION_DEPTH + 1)
    audiences = [audience(name, {"event": "X", "where": text}) for name, text in deep.items()]
    root = write(tmp_path / "defs", [GOOD_TRAIT], audiences)
    issues = validate(root)
    assert sorted(i.key for i in issues) == ["ands", "nots", "parens"]
    assert all("nested" in i.message for i in issues)


QUOTED_KEYS = ["it's", "it''s", "a\\b", 'say "hi"', "x']y", "naïve"]


@pytest.mark.parametrize("many_keys", [False, True], ids=["flat columns", "JSON text"])
def test_property_names_with_quotes_evaluate_alike_on_both_engines(
    tmp_path: Path, many_keys: bool
) -> None:
    """Each key is named by a double-quoted identifier (`"` doubled inside); with more than
    200 distinct keys the Polars engine reads them from the JSON text, not flat columns."""
    audiences = []
    for i, key in enumerate(QUOTED_KEYS):
        name = '"' + key.replace('"', '""') + '"'
        audiences.append(audience(f"q{i}", {"event": "X", "where": f"{name} = 'yes'"}))
        audiences.append(
            audience(f"c{i}", {"event": "X", "where": f"context.{name} = {i}"})
        )  # fmt: skip
    space = {"space": "t", "identifiers": [{"type": "user_id", "from": "userId", "limit": 1}]}
    root = write(tmp_path / "defs", [GOOD_TRAIT], audiences, space)
    assert validate(root) == []
    properties: dict[str, object] = {key: "yes" for key in QUOTED_KEYS}
    if many_keys:
        properties.update({f"k{i}": i for i in range(250)})
    message = {
        "type": "track", "userId": "u1", "event": "X", "messageId": "m1",
        "timestamp": "2026-01-01T00:00:00Z", "properties": properties,
        "context": {key: i for i, key in enumerate(QUOTED_KEYS)},
    }  # fmt: skip
    other = {**message, "userId": "u2", "messageId": "m2", "properties": {}, "context": {}}
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(message) + "\n" + json.dumps(other) + "\n")
    for engine in ("polars", "duckdb"):
        out = tmp_path / engine
        code = main([
            "compute", "--definitions", str(root), "--events", str(events),
            "--as-of", "2026-02-01T00:00:00Z", "--out", str(out), "--engine", engine,
        ])  # fmt: skip
        assert code == 0
        memberships = pl.read_parquet(out / "memberships.parquet")
        assert memberships.height == len(audiences), engine  # u1 in each, u2 in none
        assert memberships["entity_id"].n_unique() == 1
