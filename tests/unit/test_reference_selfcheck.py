"""Hand-derived cases that pin the reference evaluator to SPEC (answers worked out from SPEC,
not from running the evaluator)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from tests.reference import RefResult, evaluate, strategies
from tests.reference.audiences import Scope, World, holds
from tests.reference.expressions import ExpressionError, parse

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPACE: dict[str, Any] = {
    "space": "default",
    "timezone": "UTC",
    "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "email", "from": ["traits.email", "context.traits.email"], "limit": 5},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
    ],
    "blocked_values": ["", "null", "undefined", "none", "0", "unknown", "anonymous"],
}


def at(days: float = 0, hours: float = 0, minutes: float = 0) -> str:
    """ISO text of AS_OF minus the given time."""
    moment = AS_OF - timedelta(days=days, hours=hours, minutes=minutes)
    return moment.isoformat()


def msg(kind: str, uid: Any = None, anon: Any = None, ts: str | None = None, **fields: Any) -> dict:
    out: dict[str, Any] = {"type": kind}
    if uid is not None:
        out["userId"] = uid
    if anon is not None:
        out["anonymousId"] = anon
    out["timestamp"] = ts if ts is not None else at(days=1)
    out.update(fields)
    return out


def track(uid: Any = None, event: str = "E", props: dict | None = None, **kw: Any) -> dict:
    return msg("track", uid, event=event, properties=props or {}, **kw)


def run(
    lines: list[Any],
    traits: list[dict] | None = None,
    audiences: list[dict] | None = None,
    space: dict | None = None,
) -> RefResult:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    return evaluate({"events.jsonl": text}, space or SPACE, traits or [], audiences or [], AS_OF)


def label(profile: frozenset) -> str:
    """A profile's user_id, else its smallest email, else its smallest anonymous id."""
    for kind in ("user_id", "email", "anonymous_id"):
        values = sorted(v for t, v in profile if t == kind)
        if values:
            return values[0]
    raise AssertionError(profile)


def members(result: RefResult, key: str) -> set[str]:
    return {m if isinstance(m, str) else label(m) for m in result.memberships[key]}


def user_traits(result: RefResult, who: str) -> dict[str, Any]:
    (found,) = [t for p, t in result.user_traits.items() if label(p) == who]
    return found


def traits_hold(expression: str, traits: dict[str, Any]) -> bool:
    """Does ``traits: expression`` hold for one profile with these custom traits?"""
    result = run(
        [msg("identify", "u1", traits=traits)],
        audiences=[{"key": "a", "condition": {"traits": expression}}],
    )
    return members(result, "a") == {"u1"}


def where_holds(expression: str, props: dict[str, Any], **fields: Any) -> bool:
    """Does an ``event: E`` + ``where`` condition hold for one track call?"""
    result = run(
        [track("u1", props=props, **fields)],
        audiences=[{"key": "a", "condition": {"event": "E", "where": expression}}],
    )
    return members(result, "a") == {"u1"}


def trait_value(definition: dict[str, Any], lines: list[Any]) -> Any:
    result = run(lines, traits=[{"key": "t", **definition}])
    return user_traits(result, "u1")["t"]


# --- expressions and typing -----------------------------------------------------------------


def test_numeric_string_reads_as_number_against_a_number() -> None:
    assert traits_hold("price > 10", {"price": "12"})
    assert traits_hold("price = 12", {"price": "12.0"})
    assert not traits_hold("price > 10", {"price": "12 "})  # a space: not a numeric string
    assert not traits_hold("price > 0", {"price": "+5"})
    assert not traits_hold("price > 0", {"price": ".5"})
    assert traits_hold("price > 0", {"price": "1e2"})


def test_number_reads_as_its_text_against_a_string() -> None:
    assert traits_hold("n = '12'", {"n": 12.0})
    assert traits_hold("n = '12'", {"n": 12})
    assert not traits_hold("n = '12.0'", {"n": 12.0})
    assert traits_hold("n = '0.5'", {"n": 0.5})
    assert traits_hold("n LIKE '1%'", {"n": 12.0})


def test_boolean_against_string_is_null_and_booleans_compare() -> None:
    assert not traits_hold("flag = 'true'", {"flag": True})
    assert not traits_hold("NOT (flag = 'true')", {"flag": True})
    assert traits_hold("flag = true", {"flag": True})
    assert traits_hold("flag", {"flag": True})
    assert not traits_hold("flag", {"flag": "true"})  # only JSON true is boolean true
    assert traits_hold("a > b", {"a": True, "b": False})
    assert not traits_hold("a = 1", {"a": True})


def test_two_names_compare_by_json_kind() -> None:
    assert not traits_hold("a = b", {"a": 5, "b": "5"})
    assert not traits_hold("NOT (a = b)", {"a": 5, "b": "5"})
    assert traits_hold("a = b", {"a": 5, "b": 5.0})
    assert traits_hold("a < b", {"a": "B", "b": "a"})  # Python str order: 'B' < 'a'
    assert traits_hold("a < b", {"a": 9, "b": 10})  # numbers, not text


