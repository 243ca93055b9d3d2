"""Day by day by hand: refreshes across day boundaries equal a full run.

Files land one a day. Events sit exactly on window edges and on the as-of, a late event lands
a day after its timestamp, an event lands before its timestamp, an identify joins an anonymous
profile of one day with a known profile of another, and a new member joins an account. Every
refresh, from the state the one before saved (or with nothing new at all), equals `compute` on
the same messages.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline.engine.source import scan_events
from audience_pipeline.incremental import TABLES, full_compute, load_state, refresh, save_state
from audience_pipeline.ingest import ingest, write_normalized
from audience_pipeline.spec.models import Definitions
from tests.support.definitions import write_definitions

D1 = datetime(2026, 2, 10, tzinfo=UTC)
DAY = timedelta(days=1)

SPACE = {
    "space": "days",
    "timezone": "UTC",
    "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
    ],
}
ORDER = "Order Completed"
TRAITS: list[dict[str, Any]] = [
    {"key": "orders_1d", "kind": "count", "event": ORDER, "within": "1d"},
    {"key": "revenue_7d", "kind": "sum", "event": ORDER, "property": "total", "within": "7d"},
    {"key": "top_2d", "kind": "max", "event": ORDER, "property": "total", "within": "2d"},
    {"key": "low", "kind": "min", "event": ORDER, "property": "total"},
    {"key": "first_page", "kind": "first", "event": "Page Viewed", "property": "path"},
    {"key": "last_total", "kind": "last", "event": ORDER, "property": "total", "within": "3d"},
    {
        "key": "pages_2d",
        "kind": "unique_count",
        "event": "Page Viewed",
        "property": "path",
        "within": "2d",
    },
    {
        "key": "account_orders_2d",
        "level": "account",
        "kind": "count",
        "event": ORDER,
        "within": "2d",
    },
]
AUDIENCES: list[dict[str, Any]] = [
    {"key": "ordered_today", "condition": {"event": ORDER, "within": "1d"}},
    {
        "key": "stopped_ordering",
        "condition": {"stopped": {"event": ORDER, "within": "1d", "before": "2d"}},
    },
    {"key": "first_order", "condition": {"first_time": {"event": ORDER, "within": "1d"}}},
    {"key": "between", "condition": {"event": "Page Viewed", "between": ["1d", "2d"]}},
    {
        "key": "busy_account",
        "level": "account",
        "condition": {"users": "any", "condition": {"event": ORDER, "within": "1d"}},
    },
]


def _message(kind: str, ts: datetime, line: int, **fields: Any) -> dict[str, Any]:
    """A message; `line` is unique over all files (a repeated messageId is a duplicate)."""
    return {"type": kind, "messageId": f"m{line}", "timestamp": ts.isoformat(), **fields}


def _order(who: dict[str, str], ts: datetime, line: int, total: float) -> dict[str, Any]:
    return _message("track", ts, line, event=ORDER, properties={"total": total}, **who)


def _page(who: dict[str, str], ts: datetime, line: int, path: str) -> dict[str, Any]:
    return _message("page", ts, line, name="Page Viewed", properties={"path": path}, **who)


A1, U1, U2, U3, U4 = (
    {"anonymousId": "a1"},
    {"userId": "u1"},
    {"userId": "u2"},
    {"userId": "u3"},
    {"userId": "u4"},
)

# The file that lands on each day (its messages' timestamps may lie in the past or future).
FILES: dict[int, list[dict[str, Any]]] = {
    1: [
        _order(A1, D1 - DAY, 11, 10),  # exactly on the 1d edge at D1: outside; gone on D2 anyway
        _page(A1, D1 - DAY / 2, 12, "/home"),
        _message("identify", D1 - 2 * DAY, 13, traits={"plan": "pro"}, **U1),
        _order(U1, D1 - DAY * 3, 14, 50),  # on the 3d edge of last_total at D1
        _message("group", D1 - 5 * DAY, 15, groupId="g1", **U2),
        _order(U2, D1 - 7 * DAY, 16, 70),  # on the 7d edge at D1
        _order(U3, D1, 17, 30),  # exactly at the as-of: inside
        _page(U3, D1 - 2 * DAY, 18, "/edge"),  # on the 2d edge at D1
        _order(U2, D1 + DAY / 2, 19, 99),  # in the future at D1, inside on D2
    ],
    2: [
        _message("identify", D1 + DAY / 4, 21, **A1, **U1),  # joins a1 (day 1) with u1
        _order(U2, D1 - DAY / 12, 22, 5),  # late: its time lies before the previous as-of
        _message("group", D1 + DAY / 3, 23, groupId="g1", **U4),  # a new member of g1
        _order(U4, D1 + DAY, 24, 12),  # exactly at D2
        _page(U1, D1 + DAY - timedelta(microseconds=1), 25, "/late-night"),
    ],
    3: [
        _order(U3, D1 + DAY * 3 / 2, 31, 1),
        _message("identify", D1 + DAY * 3 / 2, 32, traits={"plan": "free"}, **U1),
    ],
}


def _definitions(root: Path) -> Definitions:
    return write_definitions(root, SPACE, TRAITS, AUDIENCES)


def _land(events: Path, day: int) -> None:
    lines = (orjson.dumps(m).decode() for m in FILES[day])
    (events / f"day-{day}.jsonl").write_text("\n".join(lines) + "\n")


def _assert_same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    for name in TABLES:
        assert_frame_equal(got[name], want[name], check_row_order=True), name


# (day a file lands or None, as-of) for each run after the first (day 1, as of D1).
RUNS = [
    (2, D1 + DAY),  # the next day: a join, a late event, a new member
    (None, D1 + 2 * DAY),  # no new file: only windows slide
    (3, D1 + 2 * DAY + timedelta(hours=7)),  # an as-of off the day boundary
    (None, D1 + 2 * DAY + timedelta(hours=7)),  # the same as-of again
    (None, D1 + 6 * DAY),  # several days at once
]


@pytest.mark.parametrize("source", ["frame", "state on disk", "scan"])
def test_day_by_day_equals_full(tmp_path: Path, source: str) -> None:
    """`frame`: events and state in memory; `state on disk`: each state saved and loaded;
    `scan`: the events as a scan of normalized Parquet too (what the CLI hands a refresh)."""
    definitions = _definitions(tmp_path / "definitions")
    events = tmp_path / "events"
    events.mkdir()
    _land(events, 1)
    data = ingest(events, definitions.space)
    state = full_compute(data.events, data.trait_updates, definitions, D1).state
    recomputed = []
    for run, (day, as_of) in enumerate(RUNS):
        if day is not None:
            _land(events, day)
            data = ingest(events, definitions.space)
        frame: pl.DataFrame | pl.LazyFrame = data.events
        if source != "frame":
            save_state(state, tmp_path / "state")
            loaded = load_state(tmp_path / "state")
            assert loaded is not None
            state = loaded
        if source == "scan":
            write_normalized(data, tmp_path / f"normalized-{run}")
            frame = scan_events(tmp_path / f"normalized-{run}")
        got = refresh(frame, data.trait_updates, definitions, as_of, state)
        want = full_compute(data.events, data.trait_updates, definitions, as_of)
        assert got.mode == "incremental", got.reason
        _assert_same(got.tables, want.tables)
        recomputed.append(got.profiles_recomputed)
        state = got.state
    # The join of day 2 left one profile of a1 and u1; the same as-of again recomputes nothing.
    assert recomputed[3] == 0
    profiles = state.tables["identities"].group_by("profile_id").agg(pl.col("id_value"))
    joined = profiles.filter(pl.col("id_value").list.contains("a1"))["id_value"].to_list()
    assert sorted(joined[0]) == ["a1", "u1"]


def test_full_run_from_a_scan_equals_one_from_a_frame(tmp_path: Path) -> None:
    """Without a usable state, a refresh handed a scan computes in full from it (a bucket of
    profiles at a time) and leaves the same tables and state as from the frame."""
    definitions = _definitions(tmp_path / "definitions")
    events = tmp_path / "events"
    events.mkdir()
    for day in FILES:
        _land(events, day)
    data = ingest(events, definitions.space)
    write_normalized(data, tmp_path / "normalized")
    as_of = D1 + 2 * DAY
    got = refresh(scan_events(tmp_path / "normalized"), data.trait_updates, definitions, as_of,
                  None)  # fmt: skip
    want = full_compute(data.events, data.trait_updates, definitions, as_of)
    assert (got.mode, got.reason) == ("full", "no previous state")
    _assert_same(got.tables, want.tables)
    assert_frame_equal(got.state.messages, want.state.messages)
    assert got.state.links is not None and want.state.links is not None
    assert_frame_equal(got.state.links, want.state.links, check_row_order=False)
