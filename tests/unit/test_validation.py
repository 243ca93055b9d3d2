"""Every validation error names the file, key, field and offending text; all are reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from audience_pipeline.cli import main
from audience_pipeline.service import validate

SPACE = {"space": "t", "custom_traits": ["plan", "country"]}
GOOD_TRAIT = {
    "key": "total_revenue",
    "kind": "sum",
    "event": "Order Completed",
    "property": "revenue",
}


def write(root: Path, traits: list[dict], audiences: list[dict], space: dict | None = None) -> Path:
    (root / "traits").mkdir(parents=True)
    (root / "audiences").mkdir(parents=True)
    (root / "space.yaml").write_text(yaml.safe_dump(space or SPACE))
    for i, t in enumerate(traits):
        (root / "traits" / f"t{i}.yaml").write_text(yaml.safe_dump(t))
    for i, a in enumerate(audiences):
        (root / "audiences" / f"a{i}.yaml").write_text(yaml.safe_dump(a))
    return root


def audience(key: str, condition: dict, **extra: object) -> dict:
    return {"key": key, "name": key, "condition": condition, **extra}


CASES = [
    (
        "unknown trait",
        audience("a", {"traits": "nonexistent > 5"}),
        "condition.traits",
        "nonexistent",
    ),
    ("unknown audience", audience("a", {"audience": "missing"}), "condition.audience", "missing"),
    ("bad SQL", audience("a", {"traits": "plan = = 'x'"}), "condition.traits", "plan = = 'x'"),
    (
        "forbidden function",
        audience("a", {"event": "X", "where": "md5(name) = 'a'"}),
        "condition.where",
        "MD5",
    ),
    ("subquery", audience("a", {"traits": "plan IN (SELECT 1)"}), "condition.traits", "SELECT"),
    (
        "bad duration",
        audience("a", {"event": "X", "within": "7 days"}),
        "condition.within",
        "7 days",
    ),
    (
        "bad between",
        audience("a", {"event": "X", "between": ["30d", "7d"]}),
        "condition.between",
        "30d",
    ),
    (
        "positive step after performed false",
        audience(
            "a",
            {
                "funnel": {
                    "steps": [{"event": "A"}, {"event": "B", "performed": False}, {"event": "C"}]
                }
            },
        ),
        "condition.funnel.steps[1].performed",
        None,
    ),
    (
        "one-step funnel",
        audience("a", {"funnel": {"steps": [{"event": "A"}]}}),
        "condition.funnel.steps",
        None,
    ),
    (
        "aggregate outside having",
        audience("a", {"event": "X", "where": "count(*) > 1"}),
        "condition.where",
        "COUNT",
    ),
    (
        "users in a user audience",
        audience("a", {"users": "any", "condition": {"event": "X"}}),
        "condition.users",
        None,
    ),
    (
        "parent outside funnel",
        audience("a", {"event": "X", "where": "parent.x = 1"}),
        "condition.where",
        "parent.x",
    ),
    ("two node kinds", audience("a", {"event": "X", "traits": "plan = 'a'"}), "condition", None),
    ("unknown field", audience("a", {"event": "X", "wher": "a = 1"}), "condition.wher", "wher"),
    ("bad key", audience("Bad-Key", {"event": "X"}), "key", "Bad-Key"),
]


@pytest.mark.parametrize(("label", "definition", "field", "text"), CASES, ids=[c[0] for c in CASES])
def test_each_problem_names_file_key_field_and_text(
    tmp_path: Path, label: str, definition: dict, field: str, text: str | None
) -> None:
    root = write(tmp_path / "defs", [GOOD_TRAIT], [definition])
    issues = validate(root)
    assert issues, label
    issue = issues[0]
    assert issue.file.endswith("a0.yaml")
    assert issue.field == field
    if definition["key"] == "Bad-Key":
        assert issue.key is None
    else:
        assert issue.key == "a"
    if text is not None:
        assert issue.text is not None and text.lower() in issue.text.lower()


def test_every_problem_is_reported_at_once_and_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write(
        tmp_path / "defs",
        [GOOD_TRAIT, {**GOOD_TRAIT}, {"key": "x", "kind": "median", "event": "A", "property": "p"}],
        [
            audience("a", {"audience": "b"}),
            audience("b", {"audience": "a"}),
            audience("c", {"traits": "nonexistent > 1"}),
        ],
    )
    issues = validate(root)
    messages = " | ".join(str(i) for i in issues)
    assert "duplicate trait key" in messages
    assert "kind is one of" in messages
    assert "cycle" in messages
    assert "unknown trait" in messages
    assert main(["validate", "--definitions", str(root)]) == 1
    out = capsys.readouterr().out
    assert out.count("\n") >= 4


def test_valid_definitions_exit_zero(tmp_path: Path) -> None:
    root = write(
        tmp_path / "defs",
        [
            GOOD_TRAIT,
            {"key": "acct_orders", "level": "account", "kind": "count", "event": "Order Completed"},
        ],
        [
            audience("big", {"traits": "total_revenue > 100 AND plan = 'business'"}),
            audience(
                "acc",
                {
                    "all": [
                        {"traits": "acct_orders > 2"},
                        {"users": "none", "condition": {"audience": "big"}},
                    ]
                },
                level="account",
            ),
        ],
    )
    assert validate(root) == []
    assert main(["validate", "--definitions", str(root)]) == 0


def test_level_rules_for_traits(tmp_path: Path) -> None:
    root = write(
        tmp_path / "defs",
        [
            GOOD_TRAIT,
            {"key": "acct_orders", "level": "account", "kind": "count", "event": "Order Completed"},
        ],
        [
            audience("u", {"traits": "acct_orders > 1"}),
            audience("acc", {"traits": "total_revenue > 1"}, level="account"),
        ],
    )
    messages = [str(i) for i in validate(root)]
    assert any("user-level condition names an account trait" in m for m in messages)
    assert any("outside users: names a user trait" in m for m in messages)


def test_custom_traits_are_free_without_a_declaration(tmp_path: Path) -> None:
    root = write(
        tmp_path / "defs",
        [GOOD_TRAIT],
        [audience("a", {"traits": "anything > 1"})],
        space={"space": "t"},
    )
    assert validate(root) == []


def test_min_frequency_belongs_to_most_frequent(tmp_path: Path) -> None:
    root = write(
        tmp_path / "defs",
        [{"key": "t", "kind": "count", "event": "A", "min_frequency": 3}],
        [],
    )
    issues = validate(root)
    assert [i.field for i in issues] == ["min_frequency"]
