"""Day by day with random identities: a refresh that continues identity from the previous
profiles (`delta.identity`) and orders its passes from the state's ties (`delta.ties`) equals
a full run.

Each day lands one file of random messages over a small pool of identifiers (so identifies and
aliases merge profiles of earlier days, limits bite, a previousId was seen before under one or
two types), with timestamps on whole seconds (so messages share timestamps: messageIds decide)
and, on some days, a late message (its time before the previous as-of: the refresh resolves the
touched components again). Every refresh, from the state the one before saved, equals
`compute` on the same messages; most take the continued path.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from audience_pipeline.delta.identity import _UNSURE, first_types
from audience_pipeline.engine.source import scan_events
from audience_pipeline.identity import resolve_sequential
from audience_pipeline.incremental import TABLES, full_compute, load_state, refresh, save_state
from audience_pipeline.ingest import ingest, write_normalized
from audience_pipeline.spec.models import Definitions
from tests.support.definitions import write_definitions

D0 = datetime(2026, 2, 1, tzinfo=UTC)
DAY = timedelta(days=1)
SPACE = {
    "space": "continued",
    "timezone": "UTC",
    "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "email", "from": "traits.email", "limit": 2},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 3},
    ],
}
ORDER = "Order Completed"
TRAITS: list[dict[str, Any]] = [
    {"key": "orders_2d", "kind": "count", "event": ORDER, "within": "2d"},
    {"key": "first_total", "kind": "first", "event": ORDER, "property": "total"},
    {"key": "last_total", "kind": "last", "event": ORDER, "property": "total", "within": "3d"},
    {"key": "top", "kind": "most_frequent", "event": ORDER, "property": "total"},
    {"key": "totals", "kind": "unique_list", "event": ORDER, "property": "total"},
    {
        "key": "acct_last",
        "level": "account",
        "kind": "last",
        "event": ORDER,
        "property": "total",
    },  # fmt: skip
]
AUDIENCES: list[dict[str, Any]] = [
    {"key": "bought_1d", "condition": {"event": ORDER, "within": "1d"}},
    {"key": "known", "include_anonymous": False, "condition": {"event": ORDER}},
    {
        "key": "funnel",
        "condition": {
            "funnel": {"steps": [{"event": "Page Viewed"}, {"event": ORDER}], "within": "2d"}
        },  # fmt: skip
    },
    {"key": "first_order", "condition": {"first_time": {"event": ORDER, "within": "1d"}}},
    {
        "key": "busy",
        "level": "account",
        "condition": {"users": "any", "condition": {"event": ORDER, "within": "2d"}},
    },
]

USERS, EMAILS, ANONS = ["u1", "u2", "u3"], ["e1@x", "e2@x", "e3@x"], ["a1", "a2", "a3", "a4"]


def _definitions(root: Path) -> Definitions:
    return write_definitions(root, SPACE, TRAITS, AUDIENCES)


@st.composite
def _message(draw: st.DrawFn, day: int, line: int, late: bool) -> dict[str, Any]:
    """One message of `day` (or, `late`, of the day before), on a whole second of a few."""
    base = D0 + (day - 1 if late else day) * DAY
    ts = base + timedelta(hours=draw(st.sampled_from([1, 5, 9, 20])),
                          seconds=draw(st.integers(0, 2)))  # fmt: skip
    kind = draw(st.sampled_from(["track", "track", "page", "identify", "alias", "group"]))
    who: dict[str, Any] = {}
    if draw(st.booleans()):
        who["userId"] = draw(st.sampled_from(USERS))
    if kind == "alias":
        who["userId"] = draw(st.sampled_from(USERS))
        # A previousId seen before as an anonymousId, a userId, or never.
        who["previousId"] = draw(st.sampled_from([*ANONS, *USERS, "fresh-id"]))
    elif draw(st.booleans()) or not who:
        who["anonymousId"] = draw(st.sampled_from(ANONS))
    message: dict[str, Any] = {"type": kind, "messageId": f"m{draw(st.integers(0, 9))}-{line}",
                               "timestamp": ts.isoformat(), **who}  # fmt: skip
    if kind == "identify" and draw(st.booleans()):
        message["traits"] = {"email": draw(st.sampled_from(EMAILS))}
    if kind == "track":
        message["event"] = ORDER
        message["properties"] = {"total": draw(st.sampled_from([1, 2, 3]))}
    if kind == "page":
        message["name"] = "Page Viewed"
    if kind == "group":
        message["groupId"] = draw(st.sampled_from(["g1", "g2"]))
    return message


@st.composite
def _days(draw: st.DrawFn) -> list[list[dict[str, Any]]]:
    days = []
    for day in range(4):
        count = draw(st.integers(1 if day == 0 else 0, 8))
        late = day > 0 and draw(st.integers(0, 4)) == 0
        messages = [draw(_message(day, 100 * day + i, late and i == 0)) for i in range(count)]
        days.append(messages)
    return days


def _land(events: Path, day: int, messages: list[dict[str, Any]]) -> None:
    lines = (orjson.dumps(m).decode() for m in messages)
    (events / f"day-{day}.jsonl").write_text("".join(f"{line}\n" for line in lines))


def _assert_same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    for name in TABLES:
        assert_frame_equal(got[name], want[name], check_row_order=True), name


CONTINUED: list[int] = []


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(_days())
def test_random_days_equal_full(tmp_path_factory: Any, days: list[list[dict[str, Any]]]) -> None:
    root = tmp_path_factory.mktemp("continued")
    definitions = _definitions(root / "definitions")
    events = root / "events"
    events.mkdir()
    _land(events, 0, days[0])
    data = ingest(events, definitions.space)
    state = full_compute(data.events, data.trait_updates, definitions, D0 + DAY).state
    for day in range(1, len(days)):
        _land(events, day, days[day])
        data = ingest(events, definitions.space)
        write_normalized(data, root / f"normalized-{day}")
        save_state(state, root / f"state-{day}")
        previous = load_state(root / f"state-{day}")
        as_of = D0 + (day + 1) * DAY
        got = refresh(scan_events(root / f"normalized-{day}"), data.trait_updates, definitions,
                      as_of, previous)  # fmt: skip
        want = full_compute(data.events, data.trait_updates, definitions, as_of)
        _assert_same(got.tables, want.tables)
        CONTINUED.append(int(got.stats.get("identity_continued", 0)))
        state = got.state
        # The state's ties are every current message sharing a timestamp, with its messageId.
        assert_frame_equal(state.ties, want.state.ties)  # type: ignore[arg-type]


def test_most_random_days_were_continued() -> None:
    """The property above is about the continued path: most of its refreshes took it."""
    if not CONTINUED:  # run alone
        return
    assert sum(CONTINUED) >= len(CONTINUED) // 3, CONTINUED


def test_a_merge_of_two_days_keeps_the_older_profile(tmp_path: Path) -> None:
    """An identify of day 2 joins an anonymous profile of day 1 (created first) with a known
    one of day 1 (created later): the merged profile keeps the older id, as resolving the
    whole history does, and the refresh continued identity to get there."""
    definitions = _definitions(tmp_path / "definitions")
    events = tmp_path / "events"
    events.mkdir()
    day1 = [
        {"type": "page", "name": "Page Viewed", "anonymousId": "a1", "messageId": "m1",
         "timestamp": (D0 + timedelta(hours=1)).isoformat()},
        {"type": "track", "event": ORDER, "userId": "u1", "messageId": "m2",
         "properties": {"total": 3}, "timestamp": (D0 + timedelta(hours=2)).isoformat()},
    ]  # fmt: skip
    day2 = [
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "m3",
         "timestamp": (D0 + DAY + timedelta(hours=1)).isoformat()},
    ]  # fmt: skip
    _land(events, 1, day1)
    data = ingest(events, definitions.space)
    state = full_compute(data.events, data.trait_updates, definitions, D0 + DAY).state
    _land(events, 2, day2)
    data = ingest(events, definitions.space)
    got = refresh(data.events, data.trait_updates, definitions, D0 + 2 * DAY, state)
    want = full_compute(data.events, data.trait_updates, definitions, D0 + 2 * DAY)
    _assert_same(got.tables, want.tables)
    assert got.stats["identity_continued"] == 1
    reference = resolve_sequential(data.events, definitions.space)
    assert got.tables["identities"]["profile_id"].unique().to_list() == (
        reference.identities["profile_id"].unique().to_list()
    )


def test_first_types_are_told_only_when_certain() -> None:
    """A value seen under one type is that type; seen only as previousIds, the fallback; seen
    under two types (or under one and as a previousId, the fallback being another), unsure."""
    links = pl.DataFrame(
        {
            "value": ["a", "a", "b", "c", "c", "d", "d", "e", "e"],
            "id_type": ["anonymous_id", "anonymous_id", None, "user_id", "email",
                        "anonymous_id", None, "user_id", None],
            "profile_id": ["p1", "p2", "p1", "p1", "p2", "p3", "p3", "p4", "p4"],
        }
    )  # fmt: skip
    got = first_types(links, pl.Series(["a", "b", "c", "d", "e", "never"]), "user_id")
    assert got["a"] == "anonymous_id"
    assert got["b"] == "user_id"
    assert got["e"] == "user_id"
    assert got["c"] == got["d"] == _UNSURE
    assert "never" not in got
