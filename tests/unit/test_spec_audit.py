"""Independent SPEC audit: tiny cases whose answers were derived by hand from SPEC's text.

Each test runs the real CLI entry point (`audience_pipeline.cli.main`, the function behind the
`audience-pipeline` console script) on a handful of events and reads the Parquet outputs. The
expected answers come from SPEC (sections 1-6 and 5a), not from the engine or the reference
evaluator. Disagreements are kept as strict xfails with the difference in the reason.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from audience_pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]
AS_OF = datetime(2026, 1, 10, tzinfo=UTC)
AS_OF_TEXT = "2026-01-10T00:00:00Z"

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

PRIORITY = ("user_id", "email", "anonymous_id")
# SPEC_AUDIT_ENGINE=duckdb runs every case through `compute --engine duckdb` instead.
ENGINE = os.environ.get("SPEC_AUDIT_ENGINE", "polars")


def ts(days: float = 0, seconds: float = 0, base: datetime = AS_OF) -> str:
    """ISO text of `base - days - seconds` (UTC, with Z)."""
    moment = base - timedelta(days=days, seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


_counter = iter(range(1, 10_000_000))


def track(
    user: str | None,
    event: str,
    at: str,
    props: dict[str, Any] | None = None,
    mid: str | None = "auto",
    **extra: Any,
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "track", "event": event, "timestamp": at}
    if user is not None:
        message["userId"] = user
    if props is not None:
        message["properties"] = props
    if mid == "auto":
        message["messageId"] = f"auto-{next(_counter):07d}"
    elif mid is not None:
        message["messageId"] = mid
    message.update(extra)
    return message


def identify(user: str | None, at: str, traits: dict[str, Any], **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "type": "identify",
        "timestamp": at,
        "traits": traits,
        "messageId": extra.pop("mid", f"auto-{next(_counter):07d}"),
    }
    if user is not None:
        message["userId"] = user
    message.update(extra)
    return message


def group(user: str, group_id: Any, at: str, traits: dict[str, Any] | None = None) -> dict:
    return {
        "type": "group",
        "userId": user,
        "groupId": group_id,
        "timestamp": at,
        "traits": traits or {},
        "messageId": f"auto-{next(_counter):07d}",
    }


@dataclass
class Out:
    """The Parquet tables of one `compute` run, with helpers to name profiles by identifier."""

    tables: dict[str, pl.DataFrame]
    rc: int
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ids = self.tables.get("identities")
        if ids is None:
            return
        best: dict[str, tuple[int, str]] = {}
        for row in ids.iter_rows(named=True):
            rank = PRIORITY.index(row["id_type"]) if row["id_type"] in PRIORITY else 99
            cand = (rank, row["id_value"])
            if row["profile_id"] not in best or cand < best[row["profile_id"]]:
                best[row["profile_id"]] = cand
        self.labels = {pid: value for pid, (_, value) in best.items()}

    def profiles(self) -> set[frozenset[str]]:
        """Every profile as its set of `type:value` identifiers."""
        groups: dict[str, set[str]] = {}
        for row in self.tables["identities"].iter_rows(named=True):
            groups.setdefault(row["profile_id"], set()).add(f"{row['id_type']}:{row['id_value']}")
        return {frozenset(g) for g in groups.values()}

    def members(self, key: str) -> set[str]:
        rows = self.tables["memberships"].filter(pl.col("audience_key") == key)
        return {
            self.labels.get(e, e) if lvl == "user" else e
            for e, lvl in zip(rows["entity_id"], rows["level"], strict=True)
        }

    def user(self, label: str) -> dict[str, Any]:
        """The user_traits row of the profile labelled `label`."""
        for row in self.tables["user_traits"].iter_rows(named=True):
            if self.labels.get(row["profile_id"]) == label:
                return row
        raise KeyError(label)

    def account(self, account_id: str) -> dict[str, Any]:
        for row in self.tables["account_traits"].iter_rows(named=True):
            if row["account_id"] == account_id:
                return row
        raise KeyError(account_id)

    def quarantine(self) -> list[tuple[int, str]]:
        q = self.tables["quarantine"]
        return sorted(zip(q["line"], q["reason"], strict=True))


def write_defs(
    root: Path,
    traits: list[dict[str, Any]] = (),  # type: ignore[assignment]
    audiences: list[dict[str, Any]] = (),  # type: ignore[assignment]
    space: dict[str, Any] | None = None,
) -> Path:
    defs = root / "defs"
    (defs / "traits").mkdir(parents=True, exist_ok=True)
    (defs / "audiences").mkdir(parents=True, exist_ok=True)
    (defs / "space.yaml").write_text(yaml.safe_dump(space or SPACE))
    for t in traits:
        (defs / "traits" / f"{t['key']}.yaml").write_text(yaml.safe_dump(t))
    for a in audiences:
        body = {"name": a["key"], **a}
        (defs / "audiences" / f"{a['key']}.yaml").write_text(yaml.safe_dump(body))
    return defs


def lines_text(lines: list[Any]) -> str:
    return "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"


def compute(
    tmp: Path,
    lines: list[Any] | None = None,
    traits: list[dict[str, Any]] = (),  # type: ignore[assignment]
    audiences: list[dict[str, Any]] = (),  # type: ignore[assignment]
    space: dict[str, Any] | None = None,
    as_of: str = AS_OF_TEXT,
    events: Path | None = None,
    out: Path | None = None,
    defs: Path | None = None,
) -> Out:
    defs = defs or write_defs(tmp, traits, audiences, space)
    if events is None:
        events = tmp / "events.jsonl"
        events.write_text(lines_text(lines or []))
    out = out or tmp / "out"
    rc = main(
        [
            "compute",
            "--definitions", str(defs),
            "--events", str(events),
            "--as-of", as_of,
            "--out", str(out),
            "--engine", ENGINE,
        ]
    )  # fmt: skip
    tables = {p.stem: pl.read_parquet(p) for p in sorted(out.glob("*.parquet"))}
    return Out(tables, rc)


def aud(key: str, condition: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"key": key, "level": "user", "condition": condition, **extra}


def trait(key: str, kind: str, event: Any = "E", **extra: Any) -> dict[str, Any]:
    return {"key": key, "level": "user", "kind": kind, "event": event, **extra}


# ----------------------------------------------------------------------------------------------
# 1. Ingestion
# ----------------------------------------------------------------------------------------------


def test_dedupe_earliest_received_at_wins_over_read_order(tmp_path: Path) -> None:
    """SPEC 1: "the same `messageId` seen twice counts once (the earliest `receivedAt`, then the
    first read, wins)". Two copies with different event names: the later-read copy has the earlier
    receivedAt, so its event name is the one that counts."""
    lines = [
        track("u1", "A", ts(1), mid="dup", receivedAt=ts(0.5)),
        track("u1", "B", ts(1), mid="dup", receivedAt=ts(0.9)),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A"), trait("b", "count", "B")])
    row = out.user("u1")
    assert (row["a"], row["b"]) == (0, 1)


def test_dedupe_copy_with_received_at_beats_copy_without(tmp_path: Path) -> None:
    """SPEC 5a: "dedupe by messageId runs over all valid messages (a copy with a `receivedAt`
    beats one without)"."""
    lines = [
        track("u1", "A", ts(1), mid="dup"),
        track("u1", "B", ts(1), mid="dup", receivedAt=ts(0.5)),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A"), trait("b", "count", "B")])
    row = out.user("u1")
    assert (row["a"], row["b"]) == (0, 1)


def test_dedupe_tie_goes_to_first_read(tmp_path: Path) -> None:
    """SPEC 1: "(the earliest `receivedAt`, then the first read, wins)": equal receivedAt, and two
    copies without, both go to the copy read first."""
    lines = [
        track("u1", "A", ts(1), mid="d1", receivedAt=ts(0.5)),
        track("u1", "B", ts(1), mid="d1", receivedAt=ts(0.5)),
        track("u1", "A", ts(1), mid="d2"),
        track("u1", "B", ts(1), mid="d2"),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A"), trait("b", "count", "B")])
    row = out.user("u1")
    assert (row["a"], row["b"]) == (2, 0)


def test_messages_without_message_id_are_never_deduped(tmp_path: Path) -> None:
    """SPEC 5a: "Messages without a messageId are never deduped." Two identical lines without a
    messageId count twice."""
    line = track("u1", "A", ts(1), mid=None)
    out = compute(tmp_path, [line, line], traits=[trait("a", "count", "A")])
    assert out.user("u1")["a"] == 2


def test_dedupe_runs_before_the_as_of_cut(tmp_path: Path) -> None:
    """SPEC 5a: "dedupe by messageId runs over all valid messages ...; then the as-of cut." The
    winning copy (earliest receivedAt) is after as-of, so the message is gone even though the
    losing copy is before as-of."""
    lines = [
        track("u0", "A", ts(2)),  # keeps a profile around
        track("u1", "A", ts(-1), mid="dup", receivedAt=ts(3)),
        track("u1", "A", ts(1), mid="dup", receivedAt=ts(0.5)),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert {frozenset({"user_id:u0"})} == out.profiles()


def test_dedupe_ignores_quarantined_copies(tmp_path: Path) -> None:
    """SPEC 5a: "unusable lines are quarantined first; dedupe by messageId runs over all valid
    messages". A quarantined copy with an earlier receivedAt does not displace the valid one."""
    lines = [
        {"type": "track", "event": "A", "userId": "u1", "timestamp": "not a time",
         "messageId": "dup", "receivedAt": ts(5)},
        track("u1", "A", ts(1), mid="dup", receivedAt=ts(0.5)),
    ]  # fmt: skip
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert out.user("u1")["a"] == 1
    assert [line for line, _ in out.quarantine()] == [1]


def test_quarantine_reasons_and_blank_lines(tmp_path: Path) -> None:
    """SPEC 1: "A message that cannot be used (not JSON, unknown `type`, no identifier,
    unparseable timestamp, track without `event`, group without `groupId`) ... goes to a
    quarantine table with its raw text, source file, line and reason". SPEC 5a: "Blank lines are
    skipped; a JSON value that is not an object is quarantined." Line numbers are the file's."""
    lines = [
        track("u1", "A", ts(1)),  # 1 ok
        "",  # 2 blank: skipped
        "{not json",  # 3
        "[1, 2]",  # 4 not an object
        '"text"',  # 5 not an object
        {"type": "Track", "event": "A", "userId": "u1", "timestamp": ts(1)},  # 6 unknown type
        {"type": "track", "event": "A", "userId": " Unknown ", "timestamp": ts(1)},  # 7 no id
        {"type": "track", "event": "A", "userId": "u1", "timestamp": "yesterday"},  # 8
        {"type": "track", "userId": "u1", "timestamp": ts(1)},  # 9 track without event
        {"type": "group", "userId": "u1", "groupId": "", "timestamp": ts(1)},  # 10
        {"type": "group", "userId": "u1", "timestamp": ts(1)},  # 11
        {"type": "track", "event": "A", "userId": "u1"},  # 12 no timestamp nor receivedAt
        "   ",  # 13 blank
    ]
    out = compute(tmp_path, lines)
    q = out.tables["quarantine"]
    assert sorted(q["line"].to_list()) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert set(q.columns) >= {"raw", "source", "line", "reason"}
    raw = dict(zip(q["line"], q["raw"], strict=True))
    assert raw[3] == "{not json"
    assert all(Path(s).name == "events.jsonl" for s in q["source"])
    assert out.rc == 0
    reasons = dict(zip(q["line"], q["reason"], strict=True))
    # the six reasons SPEC names are distinct
    assert len({reasons[3], reasons[6], reasons[7], reasons[8], reasons[9], reasons[10]}) == 6


def test_timestamp_fallback_and_offsets(tmp_path: Path) -> None:
    """SPEC 1: "`timestamp` missing → `receivedAt`"; "(ISO-8601, with or without offset; no
    offset means UTC)". SPEC 5a: "Timestamps are what Python's `datetime.fromisoformat` reads."
    `within: 1d` keeps T-1d < t <= T, so only the offsets decide which events count."""
    lines = [
        # missing timestamp: receivedAt = T - 12h -> inside
        {"type": "track", "event": "A", "userId": "u1", "receivedAt": ts(0.5), "messageId": "1"},
        # 2026-01-09T05:00+05:00 is exactly T - 1d -> outside (exclusive)
        track("u1", "A", "2026-01-09T05:00:00+05:00"),
        # 2026-01-09T04:00:01-... : 2026-01-08T23:00:01-01:00 = 2026-01-09T00:00:01Z -> inside
        track("u1", "A", "2026-01-08T23:00:01-01:00"),
        # no offset = UTC: exactly T -> inside; one second later -> after as-of
        track("u1", "A", "2026-01-10T00:00:00"),
        track("u1", "A", "2026-01-10T00:00:01"),
        # space-separated date-time (fromisoformat reads it), 1h before T
        track("u1", "A", "2026-01-09 23:00:00"),
        # date only: midnight UTC = T - 1d exactly -> outside
        track("u1", "A", "2026-01-09"),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A", within="1d")])
    assert out.quarantine() == []
    assert out.user("u1")["a"] == 4


def test_as_of_with_offset(tmp_path: Path) -> None:
    """SPEC 5: "events after T are ignored". As-of given with an offset is the same instant in
    UTC: 2026-01-10T05:00:00+05:00 = 2026-01-10T00:00Z."""
    lines = [track("u1", "A", ts(0)), track("u1", "A", ts(0, -1))]
    out = compute(
        tmp_path, lines, traits=[trait("a", "count", "A")], as_of="2026-01-10T05:00:00+05:00"
    )
    assert out.user("u1")["a"] == 1
    assert out.tables["memberships"].height == 0


def test_page_and_screen_calls_are_events(tmp_path: Path) -> None:
    """SPEC 1: "a page call counts as event `Page Viewed`, a screen call as `Screen Viewed`".
    SPEC 5a: "A page or screen call's `name` fills `properties.name` when the properties lack it;
    `url` and `path` come from `context.page` likewise.\""""
    lines = [
        {"type": "page", "userId": "u1", "name": "Home", "timestamp": ts(3),
         "context": {"page": {"url": "https://x/a", "path": "/a"}}},
        {"type": "page", "userId": "u1", "name": "Home", "timestamp": ts(2),
         "properties": {"name": "Pricing", "path": "/p"},
         "context": {"page": {"url": "https://x/b", "path": "/b"}}},
        {"type": "screen", "userId": "u1", "name": "Cart", "timestamp": ts(1)},
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        traits=[
            trait("pages", "unique_list", "Page Viewed", property="name"),
            trait("paths", "unique_list", "Page Viewed", property="path"),
            trait("first_url", "first", "Page Viewed", property="url"),
            trait("screen", "last", "Screen Viewed", property="name"),
        ],
    )
    row = out.user("u1")
    assert row["pages"] == ["Home", "Pricing"]
    assert row["paths"] == ["/a", "/p"]
    assert row["first_url"] == "https://x/a"
    assert row["screen"] == "Cart"


def test_identify_group_alias_are_not_events(tmp_path: Path) -> None:
    """SPEC 3: "Only track, page and screen calls are events." A track named like a type is an
    event; the identify/group calls are not."""
    lines = [
        identify("u1", ts(1), {"plan": "x"}),
        group("u1", "g1", ts(1)),
        track("u1", "identify", ts(1)),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("n", "count", ["identify", "group", "Identify", "alias"])],
    )
    assert out.user("u1")["n"] == 1


def test_gzip_input(tmp_path: Path) -> None:
    """SPEC 1: "one JSON object per line (`.jsonl`, or `.jsonl.gz`)"."""
    path = tmp_path / "e.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(lines_text([track("u1", "A", ts(1)), track("u1", "A", ts(2))]))
    out = compute(tmp_path, traits=[trait("a", "count", "A")], events=path)
    assert out.user("u1")["a"] == 2


def test_as_of_cut_applies_to_identity(tmp_path: Path) -> None:
    """SPEC 2: "Messages with timestamp <= as-of are taken"; "The universe of user-level audiences
    is every profile with a message at or before as-of". An identify after as-of links nothing."""
    lines = [
        track(None, "A", ts(1), anonymousId="a1"),
        track("u1", "A", ts(1)),
        identify("u1", ts(-1), {}, anonymousId="a1"),
        track("u2", "A", ts(-1)),
    ]
    out = compute(tmp_path, lines, audiences=[aud("all", {"all": []})])
    assert out.profiles() == {frozenset({"anonymous_id:a1"}), frozenset({"user_id:u1"})}
    assert out.members("all") == {"a1", "u1"}


# ----------------------------------------------------------------------------------------------
# 2. Identity
# ----------------------------------------------------------------------------------------------


def test_identifiers_trimmed_lowercased_blocked(tmp_path: Path) -> None:
    """SPEC 2: "Values are trimmed; emails are also lower-cased." "blocked_values ...
    case-insensitive". SPEC 5a: "Integer values become their decimal text; other non-strings are
    dropped." "an email alone is enough"."""
    lines = [
        track(" u1 ", "A", ts(5), context={"traits": {"email": " Ann@X.COM "}}),
        track(None, "A", ts(4), context={"traits": {"email": "ann@x.com"}}, anonymousId="NULL"),
        track(123, "A", ts(3)),  # type: ignore[arg-type]
        track(1.5, "A", ts(3), anonymousId="a15"),  # type: ignore[arg-type]
        track(True, "A", ts(3), anonymousId="aT"),  # type: ignore[arg-type]
        track("None", "A", ts(3), anonymousId="aN"),
    ]
    out = compute(tmp_path, lines)
    assert out.quarantine() == []
    assert out.profiles() == {
        frozenset({"user_id:u1", "email:ann@x.com"}),
        frozenset({"user_id:123"}),
        frozenset({"anonymous_id:a15"}),
        frozenset({"anonymous_id:aT"}),
        frozenset({"anonymous_id:aN"}),
    }


def test_limit_keeps_two_users_sharing_an_email_apart(tmp_path: Path) -> None:
    """SPEC 2: "each next one joins it ... unless the result would hold more than `limit` distinct
    values of some type, in which case that identifier is not linked by this message." A message
    belongs to "the final profile of its highest-priority linked identifier"."""
    lines = [
        identify("u1", ts(3), {"email": "fam@x.com"}),
        identify("u2", ts(2), {"email": "fam@x.com"}),
        track(None, "A", ts(1), context={"traits": {"email": "fam@x.com"}}),
        track("u2", "A", ts(1)),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert out.profiles() == {
        frozenset({"user_id:u1", "email:fam@x.com"}),
        frozenset({"user_id:u2"}),
    }
    assert (out.user("u1")["a"], out.user("u2")["a"]) == (1, 1)


def test_order_is_timestamp_then_message_id(tmp_path: Path) -> None:
    """SPEC 2: "Messages with timestamp <= as-of are taken in order (timestamp, messageId)."
    Same timestamp: messageId "a" (u1) is linked before "b" (u2), although "b" is read first, so
    the shared email goes to u1."""
    lines = [
        identify("u2", ts(1), {"email": "fam@x.com"}, mid="b"),
        identify("u1", ts(1), {"email": "fam@x.com"}, mid="a"),
    ]
    out = compute(tmp_path, lines)
    assert out.profiles() == {
        frozenset({"user_id:u1", "email:fam@x.com"}),
        frozenset({"user_id:u2"}),
    }


def test_unlinked_identifier_creates_no_profile(tmp_path: Path) -> None:
    """SPEC 2: an identifier over the limit "is not linked by this message". With email limit 1,
    the second email of u1 is linked nowhere (no profile holds it)."""
    space = json.loads(json.dumps(SPACE))
    space["identifiers"][1]["limit"] = 1
    lines = [
        identify("u1", ts(3), {"email": "e1@x.com"}),
        identify("u1", ts(2), {"email": "e2@x.com"}),
    ]
    out = compute(tmp_path, lines, space=space)
    assert out.profiles() == {frozenset({"user_id:u1", "email:e1@x.com"})}


def test_merge_through_anonymous_id_and_limit_on_merge(tmp_path: Path) -> None:
    """SPEC 2: "each next one joins it — adding an unseen identifier, or merging the profile that
    owns it — unless the result would hold more than `limit`"; "Profiles only ever merge." a1's
    profile merges into u1's; a2 (already u2's with a user_id) cannot join u1's profile."""
    lines = [
        track(None, "A", ts(5), anonymousId="a1"),
        track(None, "A", ts(5), anonymousId="a2"),
        track("u2", "A", ts(4), anonymousId="a2"),
        track("u1", "A", ts(3), anonymousId="a1"),
        track("u1", "A", ts(2), anonymousId="a2"),  # belongs to u1's profile, a2 not linked
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert out.profiles() == {
        frozenset({"user_id:u1", "anonymous_id:a1"}),
        frozenset({"user_id:u2", "anonymous_id:a2"}),
    }
    assert (out.user("u1")["a"], out.user("u2")["a"]) == (3, 2)


def test_two_emails_in_one_message_and_group_traits_not_read(tmp_path: Path) -> None:
    """SPEC 5a: "Every listed `from` path counts (two different emails in one message are two
    identifiers). `traits.*` paths are not read on group calls (their traits are the
    account's).\""""
    lines = [
        identify("u1", ts(3), {"email": "a@x.com"}, context={"traits": {"email": "b@x.com"}}),
        {"type": "group", "userId": "u2", "groupId": "g1", "timestamp": ts(2),
         "traits": {"email": "acct@x.com"}},
    ]  # fmt: skip
    out = compute(tmp_path, lines)
    assert out.profiles() == {
        frozenset({"user_id:u1", "email:a@x.com", "email:b@x.com"}),
        frozenset({"user_id:u2"}),
    }


def test_alias_links_previous_id_as_first_seen_type(tmp_path: Path) -> None:
    """SPEC 1: "alias call: links `previousId` (as the identifier type it was first seen as;
    `user_id` if never seen) to `userId`"."""
    lines = [
        track(None, "A", ts(5), anonymousId="anon-1"),
        {"type": "alias", "userId": "u1", "previousId": "anon-1", "timestamp": ts(4),
         "messageId": "al1"},
    ]  # fmt: skip
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert out.profiles() == {frozenset({"user_id:u1", "anonymous_id:anon-1"})}
    assert out.user("u1")["a"] == 1


def test_alias_unseen_previous_id_is_a_user_id(tmp_path: Path) -> None:
    """SPEC 1: previousId takes "`user_id` if never seen". With a user_id limit of 2, the two
    user ids end in one profile."""
    space = json.loads(json.dumps(SPACE))
    space["identifiers"][0]["limit"] = 2
    lines = [
        {"type": "alias", "userId": "u1", "previousId": "old-7", "timestamp": ts(4),
         "messageId": "al1"},
    ]  # fmt: skip
    out = compute(tmp_path, lines, space=space)
    assert out.profiles() == {frozenset({"user_id:u1", "user_id:old-7"})}


def test_profile_ids_are_stable(tmp_path: Path) -> None:
    """SPEC 2: "recomputing the same data gives the same ids, and new data changes an id only when
    profiles merge." Adding an unrelated profile keeps u1's id."""
    base = [track("u1", "A", ts(3), anonymousId="a1"), track("u2", "A", ts(3))]
    first = compute(tmp_path / "r1", base)
    again = compute(tmp_path / "r2", base)
    more = compute(tmp_path / "r3", [*base, track("u3", "A", ts(2), anonymousId="a3")])
    ids = {v: k for k, v in first.labels.items()}
    assert ids == {v: k for k, v in again.labels.items()}
    ids_more = {v: k for k, v in more.labels.items()}
    assert ids_more["u1"] == ids["u1"] and ids_more["u2"] == ids["u2"]


# ----------------------------------------------------------------------------------------------
# 3. Custom traits
# ----------------------------------------------------------------------------------------------


def test_custom_traits_latest_non_null_and_traits_beats_context(tmp_path: Path) -> None:
    """SPEC 3: "per top-level key the latest non-null value by (timestamp, messageId)". SPEC 5a:
    "Within one identify call, a key in `traits` overrides `context.traits` even when its value is
    null (then that message gives no value for the key)." Custom traits keep the raw JSON value."""
    lines = [
        identify("u1", ts(5), {"plan": "free", "email": " Ann@X.com ", "n": 1}),
        identify("u1", ts(4), {"plan": None}, context={"traits": {"plan": "pro", "seats": 3}}),
        identify("u1", ts(3), {"n": None}),
        # track context.traits are not custom traits
        track("u1", "A", ts(2), context={"traits": {"plan": "enterprise", "color": "red"}}),
    ]
    out = compute(tmp_path, lines)
    row = out.user("u1")
    assert row["plan"] == "free"
    assert row["seats"] == 3
    assert row["n"] == 1
    assert row["email"] == " Ann@X.com "
    assert row.get("color") is None


def test_custom_trait_ties_by_message_id(tmp_path: Path) -> None:
    """SPEC 3: "the latest non-null value by (timestamp, messageId)": same timestamp, messageId
    "m2" is later than "m1" whatever the read order."""
    lines = [
        identify("u1", ts(1), {"plan": "two"}, mid="m2"),
        identify("u1", ts(1), {"plan": "one"}, mid="m1"),
    ]
    out = compute(tmp_path, lines)
    assert out.user("u1")["plan"] == "two"


def test_computed_trait_shadows_custom_trait(tmp_path: Path) -> None:
    """SPEC 3: "A computed trait shadows a custom trait of the same key." The traits condition
    sees the computed value."""
    lines = [identify("u1", ts(2), {"orders": 100}), track("u1", "Order", ts(1))]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("orders", "count", "Order")],
        audiences=[aud("many", {"traits": "orders >= 50"})],
    )
    assert out.user("u1")["orders"] == 1
    assert out.members("many") == set()


def test_account_custom_traits_and_members(tmp_path: Path) -> None:
    """SPEC 3: "Account traits: the same from group calls' `traits`, per `groupId`." "Account
    members: the profiles that made a group call with that `groupId` at or before as-of." SPEC 5a:
    "`groupId` is the text of its JSON value"."""
    lines = [
        group("u1", 42, ts(3), {"plan": "team"}),
        group("u2", "42", ts(2), {"plan": None, "seats": 10}),
        group("u3", "42", ts(-1), {"plan": "late"}),
        track("u1", "A", ts(1)),
        track("u2", "A", ts(1)),
        track("u3", "A", ts(1)),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("acct_a", "count", "A", level="account")],
    )
    assert out.tables["account_traits"]["account_id"].to_list() == ["42"]
    row = out.account("42")
    assert (row["plan"], row["seats"], row["acct_a"]) == ("team", 10, 2)


# ----------------------------------------------------------------------------------------------
# 3. Computed traits
# ----------------------------------------------------------------------------------------------


def test_within_and_between_edges(tmp_path: Path) -> None:
    """SPEC 5: "`within: D` keeps events with T - D < timestamp <= T; `between: [A, B]` (A < B)
    keeps T - B < timestamp <= T - A"."""
    lines = [
        track("u1", "E", ts(0)),  # T: within yes; between(1d,3d) no
        track("u1", "E", ts(1)),  # T-1d: within(1d) no; between yes
        track("u1", "E", ts(1, -1)),  # T-1d+1s: within yes; between no
        track("u1", "E", ts(3)),  # T-3d: between no
        track("u1", "E", ts(3, -1)),  # T-3d+1s: between yes
        track("u1", "E", ts(0, -1)),  # after T: never
        track("u1", "E", ts(0, 30), props={}),  # T-30s: within yes
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[
            trait("w", "count", within="1d"),
            trait("b", "count", between=["1d", "3d"]),
            trait("m", "count", within="30m"),
            trait("h", "count", within="1h"),
            trait("wk", "count", within="1w"),
            trait("all_time", "count"),
        ],
    )
    row = out.user("u1")
    assert (row["w"], row["b"], row["m"], row["h"], row["wk"], row["all_time"]) == (
        3, 2, 2, 2, 6, 6,
    )  # fmt: skip


def test_sum_avg_min_max_read_numbers(tmp_path: Path) -> None:
    """SPEC 3: "sum, avg, min and max read numbers and skip values that are not". SPEC 5a: "A
    numeric string is exactly `-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?` (no spaces, `+`, `.5`,
    NaN)"."""
    values = [2, "3", "1e1", "-4.5", " 4", "+1", ".5", "NaN", "N/A", True, None, [1], {"a": 1}]
    lines = [track("u1", "E", ts(1), props={"p": v}) for v in values]
    lines.append(track("u1", "E", ts(1), props={}))
    out = compute(
        tmp_path,
        lines,
        traits=[trait(k, k, property="p") for k in ("sum", "avg", "min", "max")],
    )
    row = out.user("u1")
    assert row["sum"] == pytest.approx(10.5)
    assert row["avg"] == pytest.approx(10.5 / 4)
    assert (row["min"], row["max"]) == (-4.5, 10.0)


def test_empty_results(tmp_path: Path) -> None:
    """SPEC 3: "Empty results: count and unique_count are 0, sum is 0, unique_list is an empty
    list, the rest are null.\""""
    kinds = ["count", "sum", "avg", "min", "max", "most_frequent", "first", "last",
             "unique_list", "unique_count"]  # fmt: skip
    lines = [track("u1", "Other", ts(1), props={"p": 5}), track("u1", "E", ts(1), props={"p": "x"})]
    traits = [trait(f"t_{k}", k, property="p") for k in kinds]
    for t in traits:
        if t["kind"] == "count":
            del t["property"]
        t["event"] = "Never"
    out = compute(tmp_path, lines, traits=traits)
    row = out.user("u1")
    assert [row[f"t_{k}"] for k in kinds] == [0, 0, None, None, None, None, None, None, [], 0]


def test_sum_of_only_non_numbers_is_zero(tmp_path: Path) -> None:
    """SPEC 3: "sum is 0" on empty results; sum skips values that are not numbers, so events whose
    values are all non-numeric sum to 0 while avg is null."""
    lines = [track("u1", "E", ts(1), props={"p": "x"})]
    out = compute(tmp_path, lines, traits=[trait("s", "sum", property="p"),
                                            trait("a", "avg", property="p")])  # fmt: skip
    row = out.user("u1")
    assert (row["s"], row["a"]) == (0, None)


def test_most_frequent_min_frequency_ties_and_number_text(tmp_path: Path) -> None:
    """SPEC 3: "`most_frequent` takes the value seen most often, counting only values seen at
    least `min_frequency` times (... default 2 ...); ties go to the smallest value in text order."
    "a number as its shortest decimal text with no `.0` on whole numbers (12 and 12.0 are both
    `12`...)"."""
    ev = []
    # u1: 12, 12.0, "12" -> "12" x3; "b" x3 -> tie, "12" < "b"
    for v in [12, 12.0, "12", "b", "b", "b"]:
        ev.append(track("u1", "E", ts(1), props={"p": v}))
    # u2: every value once -> below default min_frequency 2 -> null
    for v in ["x", "y"]:
        ev.append(track("u2", "E", ts(1), props={"p": v}))
    # u3: true twice, "B" twice, "a" twice: "B" < "a" < "true" in code point order
    for v in [True, True, "a", "a", "B", "B"]:
        ev.append(track("u3", "E", ts(1), props={"p": v}))
    out = compute(
        tmp_path,
        ev,
        traits=[
            trait("mf", "most_frequent", property="p"),
            trait("mf1", "most_frequent", property="p", min_frequency=1),
        ],
    )
    assert out.user("u1")["mf"] == "12"
    assert out.user("u2")["mf"] is None
    assert out.user("u2")["mf1"] == "x"
    assert out.user("u3")["mf"] == "B"


def test_most_frequent_boolean_and_fraction_text(tmp_path: Path) -> None:
    """SPEC 3: "return text: a string as itself, a boolean as `true`/`false`, a number as its
    shortest decimal text ... 0.5 is `0.5`"."""
    ev = [track("u1", "E", ts(1), props={"p": True}) for _ in range(2)]
    ev += [track("u2", "E", ts(1), props={"p": v}) for v in (0.5, 0.50)]
    out = compute(tmp_path, ev, traits=[trait("mf", "most_frequent", property="p")])
    assert out.user("u1")["mf"] == "true"
    assert out.user("u2")["mf"] == "0.5"


def test_unique_list_and_count_as_text(tmp_path: Path) -> None:
    """SPEC 3: "unique_list is sorted in text order. most_frequent, unique_list and unique_count
    compare values as text". 1 and 1.0 are both `1`; code-point order puts "B" before "b"."""
    values = [10, 9, "b", "B", True, 1.0, 1, "1"]
    ev = [track("u1", "E", ts(1), props={"p": v}) for v in values]
    out = compute(
        tmp_path,
        ev,
        traits=[
            trait("ul", "unique_list", property="p"),
            trait("uc", "unique_count", property="p"),
        ],
    )
    row = out.user("u1")
    assert row["ul"] == ["1", "10", "9", "B", "b", "true"]
    assert row["uc"] == 6


def test_first_last_even_null_and_ties_by_message_id(tmp_path: Path) -> None:
    """SPEC 3: "`first`/`last` take the value of the earliest/latest matching event (ties by
    messageId)". SPEC 5a: "the earliest/latest matching event's value, even if that value is
    null"."""
    ev = [
        track("u1", "E", ts(3), props={"p": "early-z"}, mid="z"),
        track("u1", "E", ts(3), props={"p": "early-a"}, mid="a"),
        track("u1", "E", ts(1), props={"q": 1}, mid="c"),  # latest: p missing -> null
        track("u2", "E", ts(2), props={"p": "only"}),
        track("u2", "E", ts(1), props={"p": None}, mid="n"),
    ]
    out = compute(
        tmp_path,
        ev,
        traits=[trait("f", "first", property="p"), trait("l", "last", property="p")],
    )
    assert (out.user("u1")["f"], out.user("u1")["l"]) == ("early-a", None)
    assert (out.user("u2")["f"], out.user("u2")["l"]) == ("only", None)


def test_first_over_mixed_types_is_json_text(tmp_path: Path) -> None:
    """SPEC 5a: "Trait columns hold native values where a trait has one type; first/last over
    mixed JSON types are stored as JSON text.\""""
    ev = [
        track("u1", "E", ts(1), props={"p": 5}),
        track("u2", "E", ts(1), props={"p": "x"}),
        track("u3", "E", ts(1), props={"p": 2.5}),
    ]
    out = compute(
        tmp_path,
        ev,
        traits=[trait("f", "first", property="p"), trait("g", "last", property="p", event="F")],
    )
    col = out.tables["user_traits"].schema["f"]
    assert col == pl.String
    assert [json.loads(out.user(u)["f"]) for u in ("u1", "u2", "u3")] == [5, "x", 2.5]


def test_trait_dtypes_native(tmp_path: Path) -> None:
    """SPEC 5a: "Trait columns hold native values where a trait has one type". A count is a whole
    number, a first over numbers is numeric, unique_list a list of strings."""
    ev = [track("u1", "E", ts(1), props={"p": 3, "s": "a"})]
    out = compute(
        tmp_path,
        ev,
        traits=[
            trait("c", "count"),
            trait("uc", "unique_count", property="s"),
            trait("f", "first", property="p"),
            trait("fs", "first", property="s"),
            trait("ul", "unique_list", property="s"),
            trait("s", "sum", property="p"),
        ],
    )
    schema = out.tables["user_traits"].schema
    assert schema["c"].is_integer() and schema["uc"].is_integer()
    assert schema["f"].is_numeric() and schema["s"].is_numeric()
    assert schema["fs"] == pl.String
    assert schema["ul"] == pl.List(pl.String)


def test_trait_where_and_event_list_and_trait_ref(tmp_path: Path) -> None:
    """SPEC 3: "event: ... a name or a list of names"; "where: optional SQL filter on the event's
    properties". SPEC 5a: "`trait.k` inside a computed trait's `where` names a custom trait.\""""
    ev = [
        identify("u1", ts(5), {"currency": "EUR"}),
        track("u1", "Order", ts(2), props={"currency": "EUR", "revenue": 10}),
        track("u1", "Refund", ts(2), props={"currency": "USD", "revenue": 7}),
        track("u1", "Order", ts(2), props={"currency": "usd", "revenue": 5}),
        track("u1", "Other", ts(2), props={"currency": "EUR", "revenue": 100}),
    ]
    out = compute(
        tmp_path,
        ev,
        traits=[
            trait("home", "sum", ["Order", "Refund"], property="revenue",
                  where="currency = trait.currency"),
            trait("usd", "sum", ["Order", "Refund"], property="revenue", where="currency = 'USD'"),
            trait("iusd", "sum", ["Order", "Refund"], property="revenue",
                  where="currency ILIKE 'usd'"),
        ],
    )  # fmt: skip
    row = out.user("u1")
    assert (row["home"], row["usd"], row["iusd"]) == (10, 7, 12)


def test_trait_property_nested_and_context(tmp_path: Path) -> None:
    """SPEC 5: "nested keys use dots (`address.city`)"; "names starting with `context.` read the
    call's context" (in event conditions)."""
    ev = [
        track("u1", "E", ts(2), props={"address": {"city": "Oslo"}},
              context={"device": {"type": "ios"}}),
        track("u1", "E", ts(1), props={"address": {"city": "Bergen"}},
              context={"device": {"type": "android"}}),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        ev,
        traits=[trait("city", "first", property="address.city")],
        audiences=[
            aud("ios", {"event": "E", "where": "context.device.type = 'ios'"}),
            aud("oslo", {"event": "E", "where": "address.city = 'Oslo'"}),
            aud("web", {"event": "E", "where": "context.device.type = 'web'"}),
        ],
    )
    assert out.user("u1")["city"] == "Oslo"
    assert out.members("ios") == {"u1"} and out.members("oslo") == {"u1"}
    assert out.members("web") == set()


# ----------------------------------------------------------------------------------------------
# 4. Audiences
# ----------------------------------------------------------------------------------------------


def test_event_having_within(tmp_path: Path) -> None:
    """SPEC 4: "its matching events satisfy `having` (default `count(*) >= 1`)"; "`count(*) = 0`
    means "did not perform"". SPEC 5: `within` is exclusive at T - D."""
    ev = [
        track("u1", "Add", ts(1), props={"price": 150}),
        track("u1", "Add", ts(2), props={"price": "120"}),
        track("u2", "Add", ts(1), props={"price": 150}),
        track("u2", "Add", ts(7), props={"price": 150}),  # exactly T-7d: outside
        track("u3", "Other", ts(1)),
    ]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("twice", {"event": "Add", "where": "price > 100", "within": "7d",
                          "having": "count(*) >= 2"}),
            aud("did", {"event": "Add"}),
            aud("never", {"event": "Add", "having": "count(*) = 0"}),
        ],
    )  # fmt: skip
    assert out.members("twice") == {"u1"}
    assert out.members("did") == {"u1", "u2"}
    assert out.members("never") == {"u3"}