def test_coalesce_takes_the_type_of_its_comparison() -> None:
    assert traits_hold("coalesce(price, 0) < 100", {"price": "N/A"})
    assert traits_hold("coalesce(price, 0) < 100", {})
    assert not traits_hold("coalesce(price, 0) < 100", {"price": 150})
    assert traits_hold("coalesce(a, b) = 'x'", {"a": 7, "b": "x"} | {"a": None})
    # names only: the first non-null raw value, compared by kind
    assert traits_hold("coalesce(a, b) = c", {"b": "x", "c": "x"})


def test_sql_not_is_three_valued_but_not_node_is_two_valued() -> None:
    lines = [
        msg("identify", "u1", traits={"other": 1}),
        msg("identify", "u2", traits={"plan": "free"}),
    ]
    result = run(
        lines,
        audiences=[
            {"key": "node", "condition": {"not": {"traits": "plan = 'free'"}}},
            {"key": "sql", "condition": {"traits": "NOT (plan = 'free')"}},
        ],
    )
    assert members(result, "node") == {"u1"}
    assert members(result, "sql") == set()


def test_is_null_only_for_missing_and_json_null() -> None:
    assert traits_hold("x IS NULL", {})
    assert traits_hold("x IS NULL", {"x": None, "y": 1})
    assert not traits_hold("x IS NULL", {"x": {}})
    assert traits_hold("x IS NOT NULL", {"x": False})
    assert traits_hold("lower(x) IS NULL", {"x": True})  # a boolean has no string reading


def test_like_and_ilike() -> None:
    assert traits_hold("name LIKE 'A%'", {"name": "Alice"})
    assert not traits_hold("name LIKE 'a%'", {"name": "Alice"})
    assert traits_hold("name ILIKE 'a%'", {"name": "Alice"})
    assert traits_hold("name LIKE 'Al_ce'", {"name": "Alice"})
    assert not traits_hold("name LIKE 'Al_'", {"name": "Alice"})
    assert traits_hold("name LIKE '50%'", {"name": "50% off"})
    assert traits_hold("name NOT LIKE 'B%'", {"name": "Alice"})
    assert not traits_hold("name NOT LIKE 'B%'", {})


def test_in_and_between() -> None:
    assert traits_hold("code IN (3, 'x')", {"code": "3"})
    assert traits_hold("code IN (3, 'x')", {"code": "x"})
    assert not traits_hold("code IN (3, 'x')", {"code": True})
    assert not traits_hold("code NOT IN (3, 'x')", {"code": True})  # null, not true
    # "y" = 3 is null (no number reading), so the OR is null and NOT IN is not true either
    assert not traits_hold("code NOT IN (3, 'x')", {"code": "y"})
    assert traits_hold("code NOT IN ('x', 'z')", {"code": "y"})
    assert traits_hold("x BETWEEN 10 AND 20", {"x": 10})
    assert traits_hold("x BETWEEN 10 AND 20", {"x": "20"})
    assert not traits_hold("x BETWEEN 10 AND 20", {"x": 20.5})
    assert traits_hold("x NOT BETWEEN 10 AND 20", {"x": 20.5})


def test_arithmetic_and_functions() -> None:
    assert traits_hold("a / 0 IS NULL", {"a": 1})
    assert traits_hold("a % 0 IS NULL", {"a": 1})
    assert traits_hold("a % 3 = -1", {"a": -7})  # fmod keeps the dividend's sign
    assert traits_hold("a * 2 = 9", {"a": "4.5"})
    assert traits_hold("a / 2 = 2.5", {"a": 5})  # true division
    assert traits_hold("abs(a) = 3", {"a": -3})
    assert traits_hold("length(n) = 2", {"n": 12.0})
    assert traits_hold("length(s) = 3", {"s": "héé"})
    assert traits_hold("upper(s) = 'ABC' AND lower(s) = 'abc'", {"s": "aBc"})
    assert not traits_hold("a + 1 > 0", {"a": "x"})


def test_nested_keys_and_unsupported_syntax() -> None:
    assert traits_hold("address.city = 'Paris'", {"address": {"city": "Paris"}})
    assert not traits_hold("address.city = 'Paris'", {"address": "Paris"})
    for text in ["x = (SELECT 1)", "CAST(x AS INT) = 1", "x || y = 'a'", "concat(x, y) = 'a'"]:
        with pytest.raises(ExpressionError):
            parse(text)


# --- computed traits ------------------------------------------------------------------------


def test_count_with_where_and_empty() -> None:
    lines = [track("u1", props={"p": 1}), track("u1", props={"p": 5}), track("u1", "F")]
    assert trait_value({"kind": "count", "event": "E"}, lines) == 2
    assert trait_value({"kind": "count", "event": "E", "where": "p > 2"}, lines) == 1
    assert trait_value({"kind": "count", "event": ["E", "F"]}, lines) == 3
    assert trait_value({"kind": "count", "event": "Nope"}, lines) == 0


