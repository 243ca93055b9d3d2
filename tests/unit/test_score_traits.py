"""`kind: score` traits (SPEC 7, 7a) on hand-written cases: ties, rounding, window edges; both
engines and the reference evaluator agree on each."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from audience_pipeline.spec.compile import validate_definitions
from tests.agreement import Scenario, profiles_of, reference_result
from tests.sql.test_equivalence import _both, assert_same_tables

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPACE = {"space": "default", "identifiers": [
    {"type": "user_id", "from": "userId", "limit": 1},
    {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
]}  # fmt: skip


def _scores(histories: dict[str, list[timedelta | datetime]], trait: dict[str, Any],
            extra: list[str] | None = None) -> dict[str, int | None]:  # fmt: skip
    """user id -> score; every user made the events at the given offsets before T (or times),
    plus an identify, so that profiles without matching events exist too."""
    lines, n = [], 0
    for user, moments in histories.items():
        n += 1
        lines.append(json.dumps({"type": "identify", "messageId": f"i{n}", "userId": user,
                                 "timestamp": (T - timedelta(days=400)).isoformat()}))  # fmt: skip
        for moment in moments:
            n += 1
            at = moment if isinstance(moment, datetime) else T - moment
            lines.append(json.dumps({"type": "track", "messageId": f"m{n}", "userId": user,
                                     "event": "Order Completed", "timestamp": at.isoformat(),
                                     "properties": {"price": n}}))  # fmt: skip
    lines += extra or []
    definition = {"key": "s", "kind": "score", **trait}
    case = Scenario({"e.jsonl": "\n".join(lines) + "\n"}, SPACE, [definition], [], T)
    with tempfile.TemporaryDirectory() as tmp:
        polars_result, duckdb_result = _both(case, Path(tmp))
    assert_same_tables(polars_result, duckdb_result)
    profiles = profiles_of(polars_result)
    got = {
        _user(profiles[row["profile_id"]]): row["s"]
        for row in polars_result.user_traits.iter_rows(named=True)
    }
    want = {_user(p): v["s"] for p, v in reference_result(case).user_traits.items()}
    assert got == want
    return got


def _user(profile: frozenset[tuple[str, str]]) -> str:
    return next(v for t, v in profile if t == "user_id")


def test_quantity_ties_share_the_lower_rank_and_no_event_is_null() -> None:
    day = timedelta(days=1)
    got = _scores({"a": [day], "b": [day, 2 * day], "c": [day, 2 * day], "d": [3 * day] * 3,
                   "nobody": [], "old": [timedelta(days=91)]}, {"score": "quantity"})  # fmt: skip
    # ranks 1, 2, 2, 4 among n = 4 -> 0, 33.3 -> 33, 33, 100
    assert got == {"a": 0, "b": 33, "c": 33, "d": 100, "nobody": None, "old": None}


def test_half_rounds_up_and_single_entity_gets_100() -> None:
    # n = 9 entities with quantities 1..9 except a tie at the bottom: rank 2 of 9 -> 12.5 -> 13.
    histories = {f"u{i}": [timedelta(hours=h) for h in range(i)] for i in range(2, 10)}
    histories["u1"] = [timedelta(hours=1)]
    got = _scores(histories, {"score": "quantity"})
    assert got["u1"] == 0 and got["u2"] == 13 and got["u9"] == 100
    assert _scores({"only": [timedelta(1)]}, {"score": "quantity"}) == {"only": 100}


def test_momentum_event_at_t_minus_w_over_3_counts_as_earlier() -> None:
    w3 = timedelta(days=10)  # within 30d
    got = _scores({
        "edge": [w3],                     # earlier: -1.5
        "inside": [w3 - timedelta(seconds=1)],   # recent: 3
        "both": [timedelta(1), w3 + timedelta(1)],  # 3 - 1.5 = 1.5
    }, {"score": "momentum", "within": "30d"})  # fmt: skip
    assert got == {"edge": 0, "both": 50, "inside": 100}


def test_frequency_counts_distinct_utc_dates() -> None:
    offset = datetime(2026, 2, 27, 23, 30, tzinfo=UTC)
    got = _scores({
        # 23:30 and 00:30 the next day UTC: two dates (one date in UTC+2).
        "two": [offset, offset + timedelta(hours=1)],
        "one": [offset - timedelta(hours=2), offset - timedelta(hours=3), offset],
    }, {"score": "frequency", "within": "7d"})  # fmt: skip
    assert got == {"one": 0, "two": 100}


def test_recency_is_exact_to_the_millisecond() -> None:
    base = T - timedelta(hours=5)
    got = _scores({
        "early": [base],
        "later": [base + timedelta(milliseconds=1)],
        "tie": [base + timedelta(milliseconds=1)],
        "latest": [base + timedelta(seconds=1), base - timedelta(days=2)],
    }, {"score": "recency"})  # fmt: skip
    assert got == {"early": 0, "later": 33, "tie": 33, "latest": 100}


def test_consistency_leftover_days_belong_to_no_week() -> None:
    week = timedelta(days=7)
    got = _scores({
        "leftover": [timedelta(days=8)],            # within 9d but in no week: 0 weeks
        "week0": [timedelta(days=1)],               # week 0 only
        "edge": [week],                             # T - 7d belongs to week 1? no: 9d has 1 week
        "future": [-timedelta(hours=1)],            # after T: ignored
    }, {"score": "consistency", "within": "9d"})  # fmt: skip
    # weeks: max(1, floor(9/7)) = 1 -> (T-7d, T]; T-7d itself is outside it.
    assert got == {"leftover": 0, "edge": 0, "week0": 100, "future": None}
    got = _scores({
        "two": [timedelta(days=1), week + timedelta(days=1)],
        "at_edge": [week, timedelta(days=2)],       # T-7d is week 1's: two weeks
        "one": [timedelta(days=1), timedelta(days=2)],
    }, {"score": "consistency", "within": "14d"})  # fmt: skip
    assert got == {"one": 0, "two": 50, "at_edge": 50}  # ranks 1, 2, 2 of 3


def test_event_list_where_and_every_event_default() -> None:
    page = json.dumps({"type": "page", "messageId": "p1", "userId": "pager", "name": "Home",
                       "timestamp": (T - timedelta(hours=1)).isoformat()})  # fmt: skip
    got = _scores({"a": [timedelta(1)], "b": [timedelta(1), timedelta(2)]},
                  {"score": "quantity"}, extra=[page])  # fmt: skip
    assert got == {"pager": 0, "a": 0, "b": 100}
    got = _scores({"a": [timedelta(1)], "b": [timedelta(1), timedelta(2)]},
                  {"score": "quantity", "event": ["Page Viewed"]}, extra=[page])  # fmt: skip
    assert got == {"pager": 100, "a": None, "b": None}
    got = _scores({"a": [timedelta(1)], "b": [timedelta(1), timedelta(2)]},
                  {"score": "quantity", "where": "price > 2"})  # fmt: skip
    assert got == {"a": None, "b": 100}


def test_account_scores_pool_members_and_rank_every_account() -> None:
    def group(n: int, user: str, account: str) -> str:
        return json.dumps({"type": "group", "messageId": f"g{n}", "userId": user,
                           "groupId": account, "timestamp": (T - timedelta(days=200)).isoformat()})  # fmt: skip

    lines = [
        json.dumps({"type": "track", "messageId": f"m{i}", "userId": u, "event": "Order Completed",
                    "timestamp": (T - timedelta(days=i)).isoformat()})
        for i, u in enumerate(["a", "b", "c"], start=1)
    ] + [group(1, "a", "acme"), group(2, "b", "acme"), group(3, "c", "solo"), group(4, "d", "idle")]  # fmt: skip
    trait = {"key": "s", "kind": "score", "score": "quantity", "level": "account"}
    case = Scenario({"e.jsonl": "\n".join(lines) + "\n"}, SPACE, [trait], [], T)
    with tempfile.TemporaryDirectory() as tmp:
        polars_result, duckdb_result = _both(case, Path(tmp))
    assert_same_tables(polars_result, duckdb_result)
    got = dict(polars_result.account_traits.select("account_id", "s").iter_rows())
    assert got == {"acme": 100, "solo": 0, "idle": None}
    assert {k: v["s"] for k, v in reference_result(case).account_traits.items()} == got


def _issues(trait: dict[str, Any]) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "traits").mkdir()
        (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
        (root / "traits" / "t.yaml").write_text(
            yaml.safe_dump({"key": "t", "kind": "score", **trait})
        )
        return [str(i) for i in validate_definitions(str(root), T)]


@pytest.mark.parametrize(
    "trait,needle",
    [
        ({}, "score is one of"),
        ({"score": "loyalty"}, "score is one of"),
        ({"score": "quantity", "property": "price"}, "not a field of a score trait"),
        ({"score": "quantity", "between": ["1d", "2d"]}, "not a field of a score trait"),
        ({"score": "quantity", "min_frequency": 2}, "not a field of a score trait"),
        ({"score": "quantity", "within": "0d"}, "greater than 0"),
        ({"score": "quantity", "event": 5}, "event is a name"),
        ({"score": "quantity", "where": "nope("}, "where"),
    ],
)
def test_invalid_score_traits(trait: dict[str, Any], needle: str) -> None:
    issues = _issues(trait)
    assert any(needle in issue for issue in issues), issues


def test_score_traits_in_audiences_and_users_nodes() -> None:
    lines = [
        json.dumps({"type": "track", "messageId": f"m{u}{i}", "userId": u, "event": "Order Completed",
                    "timestamp": (T - timedelta(days=i + 1)).isoformat()})
        for u, count in (("a", 1), ("b", 3)) for i in range(count)
    ] + [json.dumps({"type": "group", "messageId": "g1", "userId": "b", "groupId": "acme",
                     "timestamp": (T - timedelta(days=200)).isoformat()})]  # fmt: skip
    trait = {"key": "q", "kind": "score", "score": "quantity"}
    audiences = [
        {"key": "top", "name": "top", "condition": {"traits": "q > 50"}},
        {"key": "acct", "name": "acct", "level": "account",
         "condition": {"users": "any", "condition": {"traits": "q = 100"}}},
    ]  # fmt: skip
    case = Scenario({"e.jsonl": "\n".join(lines) + "\n"}, SPACE, [trait], audiences, T)
    with tempfile.TemporaryDirectory() as tmp:
        polars_result, duckdb_result = _both(case, Path(tmp))
    assert_same_tables(polars_result, duckdb_result)
    members = {
        (r["audience_key"], r["entity_id"]) for r in polars_result.memberships.iter_rows(named=True)
    }
    profiles = profiles_of(polars_result)
    named = {(k, e if k == "acct" else _user(profiles[e])) for k, e in members}
    assert named == {("top", "b"), ("acct", "acme")}
    ref = reference_result(case).memberships
    assert {_user(p) for p in ref["top"]} == {"b"} and ref["acct"] == {"acme"}