def test_having_aggregates_over_no_events_and_counts(tmp_path: Path) -> None:
    """SPEC 4: "(over no events: counts and sum 0, the rest null)". SPEC 5a: "`count(p)` in
    `having` counts non-null values." "`count(distinct p)` compares values as text, like
    unique_count.\""""
    ev = [
        track("u1", "Other", ts(1)),
        track("u2", "E", ts(1), props={"p": 12}),
        track("u2", "E", ts(1), props={"p": 12.0}),
        track("u2", "E", ts(1), props={"p": "12"}),
        track("u2", "E", ts(1), props={"p": None}),
        track("u2", "E", ts(1), props={}),
    ]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("zero_sum", {"event": "E", "having": "sum(p) = 0 AND count(p) = 0"}),
            aud("null_avg", {"event": "E", "having": "avg(p) IS NULL AND max(p) IS NULL"}),
            aud("cnt", {"event": "E", "having": "count(p) = 3 AND count(*) = 5"}),
            aud("distinct", {"event": "E", "having": "count(distinct p) = 1"}),
            aud("sum36", {"event": "E", "having": "sum(p) = 36 AND avg(p) = 12"}),
        ],
    )
    assert out.members("zero_sum") == {"u1"}
    assert out.members("null_avg") == {"u1"}
    assert out.members("cnt") == {"u2"}
    assert out.members("distinct") == {"u2"}
    assert out.members("sum36") == {"u2"}