def test_sum_avg_min_max_read_numbers() -> None:
    values: list[Any] = [2, "3", "x", True, None, 1.5]
    lines = [track("u1", props={"v": v}) for v in values] + [track("u1", props={})]
    assert trait_value({"kind": "sum", "event": "E", "property": "v"}, lines) == 6.5
    assert trait_value({"kind": "avg", "event": "E", "property": "v"}, lines) == pytest.approx(
        6.5 / 3
    )
    assert trait_value({"kind": "min", "event": "E", "property": "v"}, lines) == 1.5
    assert trait_value({"kind": "max", "event": "E", "property": "v"}, lines) == 3.0
    empty = [track("u1", "F", props={"v": 1})]
    assert trait_value({"kind": "sum", "event": "E", "property": "v"}, empty) == 0.0
    for kind in ("avg", "min", "max", "most_frequent", "first", "last"):
        assert trait_value({"kind": kind, "event": "E", "property": "v"}, empty) is None
    assert trait_value({"kind": "unique_list", "event": "E", "property": "v"}, empty) == []
    assert trait_value({"kind": "unique_count", "event": "E", "property": "v"}, empty) == 0


def test_most_frequent_as_text_with_min_frequency_and_ties() -> None:
    lines = [track("u1", props={"v": v}) for v in [1, "1", 1.0, "a", "a", "b"]]
    spec = {"kind": "most_frequent", "event": "E", "property": "v"}
    assert trait_value(spec, lines) == "1"  # 1, "1" and 1.0 are all the text 1
    tie = [track("u1", props={"v": v}) for v in ["b", "b", "a", "a", "c"]]
    assert trait_value(spec, tie) == "a"
    rare = [track("u1", props={"v": v}) for v in ["b", "a", "c"]]
    assert trait_value(spec, rare) is None
    assert trait_value({**spec, "min_frequency": 1}, rare) == "a"
    assert trait_value({**spec, "min_frequency": 3}, lines) == "1"
    assert trait_value({**spec, "min_frequency": 4}, lines) is None


def test_unique_list_and_count_as_text() -> None:
    lines = [track("u1", props={"v": v}) for v in [True, "true", 12, 12.0, "b", None, 0.5]]
    assert trait_value({"kind": "unique_list", "event": "E", "property": "v"}, lines) == [
        "0.5",
        "12",
        "b",
        "true",
    ]
    assert trait_value({"kind": "unique_count", "event": "E", "property": "v"}, lines) == 4


def test_first_last_raw_value_ordered_by_time_then_message_id() -> None:
    lines = [
        track("u1", props={"v": "late"}, ts=at(days=1), messageId="m2"),
        track("u1", props={"v": 7}, ts=at(days=1), messageId="m1"),
        track("u1", props={"v": "noid"}, ts=at(days=1)),
        track("u1", props={"v": {"k": 1}}, ts=at(days=3), messageId="m9"),
    ]
    assert trait_value({"kind": "first", "event": "E", "property": "v"}, lines) == {"k": 1}
    # same timestamp: m1 < m2 < (no messageId last)
    assert trait_value({"kind": "last", "event": "E", "property": "v"}, lines) == "noid"
    lines.append(track("u1", props={}, ts=at(hours=1)))
    assert trait_value({"kind": "last", "event": "E", "property": "v"}, lines) is None


def test_trait_window_edges() -> None:
    lines = [
        track("u1", ts=at(days=7)),  # exactly T - 7d: excluded
        track("u1", ts=at(days=6, hours=23)),
        track("u1", ts=at()),  # exactly T: included
        track("u1", ts=(AS_OF + timedelta(seconds=1)).isoformat()),  # after T: ignored
    ]
    assert trait_value({"kind": "count", "event": "E", "within": "7d"}, lines) == 2
    assert trait_value({"kind": "count", "event": "E", "within": "1w"}, lines) == 2
    assert trait_value({"kind": "count", "event": "E"}, lines) == 3
    between = [track("u1", ts=at(days=d)) for d in (0.5, 1, 2, 3, 4)]
    # T-3d < t <= T-1d keeps 1d and 2d
    assert trait_value({"kind": "count", "event": "E", "between": ["1d", "3d"]}, between) == 2
    assert (
        trait_value({"kind": "count", "event": "E", "within": "90m"}, [track("u1", ts=at(hours=1))])
        == 1
    )


def test_trait_where_reads_custom_trait_and_computed_shadows_custom() -> None:
    lines = [
        msg("identify", "u1", traits={"currency": "USD", "total": "custom"}),
        track("u1", props={"cur": "USD", "amount": 5}),
        track("u1", props={"cur": "EUR", "amount": 7}),
    ]
    definition = {
        "kind": "sum",
        "event": "E",
        "property": "amount",
        "where": "cur = trait.currency",
    }
    result = run(lines, traits=[{"key": "total", **definition}])
    assert user_traits(result, "u1") == {"currency": "USD", "total": 5.0}


def test_page_and_screen_calls_are_events() -> None:
    lines = [
        msg(
            "page",
            "u1",
            name="Home",
            properties={},
            context={"page": {"url": "https://x/a", "path": "/a"}},
        ),
        msg(
            "page",
            "u1",
            name="Home",
            properties={"name": "Other", "path": "/b"},
            context={"page": {"path": "/a"}},
        ),
        msg("screen", "u1", name="Cart"),
    ]
    spec = {"kind": "unique_list", "event": "Page Viewed", "property": "name"}
    assert trait_value(spec, lines) == ["Home", "Other"]
    assert trait_value({**spec, "property": "path"}, lines) == ["/a", "/b"]
    assert trait_value({**spec, "property": "url"}, lines) == ["https://x/a"]
    assert (
        trait_value({"kind": "first", "event": "Screen Viewed", "property": "name"}, lines)
        == "Cart"
    )


