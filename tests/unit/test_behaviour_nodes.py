"""Section 7's condition nodes on hand-written cases at every window edge, on both engines and
the reference evaluator; validation of their fields; sample buckets, splits and stickiness."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from audience_pipeline.engine.samples import bucket
from audience_pipeline.incremental import full_compute, refresh
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import validate_definitions
from audience_pipeline.spec.loader import load_definitions
from tests.agreement import Scenario, engine_memberships, reference_result, write_scenario
from tests.reference.behaviour import bucket_of
from tests.sql.test_equivalence import _both, assert_same_tables

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPACE = {
    "space": "default",
    "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "email", "from": ["traits.email", "context.traits.email"], "limit": 5},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
    ],
}
EVENT = "Order Completed"


def _track(n: int, user: str, at: datetime, event: str = EVENT, **props: Any) -> str:
    return json.dumps({"type": "track", "messageId": f"m{n}", "userId": user, "event": event,
                       "timestamp": at.isoformat(), "properties": props})  # fmt: skip


def _run(histories: dict[str, list[timedelta]], condition: dict[str, Any],
         **audience: Any) -> set[str]:  # fmt: skip
    """Members (user ids) of one audience whose users ordered at T - each offset; both engines
    and the reference must agree."""
    lines, n = [], 0
    for user, offsets in histories.items():
        for offset in offsets:
            n += 1
            lines.append(_track(n, user, T - offset))
    files = {"e.jsonl": "\n".join(lines) + "\n"}
    definition = {"key": "aud", "name": "aud", "condition": condition, **audience}
    case = Scenario(files, SPACE, [], [definition], T)
    with tempfile.TemporaryDirectory() as tmp:
        polars_result, duckdb_result = _both(case, Path(tmp))
    assert_same_tables(polars_result, duckdb_result)
    got = {_user(p) for p in engine_memberships(polars_result).get("aud", set())}
    want = {_user(p) for p in reference_result(case).memberships["aud"]}
    assert got == want
    return got


def _user(profile: frozenset[tuple[str, str]]) -> str:
    return next(v for t, v in profile if t == "user_id")


D = timedelta(days=7)
EPS = timedelta(seconds=1)


def test_first_time_edges() -> None:
    node = {"first_time": {"event": EVENT, "within": "7d"}}
    members = _run({
        "at_t": [timedelta(0)],                  # exactly at T: inside (T-D, T]
        "at_edge": [D],                          # exactly at T-D: outside, and "before"
        "just_inside": [D - EPS],
        "old_too": [timedelta(1), D + timedelta(days=30)],
        "two_recent": [timedelta(1), timedelta(2)],
        "future": [-timedelta(hours=1)],         # after T: ignored
    }, node)  # fmt: skip
    assert members == {"at_t", "just_inside", "two_recent"}


def test_stopped_edges() -> None:
    node = {"stopped": {"event": EVENT, "within": "7d", "before": "30d"}}
    members = _run({
        "at_t_minus_d": [D],                           # in (T-D-B, T-D]: stopped
        "just_after": [D - EPS],                       # in (T-D, T]: not stopped
        "at_far_edge": [D + timedelta(days=30)],       # exactly T-D-B: outside
        "inside_far": [D + timedelta(days=30) - EPS],
        "both": [timedelta(1), timedelta(10)],
    }, node)  # fmt: skip
    assert members == {"at_t_minus_d", "inside_far"}


def test_restarted_edges() -> None:
    node = {"restarted": {"event": EVENT, "within": "7d", "gap": "14d"}}
    g = timedelta(days=14)
    members = _run({
        "classic": [timedelta(1), D + g + timedelta(days=5)],
        "at_gap_edge": [timedelta(1), D + g],          # at T-D-G counts as "at or before"
        "in_gap": [timedelta(1), D + g - EPS, D + g + timedelta(days=1)],
        "at_t_minus_d": [D, D + g + timedelta(1)],     # T-D is in the gap, not recent
        "never_before": [timedelta(1)],
    }, node)  # fmt: skip
    assert members == {"classic", "at_gap_edge"}


def test_regularly_min_periods_below_periods() -> None:
    node = {"regularly": {"event": EVENT, "times": 2, "period": "1w", "periods": 3,
                          "min_periods": 2}}  # fmt: skip
    w = timedelta(weeks=1)
    members = _run({
        "weeks_0_1": [timedelta(0), timedelta(1), w, w + timedelta(1)],   # T-w is week 1s
        "weeks_1_2": [w + EPS, w + timedelta(1), 2 * w, 3 * w - EPS],    # T-2w is week 2's
        "edge_out": [w + EPS, w + timedelta(1), 2 * w + EPS, 3 * w],     # T-3w: in no period
        "one_week": [timedelta(1), timedelta(2)],
        "thin": [timedelta(1), w + timedelta(1), 2 * w + timedelta(1)],   # 1 per week < 2
        "old": [3 * w + EPS, 3 * w + timedelta(1)],                       # outside K periods
    }, node)  # fmt: skip
    assert members == {"weeks_0_1", "weeks_1_2"}
    node["regularly"].pop("min_periods")  # default: every period
    assert _run({"all": [timedelta(1), timedelta(2), w + EPS, w + timedelta(2),
                         2 * w + EPS, 3 * w - EPS], "two": [timedelta(1), timedelta(2)]},
                node) == {"all"}  # fmt: skip


def test_backfill_false_removes_earlier_events_from_the_node() -> None:
    created = (T - timedelta(days=20)).isoformat()
    # An order 40 days ago no longer counts: the recent one is a "first time" since created_at.
    first = {"first_time": {"event": EVENT, "within": "7d"}}
    assert _run({"u": [timedelta(1), timedelta(40)]}, first,
                backfill=False, created_at=created) == {"u"}  # fmt: skip
    # ...and a restart needs an order at or before T-D-G since created_at.
    restarted = {"restarted": {"event": EVENT, "within": "3d", "gap": "7d"}}
    assert _run({"u": [timedelta(1), timedelta(40)], "v": [timedelta(1), timedelta(15)]},
                restarted, backfill=False, created_at=created) == {"v"}  # fmt: skip


def test_account_level_and_users_nodes() -> None:
    lines = [
        _track(1, "a", T - timedelta(days=10)),
        _track(2, "b", T - timedelta(days=2)),
        *[json.dumps({"type": "group", "messageId": f"g{u}", "userId": u, "groupId": "acme",
                      "timestamp": (T - timedelta(days=50)).isoformat()}) for u in "ab"],
    ]  # fmt: skip
    stopped = {"stopped": {"event": EVENT, "within": "7d", "before": "30d"}}
    audiences = [
        # Pooled: b's recent order means the account did not stop.
        {"key": "pooled", "name": "p", "level": "account", "condition": stopped},
        {"key": "some_member", "name": "s", "level": "account",
         "condition": {"users": "any", "condition": stopped}},
    ]  # fmt: skip
    case = Scenario({"e.jsonl": "\n".join(lines) + "\n"}, SPACE, [], audiences, T)
    with tempfile.TemporaryDirectory() as tmp:
        polars_result, duckdb_result = _both(case, Path(tmp))
    assert_same_tables(polars_result, duckdb_result)
    members = engine_memberships(polars_result)
    assert members.get("pooled", set()) == set()
    assert members["some_member"] == {"acme"}
    assert reference_result(case).memberships == {"pooled": set(), "some_member": {"acme"}}


# --- sample -----------------------------------------------------------------------------------


def test_bucket_matches_the_spec_formula() -> None:
    import hashlib

    text = "exp:user_id:u1"
    want = int(hashlib.sha256(text.encode()).hexdigest()[:16], 16) % 10000
    assert bucket("exp", "user_id", "u1") == want == bucket_of("exp", "user_id", "u1")
    assert bucket("exp", "email", "é@x.com") == bucket_of("exp", "email", "é@x.com")


def _users_with_buckets(salt: str, count: int) -> dict[str, int]:
    return {f"user{i}": bucket(salt, "user_id", f"user{i}") for i in range(count)}


@pytest.mark.parametrize("engine_offset", [0])
def test_bucket_boundaries(engine_offset: int) -> None:
    del engine_offset
    buckets = _users_with_buckets("edge", 40)
    user, value = next((u, b) for u, b in buckets.items() if b % 100 not in (0, 99))
    low = value / 100  # e.g. 37.21: [3721, ...) includes bucket 3721
    histories = {u: [timedelta(1)] for u in buckets}
    inside = _run(histories, {"sample": {"salt": "edge", "from": low, "to": 100}})
    assert user in inside
    below = _run(histories, {"sample": {"salt": "edge", "from": 0, "to": low}})
    assert user not in below  # [0, 3721) excludes it
    assert inside | below == set(buckets) and not inside & below


def test_split_partitions_the_universe_and_buckets_are_sticky() -> None:
    salt = "split-2026"
    ranges = [(0, 33.33), (33.33, 66.67), (66.67, 100)]
    audiences = [{"key": f"arm{i}", "name": f"arm {i}",
                  "condition": {"sample": {"salt": salt, "from": a, "to": b}}}
                 for i, (a, b) in enumerate(ranges)]  # fmt: skip
    users = [f"u{i}" for i in range(60)]
    lines = [_track(i, u, T - timedelta(hours=i)) for i, u in enumerate(users)]
    # An anonymous visitor and a profile known by email: anchors of other types.
    lines.append(json.dumps({"type": "page", "messageId": "anon", "anonymousId": "dev-9",
                             "timestamp": T.isoformat()}))  # fmt: skip
    lines.append(json.dumps({"type": "identify", "messageId": "em", "anonymousId": "dev-8",
                             "traits": {"email": " Zed@X.com"}, "timestamp": T.isoformat()}))  # fmt: skip
    first = _arms(lines, audiences)
    universe = set().union(*first.values())
    assert len(universe) == len(users) + 2
    assert sum(len(m) for m in first.values()) == len(universe)  # disjoint and covering
    # A later run with more people: nobody already bucketed moves.
    more = lines + [_track(100 + i, f"new{i}", T - timedelta(minutes=i)) for i in range(20)]
    second = _arms(more, audiences)
    for key, members in first.items():
        assert members <= second[key]
    # Email anchors are normalized before hashing.
    arm = next(k for k, m in first.items() if ("email", "zed@x.com") in {i for p in m for i in p})
    low, high = ranges[int(arm[-1])]
    assert low * 100 <= bucket(salt, "email", "zed@x.com") < high * 100


def _arms(lines: list[str], audiences: list[dict[str, Any]]) -> dict[str, set[Any]]:
    case = Scenario({"e.jsonl": "\n".join(lines) + "\n"}, SPACE, [], audiences, T)
    with tempfile.TemporaryDirectory() as tmp:
        polars_result, duckdb_result = _both(case, Path(tmp))
    assert_same_tables(polars_result, duckdb_result)
    got = {a["key"]: engine_memberships(polars_result).get(a["key"], set()) for a in audiences}
    assert got == reference_result(case).memberships
    return got


# --- incremental ----------------------------------------------------------------------------


def test_stopped_changes_as_time_passes_without_new_events(tmp_path: Path) -> None:
    lines = [_track(1, "u1", T - timedelta(days=5)), _track(2, "u2", T - timedelta(days=20))]
    audience = {"key": "stopped", "name": "s",
                "condition": {"stopped": {"event": EVENT, "within": "7d", "before": "30d"}}}  # fmt: skip
    case = Scenario({"e.jsonl": "\n".join(lines) + "\n"}, SPACE, [], [audience], T)
    events_dir, defs = write_scenario(case, tmp_path)
    definitions, issues = load_definitions(defs)
    assert not issues
    data = ingest(events_dir, definitions.space)
    before = full_compute(data.events, data.trait_updates, definitions, T)
    assert before.tables["memberships"].height == 1  # u2 only
    later = T + timedelta(days=3)  # u1's order is now 8 days old: u1 stopped too
    got = refresh(data.events, data.trait_updates, definitions, later, before.state)
    want = full_compute(data.events, data.trait_updates, definitions, later)
    assert got.tables["memberships"]["entity_id"].to_list() == (
        want.tables["memberships"]["entity_id"].to_list()
    )
    assert want.tables["memberships"].height == 2


# --- validation -------------------------------------------------------------------------------


def _issues(condition: Any) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "audiences").mkdir()
        (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
        (root / "audiences" / "a.yaml").write_text(
            yaml.safe_dump({"key": "a", "name": "a", "condition": condition})
        )
        return [str(i) for i in validate_definitions(str(root), T)]


@pytest.mark.parametrize(
    "condition,needle",
    [
        ({"first_time": {"event": EVENT, "within": "7d", "having": "x"}}, "unknown field"),
        ({"first_time": {"event": EVENT}}, "within: required"),
        ({"first_time": {"event": EVENT, "within": "0d"}}, "greater than 0"),
        ({"first_time": {"event": EVENT, "within": "7d"}, "where": "x = 1"}, "unknown field"),
        ({"stopped": {"event": EVENT, "within": "7d", "before": "soon"}}, "a duration is"),
        ({"restarted": {"event": EVENT, "within": "7d", "gap": "0h"}}, "greater than 0"),
        (
            {
                "regularly": {
                    "event": EVENT,
                    "times": 1,
                    "period": "1w",
                    "periods": 3,
                    "min_periods": 4,
                }
            },
            "min_periods is an integer in 1..3",
        ),
        (
            {
                "regularly": {
                    "event": EVENT,
                    "times": 1,
                    "period": "1w",
                    "periods": 3,
                    "min_periods": 0,
                }
            },
            "min_periods",
        ),
        ({"regularly": {"event": EVENT, "times": 0, "period": "1w", "periods": 3}}, "times"),
        ({"regularly": {"event": EVENT, "times": 1, "period": "1w", "periods": True}}, "periods"),
        ({"first_time": {"event": EVENT, "within": "7d", "where": "nope("}}, "where"),
        ({"sample": {"salt": "s", "from": 0, "to": 33.333}}, "at most two decimals"),
        ({"sample": {"salt": "s", "from": 50, "to": 50}}, "0 <= from < to <= 100"),
        ({"sample": {"salt": "s", "from": 0, "to": 101}}, "0 <= from < to <= 100"),
        ({"sample": {"salt": "s", "from": "0", "to": 10}}, "is a number"),
        ({"sample": {"salt": "", "from": 0, "to": 10}}, "non-empty string"),
        ({"sample": {"salt": datetime(2026, 1, 1).date(), "from": 0, "to": 10}}, "quote dates"),
        ({"sample": {"salt": "s", "from": 0, "to": 10, "seed": 1}}, "unknown field"),
        ({"sample": {"salt": "s", "from": 0}}, "to: required"),
    ],
)
def test_invalid_nodes_name_the_field(condition: Any, needle: str) -> None:
    issues = _issues(condition)
    assert any(needle in issue for issue in issues), issues


@pytest.mark.parametrize(
    "condition",
    [
        {"sample": {"salt": 2026, "from": 33.33, "to": 66.67}},
        {"sample": {"salt": "s", "from": 0, "to": 100}},
        {
            "regularly": {
                "event": [EVENT, "Page Viewed"],
                "times": 1,
                "period": "1d",
                "periods": 3,
                "min_periods": None,
            }
        },
        {"not": {"first_time": {"event": EVENT, "within": "7d", "where": "price > 1"}}},
    ],
)
def test_valid_nodes(condition: Any) -> None:
    assert _issues(condition) == []


def test_sample_reads_exact_hundredths_and_integer_salts_as_text() -> None:
    from audience_pipeline.spec.behaviour import parse_sample

    problems: list[Any] = []
    node = parse_sample({"salt": 7, "from": 33.33, "to": 0.29}, "c", ("user_id",),
                        lambda *a: problems.append(a))  # fmt: skip
    assert node is None and problems  # from > to
    node = parse_sample({"salt": 7, "from": 0.29, "to": 33.33}, "c", ("user_id",),
                        lambda *a: problems.append(a))  # fmt: skip
    assert node is not None and (node.salt, node.low, node.high) == ("7", 29, 3333)


def test_validate_warns_on_overlapping_ranges_of_one_salt(tmp_path: Path) -> None:
    from audience_pipeline.spec.compile import validation_warnings

    (tmp_path / "audiences").mkdir()
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    arms = {"a": ("s", 0, 50), "b": ("s", 40, 100), "c": ("other", 0, 100), "d": ("s", 50, 60)}
    for key, (salt, low, high) in arms.items():
        condition = {"not": {"sample": {"salt": salt, "from": low, "to": high}}}
        (tmp_path / "audiences" / f"{key}.yaml").write_text(
            yaml.safe_dump({"key": key, "name": key, "condition": condition})
        )
    assert validate_definitions(str(tmp_path), T) == []
    warnings = validation_warnings(str(tmp_path), T)
    assert len(warnings) == 2, warnings  # a/b and b/d; a/d adjoin, c has its own salt
    assert all("overlaps" in w for w in warnings)


def test_incremental_refresh_keeps_sample_buckets(tmp_path: Path) -> None:
    """A refresh recomputes some profiles with stand-in identities: samples must still hash
    each profile's real anchor (it equals a full run)."""
    from polars.testing import assert_frame_equal

    lines = [_track(i, f"u{i}", T - timedelta(days=2, hours=i)) for i in range(30)]
    late = [_track(100 + i, f"u{i}", T - timedelta(hours=1)) for i in range(0, 30, 3)]
    audiences = [
        {"key": f"arm{i}", "name": f"arm {i}",
         "condition": {"all": [{"event": EVENT, "within": "7d"},
                               {"sample": {"salt": "s", "from": a, "to": b}}]}}
        for i, (a, b) in enumerate([(0, 50), (50, 100)])
    ]  # fmt: skip
    case = Scenario({"e.jsonl": "\n".join(lines + late) + "\n"}, SPACE, [], audiences, T)
    events_dir, defs = write_scenario(case, tmp_path)
    definitions, issues = load_definitions(defs)
    assert not issues
    data = ingest(events_dir, definitions.space)
    old = data.events["seq"] < len(lines)
    before = full_compute(data.events.filter(old), data.trait_updates, definitions,
                          T - timedelta(hours=2))  # fmt: skip
    got = refresh(data.events, data.trait_updates, definitions, T, before.state)
    want = full_compute(data.events, data.trait_updates, definitions, T)
    assert got.mode == "incremental"
    assert 0 < got.profiles_recomputed < want.tables["user_traits"].height
    for name in ("memberships", "user_traits"):
        assert_frame_equal(got.tables[name], want.tables[name])
    assert want.tables["memberships"].height == 30