def test_not_node_is_two_valued_sql_not_is_three_valued(tmp_path: Path) -> None:
    """SPEC 5a: "`not: {traits: "plan = 'free'"}` holds for a profile without a plan,
    `traits: "NOT (plan = 'free')"` does not.\""""
    ev = [
        identify("u1", ts(2), {"plan": "free"}),
        identify("u2", ts(2), {"plan": "pro"}),
        identify("u3", ts(2), {"x": 1}),
    ]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("n2", {"not": {"traits": "plan = 'free'"}}),
            aud("n3", {"traits": "NOT (plan = 'free')"}),
        ],
    )
    assert out.members("n2") == {"u2", "u3"}
    assert out.members("n3") == {"u2"}


def test_all_any_empty_and_universe(tmp_path: Path) -> None:
    """SPEC 5a: "`all: []` holds; `any: []` does not." SPEC 2: "(with `include_anonymous: false`,
    only those holding a user_id or an email)"."""
    ev = [
        track("u1", "E", ts(1)),
        track(None, "E", ts(1), anonymousId="a1"),
        track(None, "E", ts(1), context={"traits": {"email": "e@x.com"}}),
    ]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("everyone", {"all": []}),
            aud("nobody", {"any": []}),
            aud("known", {"all": []}, include_anonymous=False),
            aud("not_known", {"not": {"audience": "known"}}),
        ],
    )
    assert out.members("everyone") == {"u1", "a1", "e@x.com"}
    assert out.members("nobody") == set()
    assert out.members("known") == {"u1", "e@x.com"}
    assert out.members("not_known") == {"a1"}