def test_custom_traits_latest_non_null_and_traits_beat_context_traits() -> None:
    lines = [
        msg("identify", "u1", ts=at(days=3), traits={"plan": "free", "seats": 3}),
        msg(
            "identify",
            "u1",
            ts=at(days=2),
            traits={"plan": None},
            context={"traits": {"plan": "pro", "city": "Oslo"}},
        ),
        msg("identify", "u1", ts=at(days=1), traits={"seats": None}),
        msg("identify", "u1", ts=at(days=1), messageId="a", traits={"seats": 5}),
        msg("track", "u1", event="E", context={"traits": {"plan": "ignored"}}),
    ]
    result = run(lines)
    # messageId "a" sorts before the message without one at the same time; null never erases
    assert user_traits(result, "u1") == {"plan": "free", "seats": 5, "city": "Oslo"}


# --- condition nodes ------------------------------------------------------------------------


def test_all_any_empty_and_event_having() -> None:
    lines = [track("u1"), track("u1"), track("u2"), msg("identify", "u3")]
    result = run(
        lines,
        audiences=[
            {"key": "all_empty", "condition": {"all": []}},
            {"key": "any_empty", "condition": {"any": []}},
            {"key": "twice", "condition": {"event": "E", "having": "count(*) >= 2"}},
            {"key": "did", "condition": {"event": "E"}},
            {"key": "never", "condition": {"event": "E", "having": "count(*) = 0"}},
            {
                "key": "either",
                "condition": {
                    "any": [{"event": "E", "having": "count(*) >= 2"}, {"audience": "never"}]
                },
            },
        ],
    )
    assert members(result, "all_empty") == {"u1", "u2", "u3"}
    assert members(result, "any_empty") == set()
    assert members(result, "twice") == {"u1"}
    assert members(result, "did") == {"u1", "u2"}
    assert members(result, "never") == {"u3"}
    assert members(result, "either") == {"u1", "u3"}


def test_having_aggregates() -> None:
    lines = [track("u1", props={"p": v}) for v in ["a", "a", 3, 3.0, None, "4"]]
    cases = {
        "count(p) = 5": True,
        "count(distinct p) = 3": True,  # a, 3, 4
        "sum(p) = 10": True,  # 3 + 3 + 4
        "avg(p) > 3.3 AND avg(p) < 3.4": True,
        "min(p) = 3 AND max(p) = 4": True,
        "count(*) = 6": True,
        "count(q) = 0 AND sum(q) = 0 AND avg(q) IS NULL": True,
        "sum(p) > 10": False,
    }
    audiences = [
        {"key": f"h{i}", "condition": {"event": "E", "having": text}}
        for i, text in enumerate(cases)
    ]
    result = run(lines, audiences=audiences)
    for i, (text, expected) in enumerate(cases.items()):
        assert (members(result, f"h{i}") == {"u1"}) is expected, text


def test_event_where_reads_context_and_trait() -> None:
    ios = {"device": {"type": "ios"}}
    assert where_holds("context.device.type = 'ios'", {}, context=ios)
    assert not where_holds("context.device.type = 'ios'", {"context": {"device": {"type": "ios"}}})
    lines = [
        msg("identify", "u1", traits={"fav": "p1"}),
        track("u1", props={"product_id": "p1"}),
        msg("identify", "u2", traits={"fav": "p2"}),
        track("u2", props={"product_id": "p1"}),
    ]
    result = run(
        lines,
        audiences=[{"key": "a", "condition": {"event": "E", "where": "product_id = trait.fav"}}],
    )
    assert members(result, "a") == {"u1"}


def test_event_window_within_and_between() -> None:
    lines = [
        track("u1", ts=at(days=7)),
        track("u2", ts=at(days=6, hours=23, minutes=59)),
        track("u3", ts=at()),
    ]
    result = run(
        lines,
        audiences=[
            {"key": "w", "condition": {"event": "E", "within": "7d"}},
            {"key": "b", "condition": {"event": "E", "between": ["1h", "7d"]}},
        ],
    )
    assert members(result, "w") == {"u2", "u3"}
    assert members(result, "b") == {"u2"}


def test_audience_reference_keeps_its_own_universe() -> None:
    lines = [msg("track", anon="a1", event="E"), track("u1")]
    result = run(
        lines,
        audiences=[
            {"key": "known", "include_anonymous": False, "condition": {"event": "E"}},
            {"key": "outside", "condition": {"not": {"audience": "known"}}},
            {"key": "inside", "condition": {"audience": "known"}},
        ],
    )
    assert members(result, "known") == {"u1"}
    assert members(result, "outside") == {"a1"}
    assert members(result, "inside") == {"u1"}