def test_explain_text_shows_windows_and_buckets() -> None:
    from audience_pipeline.explain.render import render

    window = {"asks": "none in the last `within`", "after": "2026-02-22T12:00:00Z",
              "until": "2026-03-01T12:00:00Z", "matching_events": 2, "needs": "none",
              "held": False}  # fmt: skip
    explanation = {
        "audience": "a", "level": "user", "name": "A", "entity_id": "p1",
        "as_of": "2026-03-01T12:00:00Z", "member": False,
        "condition": {"type": "all", "held": False, "children_held": 1, "children": [
            {"type": "stopped", "held": False, "event": EVENT, "windows": [window],
             "reason": "fails: none in the last `within` (2 matching events, needs none)"},
            {"type": "sample", "held": True, "salt": "s", "from": 0.0, "to": 12.5,
             "anchor": "user_id:u1", "bucket": 77, "reason": "bucket 77 is inside [0, 1250)"},
        ]},
    }  # fmt: skip
    text = render(explanation)
    assert "stopped Order Completed: fails" in text
    assert "2 matching events in (2026-02-22T12:00:00Z, 2026-03-01T12:00:00Z], needs none" in text
    assert "sample 's' [0%, 12.5%): anchor user_id:u1, bucket 77 is inside [0, 1250)" in text