def test_include_anonymous_false_with_not(tmp_path: Path) -> None:
    """SPEC 2: the universe with `include_anonymous: false` is only profiles holding a user_id or
    an email, so a `not:` there cannot reach an anonymous profile."""
    ev = [track("u1", "E", ts(1)), track(None, "F", ts(1), anonymousId="a1")]
    out = compute(
        tmp_path,
        ev,
        audiences=[aud("no_e", {"not": {"event": "E"}}, include_anonymous=False)],
    )
    assert out.members("no_e") == set()


def test_traits_sql_over_custom_and_computed(tmp_path: Path) -> None:
    """SPEC 4: "`traits: "SQL"` the SQL boolean holds over the entity's custom and computed
    traits"."""
    ev = [
        identify("u1", ts(3), {"plan": "business"}),
        track("u1", "Order", ts(1), props={"revenue": 600}),
        identify("u2", ts(3), {"plan": "Business"}),
        track("u2", "Order", ts(1), props={"revenue": 600}),
        identify("u3", ts(3), {"plan": "business"}),
        track("u3", "Order", ts(1), props={"revenue": 500}),
    ]
    out = compute(
        tmp_path,
        ev,
        traits=[trait("rev", "sum", "Order", property="revenue", within="90d")],
        audiences=[aud("big", {"traits": "plan = 'business' AND rev > 500"})],
    )
    assert out.members("big") == {"u1"}