def test_audience_cycle_is_an_error() -> None:
    with pytest.raises(ValueError, match="cycle"):
        run(
            [track("u1")],
            audiences=[
                {"key": "a", "condition": {"audience": "b"}},
                {"key": "b", "condition": {"not": {"audience": "a"}}},
            ],
        )


def test_include_anonymous_false_keeps_user_id_or_email_holders() -> None:
    lines = [
        msg("track", anon="a1", event="E"),
        msg("identify", anon="a2", traits={"email": "Bob@X.com "}),
        track("u1"),
    ]
    result = run(
        lines, audiences=[{"key": "k", "include_anonymous": False, "condition": {"all": []}}]
    )
    assert members(result, "k") == {"bob@x.com", "u1"}


def test_backfill_false_limits_own_events_not_traits() -> None:
    created = AS_OF - timedelta(days=2)
    lines = [
        track("u1", ts=at(days=3)),  # before created_at
        track("u2", ts=created.isoformat()),  # exactly at created_at: counts
        track("u3", ts=at(days=3)),
        track("u3", "F", ts=at(days=3)),
        track("u3", "F", ts=at(days=1)),
    ]
    result = run(
        lines,
        traits=[{"key": "n", "kind": "count", "event": "E"}],
        audiences=[
            {"key": "ev", "backfill": False, "created_at": created, "condition": {"event": "E"}},
            {
                "key": "tr",
                "backfill": False,
                "created_at": created.isoformat(),
                "condition": {"traits": "n >= 1"},
            },
            {
                "key": "fu",
                "backfill": False,
                "created_at": created,
                "condition": {"funnel": {"steps": [{"event": "E"}, {"event": "F"}]}},
            },
            {
                "key": "default",
                "backfill": False,
                "condition": {"event": "E"},
            },  # created_at = as-of
        ],
    )
    assert members(result, "ev") == {"u2"}
    assert members(result, "tr") == {"u1", "u2", "u3"}
    assert members(result, "fu") == set()
    assert members(result, "default") == set()


# --- funnels --------------------------------------------------------------------------------


def funnel_members(lines: list[Any], funnel: dict[str, Any]) -> set[str]:
    return members(run(lines, audiences=[{"key": "f", "condition": {"funnel": funnel}}]), "f")


def test_funnel_steps_are_strictly_later_and_within() -> None:
    steps = {"steps": [{"event": "A"}, {"event": "B", "within": "1d"}]}
    lines = [
        track("same", "A", ts=at(days=3)),
        track("same", "B", ts=at(days=3)),
        track("edge", "A", ts=at(days=3)),
        track("edge", "B", ts=at(days=2)),
        track("late", "A", ts=at(days=3)),
        track("late", "B", ts=at(days=1, hours=23, minutes=59)),
        track("order", "B", ts=at(days=3)),
        track("order", "A", ts=at(days=2)),
    ]
    assert funnel_members(lines, steps) == {"edge"}


def test_funnel_first_step_window_and_parent() -> None:
    funnel = {
        "within": "7d",
        "steps": [
            {"event": "View", "where": "price > 100"},
            {
                "event": "Add",
                "where": "product_id = parent.product_id AND parent.context.app = context.app",
            },
        ],
    }
    app = {"app": "web"}
    lines = [
        track("ok", "View", {"price": 150, "product_id": "p1"}, ts=at(days=3), context=app),
        track("ok", "Add", {"product_id": "p1"}, ts=at(days=2), context=app),
        track("other", "View", {"price": 150, "product_id": "p1"}, ts=at(days=3)),
        track("other", "Add", {"product_id": "p2"}, ts=at(days=2)),
        track("cheap", "View", {"price": 50, "product_id": "p1"}, ts=at(days=3)),
        track("cheap", "Add", {"product_id": "p1"}, ts=at(days=2)),
        track("old", "View", {"price": 150, "product_id": "p1"}, ts=at(days=8)),
        track("old", "Add", {"product_id": "p1"}, ts=at(days=2)),
    ]
    assert funnel_members(lines, funnel) == {"ok"}


def test_funnel_negative_last_step() -> None:
    funnel = {"steps": [{"event": "A"}, {"event": "B", "within": "1d", "performed": False}]}
    lines = [
        track("bought", "A", ts=at(days=3)),
        track("bought", "B", ts=at(days=2, hours=1)),
        track("later", "A", ts=at(days=3)),
        track("later", "B", ts=at(days=1)),
        track("open", "A", ts=at(hours=2)),  # window still open at as-of: holds
        track("none", "B", ts=at(days=1)),
        # a second chain start can still succeed
        track("retry", "A", ts=at(days=5)),
        track("retry", "B", ts=at(days=4, hours=12)),
        track("retry", "A", ts=at(days=3)),
    ]
    assert funnel_members(lines, funnel) == {"later", "open", "retry"}


def test_funnel_three_steps_chain_choice() -> None:
    funnel = {
        "steps": [{"event": "A"}, {"event": "B", "within": "1d"}, {"event": "C", "within": "1h"}]
    }
    lines = [
        # the first B is too early for C, the second B works
        track("u1", "A", ts=at(days=3)),
        track("u1", "B", ts=at(days=2, hours=20)),
        track("u1", "B", ts=at(days=2, hours=2)),
        track("u1", "C", ts=at(days=2, hours=1, minutes=30)),
        track("u2", "A", ts=at(days=3)),
        track("u2", "C", ts=at(days=2, hours=23)),
    ]
    assert funnel_members(lines, funnel) == {"u1"}


