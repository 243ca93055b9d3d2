"""import-segment on every example of Segment's query language documentation we found."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from audience_pipeline.cli import main
from audience_pipeline.segment_import import import_segment, parse_query
from audience_pipeline.segment_import.nodes import Junction
from audience_pipeline.segment_import.parser import QuerySyntaxError
from audience_pipeline.service import validate

FIXTURE = Path(__file__).parent / "fixtures" / "segment_examples.json"
EXAMPLES: list[dict[str, Any]] = orjson.loads(FIXTURE.read_bytes())["examples"]


def api_item(example: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"id_{example['key']}", "name": example["name"], "key": example["key"],
            "definition": {"query": example["query"], "type": example["type"]}}  # fmt: skip


def api_file(path: Path, examples: list[dict[str, Any]]) -> Path:
    """The examples as one Public API response: audiences and computed traits."""
    body = {"data": {
        "audiences": [api_item(e) for e in examples if e["kind"] == "audience"],
        "computedTraits": [api_item(e) for e in examples if e["kind"] == "trait"],
    }}  # fmt: skip
    path.write_bytes(orjson.dumps(body))
    return path


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("segment")
    import_segment(api_file(root / "segment.json", EXAMPLES), root / "defs")
    return root / "defs"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_every_example_converts_or_is_listed_with_its_reason(imported: Path) -> None:
    report = orjson.loads((imported / "segment_import_report.json").read_bytes())
    converted = {o["key"]: o for o in report["converted"]}
    listed = {o["key"]: o for o in report["not_converted"]}
    assert len(converted) + len(listed) == len(EXAMPLES)  # nothing dropped silently
    for example in EXAMPLES:
        key = example["key"]
        folder = "audiences" if example["kind"] == "audience" else "traits"
        if example["expect"] == "converted":
            assert key in converted, (key, listed.get(key, {}).get("reason"))
            assert (imported / folder / f"{key}.yaml").exists()
        else:
            assert key in listed, key
            assert example["reason_contains"] in listed[key]["reason"], listed[key]["reason"]
            assert not (imported / folder / f"{key}.yaml").exists()


def test_the_converted_definitions_validate(imported: Path) -> None:
    assert validate(imported) == []


HAND_DERIVED: dict[str, dict[str, Any]] = {
    "audiences/shoes_bought_7d.yaml": {
        "key": "shoes_bought_7d", "name": "shoes bought 7d", "level": "user",
        "condition": {"event": "Shoes Bought", "where": "price >= 100", "within": "7d"},
    },
    "audiences/bought_and_returned.yaml": {
        "key": "bought_and_returned", "name": "bought and returned", "level": "user",
        "condition": {"funnel": {"within": "30d", "steps": [
            {"event": "Shoes Bought", "where": "price >= trait.avg_spend"},
            {"event": "Shoes Returned", "within": "5d"},
        ]}},
    },
    "audiences/did_not_buy.yaml": {
        "key": "did_not_buy", "name": "did not buy", "level": "user",
        "condition": {"not": {"all": [{"event": "Shoes Bought"},
                                      {"traits": "total_spend > 200"}]}},
    },
    "audiences/no_users_bought.yaml": {
        "key": "no_users_bought", "name": "no users bought", "level": "account",
        "condition": {"users": "none", "condition": {"event": "Shoes Bought"}},
    },
    "audiences/issue_where.yaml": {
        "key": "issue_where", "name": "issue where", "level": "user",
        "condition": {"event": "Order Completed", "where": "revenue > 100",
                      "having": "COUNT(*) >= 2"},
    },
    "audiences/fn_omits.yaml": {
        "key": "fn_omits", "name": "fn omits", "level": "user",
        "condition": {"not": {"traits": "favorite_category LIKE '%shoes%'"}},
    },
    "audiences/audience_reference.yaml": {
        "key": "audience_reference", "name": "audience reference", "level": "user",
        "condition": {"all": [{"audience": "shoes_bought_7d"}, {"traits": "total_spend > 200"}]},
    },
    "audiences/funnel_not_performed.yaml": {
        "key": "funnel_not_performed", "name": "funnel not performed", "level": "user",
        "condition": {"funnel": {"within": "7d", "steps": [
            {"event": "Product Added"},
            {"event": "Order Completed", "within": "1d", "performed": False},
        ]}},
    },
    "audiences/differs_note_absent.yaml": {
        "key": "differs_note_absent", "name": "differs note absent", "level": "user",
        "condition": {"any": [{"traits": "total_spend <> 500"},
                              {"traits": "total_spend IS NULL"}]},
    },
    "traits/min_spend.yaml": {
        "key": "min_spend", "name": "min spend", "level": "user", "kind": "min",
        "event": "Shoes Bought", "property": "spend",
        "where": "price > 100 AND brand = 'My Brand'",
    },
    "traits/most_frequent_spend_30d.yaml": {
        "key": "most_frequent_spend_30d", "name": "most frequent spend 30d", "level": "user",
        "kind": "most_frequent", "event": "Shoes Bought", "property": "spend",
        "min_frequency": 2, "within": "30d",
    },
    "traits/fn_unique_count.yaml": {
        "key": "fn_unique_count", "name": "fn unique count", "level": "user",
        "kind": "unique_count", "event": "Order Completed", "property": "spend",
    },
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HAND_DERIVED))
def test_hand_derived_yaml(imported: Path, name: str) -> None:
    assert load(imported / name) == HAND_DERIVED[name]


def test_the_typographic_and_unquoted_forms_give_the_same_definition(imported: Path) -> None:
    def body(key: str) -> dict[str, Any]:
        found = load(imported / "audiences" / f"{key}.yaml")
        return {k: v for k, v in found.items() if k not in ("key", "name")}

    assert body("shoes_bought_7d_curly") == body("shoes_bought_7d")
    assert body("shoes_bought_unquoted") == body("shoes_bought_7d")
    assert body("bought_and_returned_curly") == body("bought_and_returned")


def test_and_binds_tighter_than_or() -> None:
    tree = parse_query("trait('a') = 1 OR trait('b') = 2 AND trait('c') = 3")
    assert isinstance(tree, Junction) and tree.op == "or"
    assert isinstance(tree.items[1], Junction) and tree.items[1].op == "and"
    with pytest.raises(QuerySyntaxError, match="at character 27"):
        parse_query("event('x').count() >= 1 AND")


def test_bare_list_cli_exit_codes_and_key_cleanup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items = [
        {"name": "Big Buyers", "key": "Big-Buyers", "definition": {
            "query": "event('Order Completed').sum(property('revenue')) > 500", "type": "USERS"}},
        {"name": "Orders", "key": "orders", "definition": {
            "query": "event('Order Completed').count()", "type": "USERS"}},
    ]  # fmt: skip
    source = tmp_path / "list.json"
    source.write_bytes(orjson.dumps(items))
    out = tmp_path / "out"
    assert main(["import-segment", str(source), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "converted 1 audience(s) and 1 computed trait(s)" in printed
    assert load(out / "audiences" / "big_buyers.yaml")["condition"] == {
        "event": "Order Completed", "having": "SUM(revenue) > 500"}  # fmt: skip
    assert load(out / "traits" / "orders.yaml")["kind"] == "count"
    items.append({"name": "Dated", "key": "dated", "definition": {
        "query": "trait('signup').before_date('2024-01-01')", "type": "USERS"}})  # fmt: skip
    source.write_bytes(orjson.dumps(items))
    assert main(["import-segment", str(source), "--out", str(out)]) == 3
    assert "audience dated (Dated): before_date()" in capsys.readouterr().out
    source.write_text("{not json")
    assert main(["import-segment", str(source), "--out", str(out)]) == 2
    assert "not a readable JSON file" in capsys.readouterr().err


def test_what_does_not_validate_is_taken_back_out_with_the_message(tmp_path: Path) -> None:
    items = [
        {"name": "Dated", "key": "dated", "definition": {
            "query": "trait('signup').after_date('2024-01-01')", "type": "USERS"}},
        {"name": "Uses dated", "key": "uses_dated", "definition": {
            "query": "trait('dated') = true AND trait('plan') = 'pro'", "type": "USERS"}},
        {"name": "Parent at top", "key": "parent_top", "definition": {
            "query": "event('A').where(property(parent: 'x') = 1).count() >= 1", "type": "USERS"}},
        {"name": "Fine", "key": "fine", "definition": {
            "query": "trait('plan') = 'pro'", "type": "USERS"}},
    ]  # fmt: skip
    source = tmp_path / "s.json"
    source.write_bytes(orjson.dumps({"data": {"audiences": items}}))
    report = import_segment(source, tmp_path / "out")
    reasons = {o.key: o.reason or "" for o in report.not_converted}
    assert set(reasons) == {"dated", "uses_dated", "parent_top"}
    assert "after_date()" in reasons["dated"]
    assert reasons["uses_dated"].startswith("converted but does not validate")
    assert "dated" in reasons["uses_dated"]
    assert reasons["parent_top"].startswith("converted but does not validate")
    assert [o.key for o in report.converted] == ["fine"]
    assert sorted(p.name for p in (tmp_path / "out" / "audiences").iterdir()) == ["fine.yaml"]
    assert validate(tmp_path / "out") == []