def test_audience_refs_and_cycles(tmp_path: Path) -> None:
    """SPEC 4: "`audience: KEY` the entity is a member of that audience (same level; cycles are an
    error)". SPEC 6: "Exit status is non-zero with a clear message on invalid definitions"."""
    ev = [track("u1", "E", ts(1)), track("u2", "F", ts(1))]
    out = compute(
        tmp_path / "ok",
        ev,
        audiences=[aud("e", {"event": "E"}), aud("not_e", {"not": {"audience": "e"}})],
    )
    assert out.members("not_e") == {"u2"}
    defs = write_defs(
        tmp_path / "bad",
        audiences=[aud("x", {"audience": "y"}), aud("y", {"audience": "x"})],
    )
    rc = main(["validate", "--definitions", str(defs)])
    assert rc != 0


def test_expression_rejections(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SPEC 5: "Anything else — subqueries, other functions, statements — is rejected when
    definitions are validated, with the file, the key and the offending text.\""""
    defs = write_defs(
        tmp_path,
        audiences=[
            aud("sub", {"traits": "plan IN (SELECT 1)"}),
            aud("fn", {"event": "E", "where": "concat(a, b) = 'x'"}),
        ],
        traits=[trait("t", "count", where="now() > 1")],
    )
    rc = main(["validate", "--definitions", str(defs)])
    text = capsys.readouterr()
    assert rc == 1
    msg = (text.out + text.err).lower()
    for piece in ("sub.yaml", "fn.yaml", "t.yaml", "concat", "now", "select"):
        assert piece in msg


def test_numeric_string_comparisons(tmp_path: Path) -> None:
    """SPEC 5: "Compared with a number, a value is read as a number (a numeric string is read as
    its number; anything else gives null); compared with a string, as a string (a number as its
    text...); booleans as booleans." SPEC 5a: "`coalesce(price, 0) < 100` with price "N/A" is
    `0 < 100`.\""""
    cases = {
        "u1": {"price": "150"},
        "u2": {"price": "N/A"},
        "u3": {"price": 12.0, "zip": 12.0},
        "u4": {"price": " 150"},
        "u5": {"price": True, "flag": True},
        "u6": {"flag": "true"},
    }
    ev = [track(u, "E", ts(1), props=p) for u, p in cases.items()]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("gt", {"event": "E", "where": "price > 100"}),
            aud("co", {"event": "E", "where": "coalesce(price, 0) < 100"}),
            aud("txt", {"event": "E", "where": "zip = '12'"}),
            aud("flag", {"event": "E", "where": "flag = true"}),
            aud("flagstr", {"event": "E", "where": "flag = 'true'"}),
            aud("notgt", {"event": "E", "where": "NOT (price > 100)"}),
        ],
    )
    assert out.members("gt") == {"u1"}
    # u2 "N/A" -> 0; u3 12; u4 " 150" -> 0; u5 boolean -> null as number -> 0; u6 missing -> 0
    assert out.members("co") == {"u2", "u3", "u4", "u5", "u6"}
    assert out.members("txt") == {"u3"}
    assert out.members("flag") == {"u5"}
    # a boolean against a string is null; the string "true" is a string
    assert out.members("flagstr") == {"u6"}
    assert out.members("notgt") == {"u3"}


def test_names_compared_with_each_other(tmp_path: Path) -> None:
    """SPEC 5: "Two names compared with each other compare as numbers when both are numbers, as
    strings when both are strings, else null.\""""
    cases = {
        "u1": {"a": 2, "b": 10},  # numbers: 2 < 10
        "u2": {"a": "2", "b": "10"},  # strings: "2" > "10"
        "u3": {"a": "2", "b": 10},  # mixed: null
    }
    ev = [track(u, "E", ts(1), props=p) for u, p in cases.items()]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("lt", {"event": "E", "where": "a < b"}),
            aud("ge", {"event": "E", "where": "a >= b"}),
        ],
    )
    assert out.members("lt") == {"u1"}
    assert out.members("ge") == {"u2"}


def test_is_null_like_in_between_functions(tmp_path: Path) -> None:
    """SPEC 5: comparisons, `IN`, `BETWEEN`, `LIKE/ILIKE`, `IS [NOT] NULL`, arithmetic and `lower,
    upper, length, coalesce, abs`. SPEC 5a: "`IS NULL` is true for a missing key or JSON null
    only." "Division or modulo by zero gives null.\""""
    cases = {
        "u1": {"name": "Alice", "n": 5, "z": 0},
        "u2": {"name": "alice", "n": None, "z": ""},
        "u3": {"n": -3, "z": 0},
    }
    ev = [track(u, "E", ts(1), props=p) for u, p in cases.items()]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("isnull", {"event": "E", "where": "n IS NULL"}),
            aud("nameless", {"event": "E", "where": "name IS NULL"}),
            aud("empty_not_null", {"event": "E", "where": "z IS NOT NULL"}),
            aud("like", {"event": "E", "where": "name LIKE 'A%'"}),
            aud("ilike", {"event": "E", "where": "name ILIKE 'a_ice'"}),
            aud("inl", {"event": "E", "where": "lower(name) IN ('alice', 'bob')"}),
            aud("btw", {"event": "E", "where": "abs(n) BETWEEN 3 AND 5"}),
            aud("len", {"event": "E", "where": "length(upper(name)) = 5"}),
            aud("div0", {"event": "E", "where": "(n / z) IS NULL"}),
            aud("mod0", {"event": "E", "where": "(n % 0) IS NULL AND n IS NOT NULL"}),
            aud("arith", {"event": "E", "where": "n * 2 + 1 = 11"}),
            aud("case", {"event": "E", "where": "name = 'alice'"}),
        ],
    )
    assert out.members("isnull") == {"u2"}
    assert out.members("nameless") == {"u3"}
    assert out.members("empty_not_null") == {"u1", "u2", "u3"}
    assert out.members("like") == {"u1"}
    assert out.members("ilike") == {"u1", "u2"}
    assert out.members("inl") == {"u1", "u2"}
    assert out.members("btw") == {"u1", "u3"}
    assert out.members("len") == {"u1", "u2"}
    assert out.members("div0") == {"u1", "u2", "u3"}
    assert out.members("mod0") == {"u1", "u3"}
    assert out.members("arith") == {"u1"}
    assert out.members("case") == {"u2"}


def test_event_where_trait_ref(tmp_path: Path) -> None:
    """SPEC 4: "`where` may also name `trait.k`, the entity's trait" (custom or computed)."""
    ev = [
        identify("u1", ts(5), {"fav": "shoes"}),
        track("u1", "View", ts(1), props={"category": "shoes"}),
        identify("u2", ts(5), {"fav": "hats"}),
        track("u2", "View", ts(1), props={"category": "shoes"}),
    ]
    out = compute(
        tmp_path,
        ev,
        traits=[trait("views", "count", "View")],
        audiences=[
            aud("fav", {"event": "View", "where": "category = trait.fav"}),
            aud("cmp", {"event": "View", "where": "trait.views >= 1"}),
        ],
    )
    assert out.members("fav") == {"u1"}
    assert out.members("cmp") == {"u1", "u2"}


def test_funnel_strictly_later_and_step_window(tmp_path: Path) -> None:
    """SPEC 4: "there is a first-step event inside `within` and, for each next step, an event
    strictly after the previous step's event and no later than the step's own `within` after
    it". SPEC 5a: "Funnel steps chain on strictly later timestamps.\""""
    ev = [
        # u1: B at the same instant as A: not strictly after
        track("u1", "A", ts(2)), track("u1", "B", ts(2)),
        # u2: B exactly 1h after A: inside ("no later than")
        track("u2", "A", ts(2)), track("u2", "B", ts(2, -3600)),
        # u3: B 1h + 1s after A: outside
        track("u3", "A", ts(2)), track("u3", "B", ts(2, -3601)),
        # u4: first step outside the funnel's within (exactly T-3d), B inside
        track("u4", "A", ts(3)), track("u4", "B", ts(3, -60)),
        # u5: B before A only
        track("u5", "B", ts(2, 60)), track("u5", "A", ts(2)),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("f", {"funnel": {"within": "3d", "steps": [
                {"event": "A"}, {"event": "B", "within": "1h"}]}}),
        ],
    )  # fmt: skip
    assert out.members("f") == {"u2"}


def test_funnel_parent_ref_and_negative_last_step(tmp_path: Path) -> None:
    """SPEC 4: "the last step may say `performed: false` (no such event). A step's `where` may name
    `parent.p`". SPEC 5a: "A negative last step whose window is still open at as-of holds if no
    such event happened up to as-of.\""""
    ev = [
        # u1: order for another id -> abandoner
        track("u1", "Checkout", ts(2), props={"order_id": "o1"}),
        track("u1", "Order", ts(1.5), props={"order_id": "o2"}),
        # u2: completed within the day -> not
        track("u2", "Checkout", ts(2), props={"order_id": "o1"}),
        track("u2", "Order", ts(1.5), props={"order_id": "o1"}),
        # u3: checkout 1h ago, window open, no order yet -> abandoner
        track("u3", "Checkout", ts(0, 3600), props={"order_id": "o9"}),
        # u4: completed 2 days later (outside 1d) -> abandoner
        track("u4", "Checkout", ts(4), props={"order_id": "o1"}),
        track("u4", "Order", ts(2), props={"order_id": "o1"}),
        # u5: two checkouts, the second one unanswered -> abandoner
        track("u5", "Checkout", ts(3), props={"order_id": "a"}),
        track("u5", "Order", ts(2.9), props={"order_id": "a"}),
        track("u5", "Checkout", ts(2), props={"order_id": "b"}),
        # u6: order at exactly the same time as the checkout -> not strictly after -> abandoner
        track("u6", "Checkout", ts(2), props={"order_id": "s"}),
        track("u6", "Order", ts(2), props={"order_id": "s"}),
    ]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("ab", {"funnel": {"within": "14d", "steps": [
                {"event": "Checkout"},
                {"event": "Order", "where": "order_id = parent.order_id", "within": "1d",
                 "performed": False}]}}),
        ],
    )  # fmt: skip
    assert out.members("ab") == {"u1", "u3", "u4", "u5", "u6"}


def test_funnel_validation(tmp_path: Path) -> None:
    """SPEC 5a: "`performed: false` is allowed on the last step only, and a funnel has at least
    two steps.\""""
    defs = write_defs(
        tmp_path,
        audiences=[
            aud("one", {"funnel": {"steps": [{"event": "A"}]}}),
            aud("mid", {"funnel": {"steps": [{"event": "A", "performed": False},
                                             {"event": "B"}]}}),
        ],
    )  # fmt: skip
    assert main(["validate", "--definitions", str(defs)]) == 1


def test_backfill_false_created_at(tmp_path: Path) -> None:
    """SPEC 4: "backfill: ... false: only events at or after created_at count". SPEC 5a: "limits
    the audience's own event conditions and funnel steps ..., not the computed traits or audiences
    it names. `compute` without a `created_at` uses as-of.\""""
    created = ts(2)
    ev = [
        track("u1", "E", ts(2)),  # exactly created_at: counts
        track("u2", "E", ts(2, 1)),  # a second before: does not
        track("u3", "E", ts(0)),  # exactly as-of
    ]
    out = compute(
        tmp_path,
        ev,
        traits=[trait("n", "count")],
        audiences=[
            aud("nb", {"event": "E"}, backfill=False, created_at=created),
            aud("nb_trait", {"traits": "n >= 1"}, backfill=False, created_at=created),
            aud("nb_default", {"event": "E"}, backfill=False),
            aud("nb_funnel", {"funnel": {"steps": [{"event": "E"}, {"event": "E"}]}},
                backfill=False, created_at=ts(5)),
        ],
    )  # fmt: skip
    assert out.members("nb") == {"u1", "u3"}
    assert out.members("nb_trait") == {"u1", "u2", "u3"}
    assert out.members("nb_default") == {"u3"}
    assert out.members("nb_funnel") == set()


def test_backfill_false_does_not_limit_named_audience(tmp_path: Path) -> None:
    """SPEC 5a: "`backfill: false` limits the audience's own event conditions ..., not the
    computed traits or audiences it names.\""""
    ev = [track("u1", "E", ts(5))]
    out = compute(
        tmp_path,
        ev,
        audiences=[
            aud("did", {"event": "E"}),
            aud("ref", {"audience": "did"}, backfill=False, created_at=ts(1)),
        ],
    )
    assert out.members("ref") == {"u1"}


# ----------------------------------------------------------------------------------------------
# Accounts
# ----------------------------------------------------------------------------------------------


def test_account_audiences_users_any_all_none(tmp_path: Path) -> None:
    """SPEC 4: "`users: any / all / none` + `condition` (account level only): any / every / no
    member profile satisfies the user-level `condition`". SPEC 5a: "The universe of account
    audiences is every groupId with a group call at or before as-of."""
    ev = [
        group("u1", "g1", ts(5)), group("u2", "g1", ts(5)),
        group("u3", "g2", ts(5)),
        group("u4", "g3", ts(5)),
        group("u5", "g4", ts(-1)),  # after as-of: g4 is not an account
        track("u1", "Buy", ts(1)), track("u2", "Buy", ts(1)),
        track("u3", "Look", ts(1)),
        track("u4", "Buy", ts(1)),
        track("u5", "Buy", ts(1)),
    ]  # fmt: skip
    users_buy = {"event": "Buy"}
    out = compute(
        tmp_path,
        ev,
        audiences=[
            {"key": "any_b", "level": "account",
             "condition": {"users": "any", "condition": users_buy}},
            {"key": "all_b", "level": "account",
             "condition": {"users": "all", "condition": users_buy}},
            {"key": "none_b", "level": "account",
             "condition": {"users": "none", "condition": users_buy}},
            {"key": "accts", "level": "account", "condition": {"all": []}},
        ],
    )  # fmt: skip
    assert out.members("accts") == {"g1", "g2", "g3"}
    assert out.members("any_b") == {"g1", "g3"}
    assert out.members("all_b") == {"g1", "g3"}
    assert out.members("none_b") == {"g2"}
    assert set(out.tables["account_traits"]["account_id"]) == {"g1", "g2", "g3"}


def test_account_pooled_events_and_account_trait_ref(tmp_path: Path) -> None:
    """SPEC 5a: "At account level, an `event:` or `funnel:` node outside `users:` runs over the
    pooled events of the account's members, and `trait.k` there is the account's trait.\""""
    ev = [
        group("u1", "g1", ts(5), {"tier": "gold"}), group("u2", "g1", ts(5)),
        group("u3", "g2", ts(5), {"tier": "gold"}),
        identify("u1", ts(5), {"tier": "silver"}),
        track("u1", "Use", ts(1), props={"tier": "gold"}),
        track("u2", "Use", ts(1), props={"tier": "gold"}),
        track("u3", "Use", ts(1), props={"tier": "gold"}),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        ev,
        traits=[trait("uses", "count", "Use", level="account")],
        audiences=[
            {"key": "pooled", "level": "account",
             "condition": {"event": "Use", "where": "tier = trait.tier",
                           "having": "count(*) >= 2"}},
            {"key": "uses2", "level": "account", "condition": {"traits": "uses >= 2"}},
        ],
    )  # fmt: skip
    assert out.members("pooled") == {"g1"}
    assert out.members("uses2") == {"g1"}


def test_users_condition_sees_every_member(tmp_path: Path) -> None:
    """SPEC 5a: "`include_anonymous` applies to user audiences; a `users:` condition sees every
    member"."""
    ev = [
        {"type": "group", "anonymousId": "a1", "groupId": "g1", "timestamp": ts(5),
         "messageId": "g-a1"},
        track(None, "Buy", ts(1), anonymousId="a1"),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        ev,
        audiences=[
            {"key": "any_b", "level": "account",
             "condition": {"users": "any", "condition": {"event": "Buy"}}},
            aud("known_buyers", {"event": "Buy"}, include_anonymous=False),
            {"key": "any_known", "level": "account",
             "condition": {"users": "any", "condition": {"audience": "known_buyers"}}},
        ],
    )  # fmt: skip
    assert out.members("any_b") == {"g1"}
    # "an audience it names keeps its own universe": a1 is not in known_buyers
    assert out.members("any_known") == set()