def test_funnel_shape_errors() -> None:
    with pytest.raises(ValueError):
        funnel_members([track("u1")], {"steps": [{"event": "A"}]})
    with pytest.raises(ValueError):
        funnel_members(
            [track("u1")], {"steps": [{"event": "A", "performed": False}, {"event": "B"}]}
        )


# --- accounts -------------------------------------------------------------------------------


def group(uid: str, group_id: Any, **kw: Any) -> dict:
    return msg("group", uid, groupId=group_id, **kw)


def test_account_users_any_all_none() -> None:
    lines = [
        group("u1", "solo"),
        msg("identify", "u1", traits={"vip": True}),
        group("u2", "many"),
        group("u3", "many"),
        msg("identify", "u2", traits={"vip": True}),
        group("u4", "nobody"),
    ]
    quantified = {q: {"users": q, "condition": {"traits": "vip"}} for q in ("any", "all", "none")}
    result = run(
        lines,
        audiences=[{"key": q, "level": "account", "condition": c} for q, c in quantified.items()],
    )
    assert members(result, "any") == {"solo", "many"}
    assert members(result, "all") == {"solo"}
    assert members(result, "none") == {"nobody"}


def test_account_without_members_all_false_none_true() -> None:
    world = World(AS_OF, [], {}, {}, ["g"], {}, {}, {"g": {}}, {})
    scope = Scope("account", None)
    cond = {"traits": "TRUE"}
    assert not holds(world, {"users": "all", "condition": cond}, "g", scope)
    assert holds(world, {"users": "none", "condition": cond}, "g", scope)
    assert not holds(world, {"users": "any", "condition": cond}, "g", scope)


def test_user_in_two_accounts_events_pool_into_both() -> None:
    lines = [
        group("u1", "g1", traits={"tier": "gold"}),
        group("u1", "g2", traits={"tier": "silver"}),
        group("u2", "g2", ts=at(days=2), traits={"tier": None, "size": 3}),
        track("u1", props={"v": 1}),
        track("u1", props={"v": 2}),
        track("u2", props={"v": 10}),
    ]
    result = run(
        lines,
        traits=[
            {"key": "events", "level": "account", "kind": "sum", "event": "E", "property": "v"}
        ],
        audiences=[
            {
                "key": "busy",
                "level": "account",
                "condition": {"event": "E", "having": "count(*) >= 3"},
            },
            {
                "key": "gold",
                "level": "account",
                "condition": {"event": "E", "where": "trait.tier = 'gold'"},
            },
            {
                "key": "acct",
                "level": "account",
                "condition": {"traits": "size = 3 AND tier = 'silver'"},
            },
        ],
    )
    assert result.account_traits == {
        "g1": {"tier": "gold", "events": 3.0},
        "g2": {"tier": "silver", "size": 3, "events": 13.0},
    }
    assert members(result, "busy") == {"g2"}
    assert members(result, "gold") == {"g1"}
    assert members(result, "acct") == {"g2"}


def test_account_group_id_text_and_future_group_calls() -> None:
    lines = [group("u1", 42), group("u2", "late", ts=(AS_OF + timedelta(hours=1)).isoformat())]
    result = run(lines, audiences=[{"key": "all", "level": "account", "condition": {"all": []}}])
    assert members(result, "all") == {"42"}


# --- identity -------------------------------------------------------------------------------


def test_limit_blocks_merge() -> None:
    lines = [
        msg("identify", "u1", anon="a1", ts=at(days=3)),
        msg("identify", "u2", anon="a1", ts=at(days=2)),
        msg("track", anon="a1", event="E", ts=at(days=1)),
    ]
    result = run(lines, traits=[{"key": "n", "kind": "count", "event": "E"}])
    assert sorted(map(sorted, result.profiles)) == [
        [("anonymous_id", "a1"), ("user_id", "u1")],
        [("user_id", "u2")],
    ]
    assert user_traits(result, "u1")["n"] == 1
    assert user_traits(result, "u2")["n"] == 0


def test_processing_order_is_timestamp_not_read_order() -> None:
    lines = [
        msg("identify", "u2", anon="a1", ts=at(days=2)),
        msg("identify", "u1", anon="a1", ts=at(days=3)),
    ]
    result = run(lines)
    assert frozenset({("user_id", "u1"), ("anonymous_id", "a1")}) in result.profiles


def test_merge_through_shared_identifier() -> None:
    lines = [
        msg("track", anon="a1", event="E", ts=at(days=3)),
        msg("identify", anon="a2", ts=at(days=3), traits={"email": "m@x.com"}),
        msg("identify", "u1", anon="a1", ts=at(days=2), traits={"email": "M@X.com"}),
    ]
    result = run(lines)
    assert result.profiles == [
        frozenset(
            {
                ("anonymous_id", "a1"),
                ("anonymous_id", "a2"),
                ("email", "m@x.com"),
                ("user_id", "u1"),
            }
        )
    ]


def test_email_limit_links_smallest_value_first() -> None:
    space = {
        **SPACE,
        "identifiers": [
            {**SPACE["identifiers"][0]},
            {**SPACE["identifiers"][1], "limit": 1},
            SPACE["identifiers"][2],
        ],
    }
    lines = [
        msg("identify", "u1", traits={"email": "b@x.com"}, context={"traits": {"email": "a@x.com"}})
    ]
    result = run(lines, space=space)
    assert result.profiles == [frozenset({("user_id", "u1"), ("email", "a@x.com")})]


def test_alias_types_previous_id_as_first_seen() -> None:
    lines = [
        msg("track", anon="anon-1", event="E", ts=at(days=3)),
        msg("alias", "u1", previousId="anon-1", ts=at(days=2)),
        msg("alias", "u2", previousId="old-user", ts=at(days=2)),
        msg("alias", "u3", previousId="u1", ts=at(days=1)),
    ]
    result = run(lines)
    # old-user (never seen) is a user_id and sorts before u2, so it picks the profile and the
    # user_id limit of 1 keeps u2 unlinked; likewise u1 before u3. Unlinked ids make no profile.
    assert sorted(map(sorted, result.profiles)) == [
        [("anonymous_id", "anon-1"), ("user_id", "u1")],
        [("user_id", "old-user")],
    ]


def test_blocked_values_trimming_and_integer_ids() -> None:
    lines = [
        msg("track", "  NULL ", anon=" a1 ", event="E"),
        msg("track", 42, event="E"),
        msg("track", 4.0, anon="a9", event="E"),
        msg("track", True, event="E"),  # no identifier left
        msg("track", "Anonymous", anon="0", event="E"),  # both blocked
    ]
    result = run(lines)
    assert sorted(map(sorted, result.profiles)) == [
        [("anonymous_id", "a1")],
        [("anonymous_id", "a9")],
        [("user_id", "42")],
    ]
    assert [q[1:] for q in result.quarantine] == [(4, "no identifier"), (5, "no identifier")]


def test_group_call_traits_email_is_not_an_identifier() -> None:
    lines = [
        group("u1", "g1", traits={"email": "acct@x.com"}, context={"traits": {"email": "Me@x.com"}})
    ]
    result = run(lines)
    assert result.profiles == [frozenset({("user_id", "u1"), ("email", "me@x.com")})]
    email_only = run([msg("group", groupId="g1", traits={"email": "acct@x.com"})])
    assert email_only.quarantine == [("events.jsonl", 1, "no identifier")]


# --- quarantine and dedupe ------------------------------------------------------------------


def test_quarantine_reasons_in_order() -> None:
    lines = [
        "{not json",
        "",
        "[1, 2]",
        json.dumps({"type": "bogus"}),
        json.dumps({"type": "track", "event": "E", "timestamp": at()}),
        json.dumps({"type": "track", "userId": "u1", "timestamp": "yesterday"}),
        json.dumps({"type": "track", "userId": "u1", "event": "E", "receivedAt": "nope"}),
        json.dumps({"type": "track", "userId": "u1", "event": "", "timestamp": at()}),
        json.dumps({"type": "track", "userId": "u1", "event": 5, "timestamp": at()}),
        json.dumps({"type": "group", "userId": "u1", "groupId": "", "timestamp": at()}),
        json.dumps({"type": "group", "userId": "u1", "timestamp": at()}),
        "   ",
        json.dumps(
            {"type": "track", "userId": "u1", "event": "E", "timestamp": None, "receivedAt": at()}
        ),
        json.dumps({"type": "track", "userId": "u1", "event": "E", "timestamp": 1700000000}),
        "NaN",
    ]
    result = run(lines)
    assert [(line, reason) for _, line, reason in result.quarantine] == [
        (1, "invalid json"),
        (3, "not an object"),
        (4, "unknown type"),
        (5, "no identifier"),
        (6, "unparseable timestamp"),
        (7, "missing timestamp"),
        (8, "track without event"),
        (9, "track without event"),
        (10, "group without groupId"),
        (11, "group without groupId"),
        (14, "unparseable timestamp"),
        (15, "invalid json"),
    ]
    assert result.profiles == [frozenset({("user_id", "u1")})]


def test_files_read_in_sorted_order_with_their_own_line_numbers() -> None:
    files = {"b.jsonl": "oops", "a.jsonl": "\n\n[]"}
    result = evaluate(files, SPACE, [], [], AS_OF)
    assert result.quarantine == [("a.jsonl", 3, "not an object"), ("b.jsonl", 1, "invalid json")]


def test_dedupe_prefers_received_at_then_earliest_then_first_read() -> None:
    spec = {"key": "v", "kind": "unique_list", "event": "E", "property": "v"}
    lines = [
        track("u1", props={"v": "no-received"}, messageId="m1"),
        track("u1", props={"v": "late"}, messageId="m1", receivedAt=at(hours=2)),
        track("u1", props={"v": "early"}, messageId="m1", receivedAt=at(hours=3)),
        track("u1", props={"v": "early-dup"}, messageId="m1", receivedAt=at(hours=3)),
        track("u1", props={"v": "free1"}),
        track("u1", props={"v": "free1"}),
    ]
    result = run(lines, traits=[spec, {"key": "n", "kind": "count", "event": "E"}])
    assert user_traits(result, "u1")["v"] == ["early", "free1"]
    assert user_traits(result, "u1")["n"] == 3