def test_account_user_memberships(tmp_path: Path) -> None:
    """README/docs tables: `account_user_memberships`: one row per "member profile of a member
    account" (audience_key, account_id, profile_id)."""
    ev = [group("u1", "g1", ts(5)), group("u2", "g1", ts(5)), group("u3", "g2", ts(5)),
          track("u1", "Buy", ts(1))]  # fmt: skip
    out = compute(
        tmp_path,
        ev,
        audiences=[
            {"key": "any_b", "level": "account",
             "condition": {"users": "any", "condition": {"event": "Buy"}}},
        ],
    )  # fmt: skip
    aum = out.tables["account_user_memberships"]
    assert list(aum.columns)[:3] == ["audience_key", "account_id", "profile_id"]
    rows = {(r["audience_key"], r["account_id"], out.labels[r["profile_id"]])
            for r in aum.iter_rows(named=True)}  # fmt: skip
    assert rows == {("any_b", "g1", "u1"), ("any_b", "g1", "u2")}


# ----------------------------------------------------------------------------------------------
# 6. Outputs
# ----------------------------------------------------------------------------------------------


def test_output_tables_columns_and_changes(tmp_path: Path) -> None:
    """SPEC 6: `memberships` (audience_key, level, entity_id, as_of), `membership_changes` (...,
    change `entered`/`exited`, as_of), `membership_history` (..., valid_from, valid_to (null =
    still a member)). A second run in the same DIR diffs against the first."""
    defs = write_defs(tmp_path, audiences=[aud("recent", {"event": "E", "within": "1d"})])
    events = tmp_path / "e.jsonl"
    events.write_text(lines_text([track("u1", "E", ts(0, 60)), track("u2", "E", ts(0, 30))]))
    out_dir = tmp_path / "out"
    first = compute(tmp_path, defs=defs, events=events, out=out_dir)
    expected_cols = {
        "identities": ["profile_id", "id_type", "id_value"],
        "memberships": ["audience_key", "level", "entity_id", "as_of"],
        "membership_changes": ["audience_key", "level", "entity_id", "change", "as_of"],
        "membership_history": ["audience_key", "level", "entity_id", "valid_from", "valid_to"],
        "quarantine": ["raw", "source", "line", "reason"],
        "user_traits": ["profile_id"],
        "account_traits": ["account_id"],
    }
    for table, cols in expected_cols.items():
        assert set(cols) <= set(first.tables[table].columns), table
    assert first.members("recent") == {"u1", "u2"}
    m = first.tables["memberships"]
    assert m["as_of"].dtype == pl.Datetime("us", "UTC")
    assert m["as_of"].to_list() == [AS_OF, AS_OF]
    # second run at T + 1d - 45s: u1 (T-60s) has left the 1d window, u2 (T-30s) has not
    later = AS_OF + timedelta(days=1, seconds=-45)
    second = compute(tmp_path, defs=defs, events=events, out=out_dir, as_of=later.isoformat())
    assert second.members("recent") == {"u2"}
    changes = {(second.labels[r["entity_id"]], r["change"], r["as_of"])
               for r in second.tables["membership_changes"].iter_rows(named=True)}  # fmt: skip
    assert changes == {("u1", "exited", later)}
    hist = {(second.labels[r["entity_id"]], r["valid_from"], r["valid_to"])
            for r in second.tables["membership_history"].iter_rows(named=True)}  # fmt: skip
    assert hist == {("u1", AS_OF, later), ("u2", AS_OF, None)}


def test_empty_events_file(tmp_path: Path) -> None:
    """SPEC 6: `compute` writes the tables above as `DIR/<table>.parquet`; with no events every
    table is there and empty, and the run succeeds."""
    out = compute(
        tmp_path,
        [],
        traits=[trait("c", "count")],
        audiences=[aud("everyone", {"all": []})],
    )
    assert out.rc == 0
    for table in ("identities", "user_traits", "account_traits", "memberships",
                  "membership_changes", "membership_history", "quarantine"):  # fmt: skip
        assert out.tables[table].height == 0, table