def test_dedupe_runs_before_the_as_of_cut() -> None:
    future = (AS_OF + timedelta(days=1)).isoformat()
    lines = [
        track("u1", messageId="m1", ts=at(days=1)),
        track("u1", messageId="m1", ts=future, receivedAt=at(days=2)),  # winner, after as-of
        track("u2", messageId="m2", ts=future),
        msg("identify", "u1", ts=at(days=1)),
    ]
    result = run(lines, traits=[{"key": "n", "kind": "count", "event": "E"}])
    assert user_traits(result, "u1")["n"] == 0
    assert result.profiles == [frozenset({("user_id", "u1")})]


def test_missing_timestamp_falls_back_to_received_at() -> None:
    line = {"type": "track", "userId": "u1", "event": "E", "receivedAt": at(days=10)}
    result = run([line], traits=[{"key": "n", "kind": "count", "event": "E", "within": "7d"}])
    assert result.quarantine == []
    assert user_traits(result, "u1")["n"] == 0


def test_timestamp_offsets_and_naive_times() -> None:
    # 13:30 at +02:00 is 11:30 UTC (before as-of 12:00); a naive 12:30 is UTC (after)
    lines = [
        track("u1", ts="2026-03-01T13:30:00+02:00"),
        track("u1", ts="2026-03-01T12:30:00"),
        track("u1", ts="2026-03-01T11:59:59Z"),
    ]
    assert trait_value({"kind": "count", "event": "E", "within": "1h"}, lines) == 2


# --- the strategies themselves --------------------------------------------------------------


def _expressions(node: Any) -> list[tuple[str, bool]]:
    """Every (expression, is_having) inside a definition tree."""
    found: list[tuple[str, bool]] = []
    if isinstance(node, dict):
        for key, child in node.items():
            if key in ("where", "traits") and isinstance(child, str):
                found.append((child, False))
            elif key == "having":
                found.append((child, True))
            else:
                found.extend(_expressions(child))
    elif isinstance(node, list):
        for child in node:
            found.extend(_expressions(child))
    return found


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.scenario(max_messages=60))
def test_generated_scenarios_evaluate_and_stay_consistent(case: tuple) -> None:
    files, space, traits, audiences, as_of = case
    for text, is_having in _expressions([traits, audiences]):
        parse(text, aggregates=is_having)
    result = evaluate(files, space, traits, audiences, as_of)
    identifiers = [i for p in result.profiles for i in p]
    assert len(identifiers) == len(set(identifiers)), "an identifier is in two profiles"
    assert set(result.user_traits) == set(result.profiles)
    for definition in audiences:
        found = result.memberships[definition["key"]]
        if definition.get("level") == "account":
            assert found <= set(result.account_traits)
        else:
            assert found <= set(result.profiles)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.scenario(max_messages=60))
def test_not_all_any_are_set_algebra_over_generated_audiences(case: tuple) -> None:
    files, space, traits, audiences, as_of = case
    users = [a for a in audiences if a.get("level", "user") == "user"]
    extra = []
    for a in users:
        extra.append({"key": f"not_{a['key']}", "condition": {"not": {"audience": a["key"]}}})
    if len(users) >= 2:
        refs = [{"audience": users[0]["key"]}, {"audience": users[1]["key"]}]
        extra += [
            {"key": "both", "condition": {"all": refs}},
            {"key": "either", "condition": {"any": refs}},
        ]
    result = evaluate(files, space, traits, audiences + extra, as_of)
    everyone = set(result.profiles)
    for a in users:
        assert result.memberships[f"not_{a['key']}"] == everyone - result.memberships[a["key"]]
    if len(users) >= 2:
        first, second = (result.memberships[u["key"]] for u in users[:2])
        assert result.memberships["both"] == first & second
        assert result.memberships["either"] == first | second


def test_backfill_false_reaches_inside_users_but_not_named_audiences() -> None:
    created = AS_OF - timedelta(days=2)
    lines = [
        group("u1", "old"),
        track("u1", ts=at(days=3)),
        group("u2", "new"),
        track("u2", ts=at(days=1)),
        msg("group", anon="a1", groupId="anon"),
        msg("track", anon="a1", event="E", ts=at(days=1)),
    ]
    result = run(
        lines,
        audiences=[
            {"key": "known", "include_anonymous": False, "condition": {"event": "E"}},
            {
                "key": "recent",
                "level": "account",
                "backfill": False,
                "created_at": created,
                "condition": {"users": "any", "condition": {"event": "E"}},
            },
            {
                "key": "named",
                "level": "account",
                "backfill": False,
                "created_at": created,
                "condition": {"users": "any", "condition": {"audience": "known"}},
            },
        ],
    )
    assert members(result, "recent") == {"new", "anon"}
    assert members(result, "named") == {"old", "new"}