def test_console_script_and_parquet_input(tmp_path: Path) -> None:
    """SPEC 1: "Parquet with the same fields is also read." SPEC 6: the `audience-pipeline compute`
    command writes `DIR/<table>.parquet`."""
    frame = pl.DataFrame(
        {
            "type": ["track", "track", "identify"],
            "event": ["E", "E", None],
            "userId": ["u1", "u1", "u1"],
            "messageId": ["m1", "m1", "m2"],
            "timestamp": [ts(1), ts(1), ts(2)],
            "properties": [{"p": 1}, {"p": 1}, None],
            "traits": [None, None, {"plan": "pro"}],
        }
    )
    events = tmp_path / "events.parquet"
    frame.write_parquet(events)
    defs = write_defs(tmp_path, traits=[trait("s", "sum", property="p")])
    # `python -m audience_pipeline.cli` is the console script's `main`, run from this checkout
    # (another checkout may own the installed `audience-pipeline` script).
    cmd = [sys.executable, "-m", "audience_pipeline.cli", "compute",
           "--definitions", str(defs), "--events", str(events), "--as-of", AS_OF_TEXT,
           "--out", str(tmp_path / "out")]  # fmt: skip
    done = subprocess.run(
        cmd, capture_output=True, text=True, check=False, cwd=REPO, env={**os.environ,
        "PYTHONPATH": str(REPO)}
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tables = {p.stem: pl.read_parquet(p) for p in (tmp_path / "out").glob("*.parquet")}
    out = Out(tables, 0)
    row = out.user("u1")
    assert (row["s"], row["plan"]) == (1, "pro")


# ----------------------------------------------------------------------------------------------
# Harder corners
# ----------------------------------------------------------------------------------------------


def test_dedupe_received_at_compared_as_instants(tmp_path: Path) -> None:
    """SPEC 1: "the earliest `receivedAt` ... wins"; timestamps carry offsets. 10:00+05:00 is
    05:00Z, earlier than 06:00Z although its text sorts later."""
    lines = [
        track("u1", "A", ts(1), mid="dup", receivedAt="2026-01-09T06:00:00Z"),
        track("u1", "B", ts(1), mid="dup", receivedAt="2026-01-09T10:00:00+05:00"),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A"), trait("b", "count", "B")])
    row = out.user("u1")
    assert (row["a"], row["b"]) == (0, 1)


def test_first_last_order_by_instant_not_text(tmp_path: Path) -> None:
    """SPEC 3: "`first`/`last` take the value of the earliest/latest matching event"; SPEC 1:
    timestamps with offsets. 2026-01-09T10:00+05:00 (05:00Z) is before 2026-01-09T06:00Z."""
    lines = [
        track("u1", "E", "2026-01-09T06:00:00Z", props={"p": "late"}),
        track("u1", "E", "2026-01-09T10:00:00+05:00", props={"p": "early"}),
        track("u1", "E", "2026-01-09T05:30:00.000001", props={"p": "naive-mid"}),
    ]
    out = compute(
        tmp_path,
        lines,
        traits=[trait("f", "first", property="p"), trait("l", "last", property="p")],
    )
    row = out.user("u1")
    assert (row["f"], row["l"]) == ("early", "late")


def test_microsecond_window_edge(tmp_path: Path) -> None:
    """SPEC 5: "`within: D` keeps events with T - D < timestamp <= T". One microsecond after
    T - 1d is inside; one microsecond after T is outside."""
    lines = [
        track("u1", "E", "2026-01-09T00:00:00.000001Z"),
        track("u1", "E", "2026-01-09T00:00:00.000000Z"),
        track("u1", "E", "2026-01-10T00:00:00.000001+00:00"),
    ]
    out = compute(tmp_path, lines, traits=[trait("w", "count", within="1d")])
    assert out.user("u1")["w"] == 1


def test_numeric_timestamp_is_quarantined(tmp_path: Path) -> None:
    """SPEC 5a: "A `timestamp` that is present but unreadable quarantines the message; only a
    missing one falls back to `receivedAt`. Timestamps are what Python's `datetime.fromisoformat`
    reads." Epoch seconds are not read by fromisoformat."""
    lines = [
        {"type": "track", "event": "A", "userId": "u1", "timestamp": 1767916800,
         "receivedAt": ts(1)},
        track("u1", "A", ts(1)),
    ]  # fmt: skip
    out = compute(tmp_path, lines)
    assert [line for line, _ in out.quarantine()] == [1]


def test_limit_on_merge_counts_both_profiles(tmp_path: Path) -> None:
    """SPEC 2: a merge happens "unless the result would hold more than `limit` distinct values of
    some type". With anonymous_id limited to 2, e1's profile {a1} can take a2's profile but then
    not a3's."""
    space = json.loads(json.dumps(SPACE))
    space["identifiers"][2]["limit"] = 2
    email = {"traits": {"email": "e1@x.com"}}
    lines = [
        track(None, "A", ts(5), anonymousId="a1", context=email),
        track(None, "A", ts(4.9), anonymousId="a2"),
        track(None, "A", ts(4.8), anonymousId="a3"),
        track(None, "A", ts(3), anonymousId="a2", context=email),
        track(None, "A", ts(2), anonymousId="a3", context=email),
    ]
    out = compute(tmp_path, lines, space=space, traits=[trait("a", "count", "A")])
    assert out.profiles() == {
        frozenset({"email:e1@x.com", "anonymous_id:a1", "anonymous_id:a2"}),
        frozenset({"anonymous_id:a3"}),
    }
    # the last message belongs to e1's profile (its highest-priority linked identifier)
    assert out.user("e1@x.com")["a"] == 4
    assert out.user("a3")["a"] == 1


def test_same_type_identifiers_linked_by_value(tmp_path: Path) -> None:
    """SPEC 2: "Each message's identifiers ... are linked in priority order, then by value".
    With email limited to 1, of two emails in one message the smaller value is linked."""
    space = json.loads(json.dumps(SPACE))
    space["identifiers"][1]["limit"] = 1
    lines = [
        identify("u1", ts(2), {"email": "b@x.com"}, context={"traits": {"email": "a@x.com"}}),
    ]
    out = compute(tmp_path, lines, space=space)
    assert out.profiles() == {frozenset({"user_id:u1", "email:a@x.com"})}


def test_integer_and_string_user_id_are_one_identifier(tmp_path: Path) -> None:
    """SPEC 5a: "Integer values become their decimal text". 12 and "12" are one user_id."""
    lines = [
        track(12, "A", ts(2)),  # type: ignore[arg-type]
        track("12", "A", ts(1)),
        track(-7, "A", ts(1)),  # type: ignore[arg-type]
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert out.profiles() == {frozenset({"user_id:12"}), frozenset({"user_id:-7"})}
    assert out.user("12")["a"] == 2


def test_big_integer_user_id_is_its_decimal_text(tmp_path: Path) -> None:
    """SPEC 5a: "Integer values become their decimal text; other non-strings are dropped." JSON
    integers have no size limit; 2**64 is an integer."""
    big = 18446744073709551616
    out = compute(tmp_path, [track(big, "A", ts(1))])  # type: ignore[arg-type]
    assert out.quarantine() == []
    assert out.profiles() == {frozenset({f"user_id:{big}"})}


def test_a_float_user_id_as_large_stays_dropped(tmp_path: Path) -> None:
    """SPEC 5a: "other non-strings are dropped": 1.8446744073709552e19 written as a float."""
    line = '{"type":"track","event":"A","userId":1.8446744073709552e19,"timestamp":"2026-01-09T00:00:00Z"}'
    out = compute(tmp_path, [line])
    assert [reason for *_, reason in out.quarantine()] == ["no identifier"]


def test_custom_blocked_values_case_insensitive_after_trim(tmp_path: Path) -> None:
    """SPEC 2: "blocked_values: [...] # case-insensitive"; "Values are trimmed"."""
    space = json.loads(json.dumps(SPACE))
    space["blocked_values"] = ["N/A", "Test@Example.com"]
    lines = [
        track(" n/a ", "A", ts(2), anonymousId="a1"),
        track(
            None, "A", ts(2), anonymousId="a2", context={"traits": {"email": "TEST@example.COM"}}
        ),
        track("0", "A", ts(2)),  # not blocked in this space
    ]
    out = compute(tmp_path, lines, space=space)
    assert out.profiles() == {
        frozenset({"anonymous_id:a1"}),
        frozenset({"anonymous_id:a2"}),
        frozenset({"user_id:0"}),
    }


def test_group_call_context_traits_email_is_identifier(tmp_path: Path) -> None:
    """SPEC 1: "`context.traits`: traits carried on any call (an email found here is an
    identifier)"; SPEC 5a: only "`traits.*` paths are not read on group calls"."""
    lines = [
        {"type": "group", "anonymousId": "a1", "groupId": "g1", "timestamp": ts(2),
         "context": {"traits": {"email": "x@y.com"}}, "traits": {"email": "acct@y.com"}},
    ]  # fmt: skip
    out = compute(tmp_path, lines)
    assert out.profiles() == {frozenset({"email:x@y.com", "anonymous_id:a1"})}
    assert out.account("g1")["email"] == "acct@y.com"


def test_account_member_through_merged_profile(tmp_path: Path) -> None:
    """SPEC 3: "Account members: the profiles that made a group call with that `groupId`"; SPEC 2:
    "A message belongs to the final profile". The anonymous group call belongs to u1's profile."""
    lines = [
        {"type": "group", "anonymousId": "a1", "groupId": "g1", "timestamp": ts(5),
         "messageId": "g"},
        identify("u1", ts(3), {}, anonymousId="a1"),
        track("u1", "Buy", ts(1)),
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        traits=[trait("buys", "count", "Buy", level="account")],
        audiences=[{"key": "acc", "level": "account",
                    "condition": {"users": "all", "condition": {"event": "Buy"}}}],
    )  # fmt: skip
    assert out.account("g1")["buys"] == 1
    assert out.members("acc") == {"g1"}


def test_custom_trait_mixed_types_and_nested(tmp_path: Path) -> None:
    """SPEC 5a: "Trait columns hold native values where a trait has one type"; SPEC 5: "nested
    keys use dots (`address.city`)" in `traits:` conditions."""
    lines = [
        identify("u1", ts(2), {"plan": "pro", "address": {"city": "Oslo"}, "vip": True}),
        identify("u2", ts(2), {"plan": 5, "address": {"city": "Rome"}, "vip": "true"}),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("oslo", {"traits": "address.city = 'Oslo'"}),
            aud("vip", {"traits": "vip = true"}),
            aud("pro", {"traits": "plan = 'pro'"}),
            aud("five", {"traits": "plan = 5"}),
        ],
    )
    assert out.members("oslo") == {"u1"}
    assert out.members("vip") == {"u1"}
    assert out.members("pro") == {"u1"}
    assert out.members("five") == {"u2"}
    schema = out.tables["user_traits"].schema
    assert schema["plan"] == pl.String
    assert json.loads(out.user("u2")["plan"]) == 5
    assert json.loads(out.user("u1")["plan"]) == "pro"


def test_funnel_searches_every_chain(tmp_path: Path) -> None:
    """SPEC 4: "there is a first-step event ... and, for each next step, an event strictly after
    the previous step's event". Any chain will do: the first A does not match B's `parent.` filter,
    the second does. Three steps chain on each step's own `within`, and `parent.context.x` reads
    the previous step's context."""
    lines = [
        track("u1", "A", ts(3), props={"sku": "x"}),
        track("u1", "A", ts(2.5), props={"sku": "y"}),
        track("u1", "B", ts(2), props={"sku": "y"}, context={"campaign": {"source": "ads"}}),
        track("u1", "C", ts(1.5), context={"campaign": {"source": "ads"}}),
        track("u2", "A", ts(3), props={"sku": "y"}),
        track("u2", "B", ts(2), props={"sku": "y"}, context={"campaign": {"source": "ads"}}),
        track("u2", "C", ts(0.9), context={"campaign": {"source": "ads"}}),  # 1.1d after B
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("f", {"funnel": {"within": "7d", "steps": [
                {"event": "A"},
                {"event": "B", "where": "sku = parent.sku", "within": "1d"},
                {"event": "C", "where": "context.campaign.source = parent.context.campaign.source",
                 "within": "1d"}]}}),
        ],
    )  # fmt: skip
    assert out.members("f") == {"u1"}


def test_negative_step_open_window_and_as_of(tmp_path: Path) -> None:
    """SPEC 5a: "A negative last step whose window is still open at as-of holds if no such event
    happened up to as-of." An Order after as-of is ignored ("events after T are ignored")."""
    lines = [
        track("u1", "Checkout", ts(0, 600)),
        track("u1", "Order", ts(0, -60)),  # after as-of
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("ab", {"funnel": {"steps": [
            {"event": "Checkout"}, {"event": "Order", "within": "1h", "performed": False}]}})],
    )  # fmt: skip
    assert out.members("ab") == {"u1"}


def test_event_between_and_not_within(tmp_path: Path) -> None:
    """SPEC 4: "`event: NAME` + optional `where`, `within`/`between`, `having`"; `not:` is the
    complement."""
    lines = [
        track("u1", "Login", ts(40)),
        track("u2", "Login", ts(40)), track("u2", "Login", ts(5)),
        track("u3", "Login", ts(90)),  # exactly T-90d: outside between [30d, 90d]
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[aud("lapsed", {"all": [
            {"event": "Login", "between": ["30d", "90d"]},
            {"not": {"event": "Login", "within": "30d"}}]})],
    )  # fmt: skip
    assert out.members("lapsed") == {"u1"}


def test_validation_of_fields(tmp_path: Path) -> None:
    """SPEC 3: "key: unique among computed traits; [a-z][a-z0-9_]*". SPEC 5a: "`min_frequency`
    belongs to most_frequent only, >= 1." SPEC 5: "`between: [A, B]` (A < B)". SPEC 4: `users:`
    is "account level only"; `audience:` refs are "same level"."""
    cases = [
        ([trait("Bad", "count")], []),
        ([trait("mf", "most_frequent", property="p", min_frequency=0)], []),
        ([trait("cf", "count", min_frequency=2)], []),
        ([trait("bw", "count", between=["3d", "1d"])], []),
        ([trait("np", "sum")], []),
        ([], [aud("u", {"users": "any", "condition": {"event": "E"}})]),
        ([], [aud("uu", {"event": "E"}),
              {"key": "acc", "level": "account", "condition": {"audience": "uu"}}]),
        ([], [aud("unknown_ref", {"audience": "nope"})]),
        ([], [aud("dur", {"event": "E", "within": "7 days"})]),
    ]  # fmt: skip
    bad = []
    for i, (traits, audiences) in enumerate(cases):
        defs = write_defs(tmp_path / str(i), traits=traits, audiences=audiences)
        if main(["validate", "--definitions", str(defs)]) != 1:
            bad.append(i)
    assert bad == []


def test_space_timezone_does_not_shift_windows(tmp_path: Path) -> None:
    """SPEC 1: "no offset means UTC"; SPEC 5: windows are durations before T. A space timezone
    (for schedules) changes neither."""
    space = {**SPACE, "timezone": "Asia/Tokyo"}
    lines = [track("u1", "E", "2026-01-09T00:00:01"), track("u1", "E", "2026-01-09T00:00:00")]
    out = compute(
        tmp_path, lines, space=space, traits=[trait("w", "count", within="1d")],
        as_of="2026-01-10T00:00:00",
    )  # fmt: skip
    assert out.user("u1")["w"] == 1


def test_like_wildcards_only(tmp_path: Path) -> None:
    """SPEC 5: `LIKE/ILIKE` (SQL): `%` any run, `_` one character; other characters are literal."""
    cases = {"u1": "a.c", "u2": "abc", "u3": "a(c", "u4": "A.C\nx"}
    lines = [track(u, "E", ts(1), props={"s": v}) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("dot", {"event": "E", "where": "s LIKE 'a.c'"}),
            aud("paren", {"event": "E", "where": "s LIKE 'a(%'"}),
            aud("us", {"event": "E", "where": "s LIKE 'a_c'"}),
            aud("nl", {"event": "E", "where": "s ILIKE 'a.c%'"}),
        ],
    )
    assert out.members("dot") == {"u1"}
    assert out.members("paren") == {"u3"}
    assert out.members("us") == {"u1", "u2", "u3"}
    assert out.members("nl") == {"u1", "u4"}


def test_null_literal_and_numeric_string_arithmetic(tmp_path: Path) -> None:
    """SPEC 5: "a comparison with null is not true"; arithmetic reads names as numbers ("a numeric
    string is read as its number"); `1e3` is a numeric string."""
    cases = {"u1": {"p": "6", "q": "1e3"}, "u2": {"p": "six", "q": 999}}
    lines = [track(u, "E", ts(1), props=v) for u, v in cases.items()]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("eqnull", {"event": "E", "where": "p = NULL"}),
            aud("neqnull", {"event": "E", "where": "NOT (p = NULL)"}),
            aud("arith", {"event": "E", "where": "p * 2 > 10"}),
            aud("sci", {"event": "E", "where": "q > 999"}),
            aud("lower", {"event": "E", "where": "upper(p) = 'SIX'"}),
        ],
    )
    assert out.members("eqnull") == set()
    assert out.members("neqnull") == set()
    assert out.members("arith") == {"u1"}
    assert out.members("sci") == {"u1"}
    assert out.members("lower") == {"u2"}


def test_backfill_false_inside_users(tmp_path: Path) -> None:
    """SPEC 5a: "`backfill: false` limits the audience's own event conditions and funnel steps
    (inside `users:` too)"."""
    lines = [group("u1", "g1", ts(9)), track("u1", "Buy", ts(5)),
             group("u2", "g2", ts(9)), track("u2", "Buy", ts(1))]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[{"key": "acc", "level": "account", "backfill": False, "created_at": ts(3),
                    "condition": {"users": "any", "condition": {"event": "Buy"}}}],
    )  # fmt: skip
    assert out.members("acc") == {"g2"}


def test_dedupe_across_types_and_content(tmp_path: Path) -> None:
    """SPEC 1: "the same `messageId` seen twice counts once" whatever the copies hold: an identify
    copy read first (no receivedAt on either) wins over a track copy."""
    lines = [
        identify("u1", ts(2), {"plan": "pro"}, mid="same"),
        track("u1", "A", ts(1), mid="same"),
        track("u1", "Keep", ts(1)),
    ]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    row = out.user("u1")
    assert (row["a"], row["plan"]) == (0, "pro")


def test_big_number_text(tmp_path: Path) -> None:
    """SPEC 3: "a number as its shortest decimal text with no `.0` on whole numbers". A whole float
    1e20 is `100000000000000000000`; 2.5 stays `2.5`."""
    lines = [track("u1", "E", ts(1), props={"p": v}) for v in (1e20, 2.5, -0.25)]
    out = compute(tmp_path, lines, traits=[trait("ul", "unique_list", property="p")])
    assert out.user("u1")["ul"] == ["-0.25", "100000000000000000000", "2.5"]


def test_timestamps_exactly_as_fromisoformat_reads(tmp_path: Path) -> None:
    """SPEC 5a: "Timestamps are what Python's `datetime.fromisoformat` reads." Python 3.11 reads
    basic format, week dates, `+0500`, `+05`, hour-only times, a comma and 7 fraction digits; it
    rejects a leading space, a lower-case `z` and hour 24."""
    readable = [
        "2026-01-09T00:00:00+0500",
        "2026-W02-5",
        "2026-W02-5T01:00:00Z",
        "20260109T000000Z",
        "2026-01-09T00:00:00.1234567Z",
        "2026-01-09T00:00:00+05",
        "2026-01-09T00:00Z",
        "2026-01-09T00Z",
        "2026-01-09T00:00:00,5Z",
    ]
    unreadable = [" 2026-01-09T00:00:00Z", "2026-01-09T00:00:00z", "2026-01-09T24:00:00"]
    lines = [track("u1", "A", t) for t in readable + unreadable]
    out = compute(tmp_path, lines, traits=[trait("a", "count", "A")])
    assert [line for line, _ in out.quarantine()] == [10, 11, 12]
    assert out.user("u1")["a"] == len(readable)


def test_having_arithmetic_nested_and_event_name_case(tmp_path: Path) -> None:
    """SPEC 4: "`having` is SQL over `count(*)`, `count(distinct p)`, `sum/avg/min/max(p)`" with
    section 5 arithmetic; "nested keys use dots". Event names are matched exactly."""
    lines = [
        track("u1", "Order Completed", ts(1), props={"item": {"price": 10}}),
        track("u1", "Order Completed", ts(1), props={"item": {"price": "20"}}),
        track("u1", "order completed", ts(1), props={"item": {"price": 1000}}),
        track("u2", "order completed", ts(1), props={"item": {"price": 1000}}),
    ]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("avg15", {"event": "Order Completed",
                          "having": "sum(item.price) / count(*) = 15 AND min(item.price) = 10"}),
            aud("any_oc", {"event": "Order Completed"}),
        ],
    )  # fmt: skip
    assert out.members("avg15") == {"u1"}
    assert out.members("any_oc") == {"u1"}


def test_page_properties_in_event_conditions(tmp_path: Path) -> None:
    """SPEC 1: "for page calls also `name`, `url`, `path`"; SPEC 5a: they fill `properties` from
    `name` and `context.page` when the properties lack them; `context.page.url` still reads the
    context."""
    lines = [
        {"type": "page", "userId": "u1", "name": "Pricing", "timestamp": ts(1),
         "context": {"page": {"url": "https://x.io/pricing?a=1", "path": "/pricing"}}},
        {"type": "page", "userId": "u2", "name": "Home", "timestamp": ts(1),
         "properties": {"path": "/"}, "context": {"page": {"path": "/home"}}},
    ]  # fmt: skip
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("pricing", {"event": "Page Viewed",
                            "where": "name = 'Pricing' AND url LIKE '%/pricing%'"}),
            aud("root", {"event": "Page Viewed", "where": "path = '/'"}),
            aud("ctx", {"event": "Page Viewed", "where": "context.page.path = '/home'"}),
        ],
    )  # fmt: skip
    assert out.members("pricing") == {"u1"}
    assert out.members("root") == {"u2"}
    assert out.members("ctx") == {"u2"}


def test_unknown_trait_is_null(tmp_path: Path) -> None:
    """SPEC 5: "A missing key is null, and a comparison with null is not true"; `not:` is the
    complement."""
    lines = [identify("u1", ts(1), {"plan": "pro"})]
    out = compute(
        tmp_path,
        lines,
        audiences=[
            aud("has", {"traits": "seats > 0"}),
            aud("hasnt", {"not": {"traits": "seats > 0"}}),
            aud("isnull", {"traits": "seats IS NULL AND abs(coalesce(seats, -3)) = 3"}),
        ],
    )
    assert out.members("has") == set()
    assert out.members("hasnt") == {"u1"}
    assert out.members("isnull") == {"u1"}


def test_history_reentry_opens_a_new_row(tmp_path: Path) -> None:
    """SPEC 6: `membership_history` holds "valid_from, valid_to (null = still a member)"; an exit
    closes the stay, a later entry opens another."""
    defs = write_defs(tmp_path, audiences=[aud("recent", {"event": "E", "within": "1d"})])
    events = tmp_path / "e.jsonl"
    events.write_text(lines_text([track("u1", "E", ts(0)), track("u1", "E", ts(-2))]))
    out_dir = tmp_path / "out"
    t1, t2, t3 = AS_OF, AS_OF + timedelta(days=1), AS_OF + timedelta(days=2)
    for t in (t1, t2, t3):
        last = compute(tmp_path, defs=defs, events=events, out=out_dir, as_of=t.isoformat())
    hist = sorted(
        (r["valid_from"], r["valid_to"])
        for r in last.tables["membership_history"].iter_rows(named=True)
    )
    assert hist == [(t1, t2), (t3, None)]
    changes = last.tables["membership_changes"]
    assert changes["change"].to_list() == ["entered"]
