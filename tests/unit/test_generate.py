"""The demo event generator and the shipped definitions (definitions/, benchmarks/definitions/)."""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlglot
import yaml
from sqlglot import exp

from audience_pipeline.demo.generate import (
    BAD_LINE_MARKER,
    BAD_REASONS,
    GenerateStats,
    generate,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "definitions"
BENCH = ROOT / "benchmarks" / "definitions"
KEY = re.compile(r"[a-z][a-z0-9_]*")
KINDS = {
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "most_frequent",
    "first",
    "last",
    "unique_list",
    "unique_count",
}
SECTION7_KINDS = {"score", "sql"}  # SPEC 7: behavioural scores and SQL traits
TYPES = {"track", "identify", "group", "page", "screen", "alias"}
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def read_lines(stats: GenerateStats) -> Iterator[bytes]:
    for path in stats.files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            yield from handle.read().splitlines()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateStats, list[bytes]]:
    stats = generate(tmp_path_factory.mktemp("events"), events=20_000, files=3, seed=7, as_of=AS_OF)
    return stats, list(read_lines(stats))


@pytest.fixture(scope="module")
def messages(sample: tuple[GenerateStats, list[bytes]]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in sample[1] if BAD_LINE_MARKER.encode() not in line]


def event_name(m: dict[str, Any]) -> str | None:
    return {"page": "Page Viewed", "screen": "Screen Viewed"}.get(m["type"], m.get("event"))


# --- the generator ------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", events=3_000, seed=3)
    b = generate(tmp_path / "b", events=3_000, seed=3)
    c = generate(tmp_path / "c", events=3_000, seed=4)
    assert a.files[0].read_bytes() == b.files[0].read_bytes()
    assert a.files[0].read_bytes() != c.files[0].read_bytes()


# sha256 of the plain-text files of one small run, taken from the single-module generator before
# it became the demo/ package: the same seed must keep giving the same bytes across refactors.
PINNED_SHA256 = "8b50c2258c13d1603e541e0a6c9e4513011fe12c667d09163ba463c34609dac5"


def test_output_bytes_are_pinned(tmp_path: Path) -> None:
    stats = generate(tmp_path, events=3_000, files=2, seed=11, gzip=False, days=20)
    digest = hashlib.sha256()
    for path in stats.files:
        digest.update(path.read_bytes())
    assert stats.lines == 3_000
    assert digest.hexdigest() == PINNED_SHA256


def test_worker_processes_do_not_change_the_output(tmp_path: Path) -> None:
    one = generate(tmp_path / "one", events=9_000, files=2, workers=1, gzip=False)
    two = generate(tmp_path / "two", events=9_000, files=2, workers=2, gzip=False)
    assert [p.read_bytes() for p in one.files] == [p.read_bytes() for p in two.files]
    assert one.by_event == two.by_event


def test_requested_size_and_stats_match_the_files(
    sample: tuple[GenerateStats, list[bytes]],
) -> None:
    stats, lines = sample
    assert len(stats.files) == 3 and all(p.name.endswith(".jsonl.gz") for p in stats.files)
    assert len(lines) == 20_000  # exactly: the last session of a block is cut short
    assert stats.lines == len(lines)
    assert stats.messages + sum(stats.bad_lines.values()) == len(lines)


def test_size_holds_with_more_people_than_lines(tmp_path: Path) -> None:
    stats = generate(tmp_path, events=2_000, profiles=10_000, accounts=50)
    lines = list(read_lines(stats))
    assert len(lines) == 2_000


def test_every_line_parses_except_the_few_marked_bad_lines(
    sample: tuple[GenerateStats, list[bytes]],
) -> None:
    stats, lines = sample
    bad = [line for line in lines if BAD_LINE_MARKER.encode() in line]
    assert set(stats.bad_lines) == set(BAD_REASONS)
    assert len(bad) == sum(stats.bad_lines.values()) <= len(lines) * 0.002
    for line in lines:
        if line in bad:
            continue
        message = orjson.loads(line)
        assert isinstance(message, dict) and message["type"] in TYPES
    reasons = set()
    for line in bad:
        reason = re.search(rb"bad-line-([a-z_]+)-", line)
        assert reason is not None
        reasons.add(reason.group(1).decode())
    assert reasons == set(BAD_REASONS)


def test_bad_lines_are_really_unusable(sample: tuple[GenerateStats, list[bytes]]) -> None:
    for line in (x for x in sample[1] if BAD_LINE_MARKER.encode() in x):
        try:
            m = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # not JSON
        if not isinstance(m, dict):
            continue
        ids = [str(m.get(k, "")).strip().lower() for k in ("userId", "anonymousId")]
        usable_ids = [v for v in ids if v not in ("", "undefined", "null")]
        unusable = (
            m["type"] not in TYPES
            or not usable_ids
            or (m["type"] == "track" and "event" not in m)
            or (m["type"] == "group" and not m.get("groupId"))
        )
        if not unusable:
            with pytest.raises(ValueError):
                datetime.fromisoformat(m["timestamp"])


def test_valid_messages_are_segment_spec(messages: list[dict[str, Any]]) -> None:
    start = datetime(2025, 11, 1, tzinfo=UTC)
    for m in messages:
        assert (
            m.get("userId")
            or m.get("anonymousId")
            or m.get("context", {}).get("traits", {}).get("email")
        )
        stamp = m.get("timestamp", m["receivedAt"])
        assert stamp.endswith("Z") or stamp[-6] in "+-"
        when = datetime.fromisoformat(stamp)
        assert when > start
        assert datetime.fromisoformat(m["receivedAt"]) >= datetime.fromisoformat(m["sentAt"])
        if m["type"] == "track":
            assert isinstance(m["event"], str) and isinstance(m["properties"], dict)
        if m["type"] == "group":
            assert m["groupId"] and {"name", "plan", "employees"} <= set(m["traits"])
            assert m["traits"]["plan"] in ("free", "pro", "business")
        if m["type"] == "alias":
            assert m["previousId"] and m["userId"]
    late = [
        m for m in messages if datetime.fromisoformat(m.get("timestamp", m["receivedAt"])) > AS_OF
    ]
    assert len(late) <= len(messages) * 0.002


def test_realistic_corners_occur(messages: list[dict[str, Any]]) -> None:
    types = {m["type"] for m in messages}
    assert types == TYPES
    ids = [m["messageId"] for m in messages if "messageId" in m]
    assert len(ids) > len(set(ids))  # retried messages
    assert any("messageId" not in m for m in messages)
    identifies = [m for m in messages if m["type"] == "identify"]
    assert all(m["userId"] and m["anonymousId"] for m in identifies)
    emails = [
        m.get("traits", {}).get("email") or m["context"].get("traits", {}).get("email")
        for m in identifies
    ]
    assert any(e != e.strip().lower() for e in emails if e)  # case and spaces to normalise
    assert any(isinstance(m.get("userId"), int) for m in messages)
    assert any(m.get("userId") in ("null", "undefined", "") for m in messages)
    devices = {m.get("context", {}).get("device", {}).get("type") for m in messages}
    assert {"ios", "android", "desktop"} <= devices
    assert any(m.get("context", {}).get("campaign", {}).get("source") for m in messages)
    assert any(m.get("context", {}).get("location", {}).get("country") for m in messages)
    prices = [m["properties"]["price"] for m in messages if m.get("event") == "Product Viewed"]
    assert any(isinstance(p, str) and re.fullmatch(r"[0-9]+\.[0-9]{2}", p) for p in prices)
    assert any(isinstance(p, float) for p in prices)
    orders = [m for m in messages if m.get("event") == "Order Completed"]
    assert orders and all(
        {"revenue", "currency", "products", "order_id"} <= set(m["properties"]) for m in orders
    )
    # Email-only messages: identified by context.traits.email alone.
    assert any("userId" not in m and "anonymousId" not in m for m in messages)
    # Shared emails: the same address under two user ids.
    owners: dict[str, set[Any]] = {}
    for m in identifies:
        email = (m.get("traits") or m["context"]["traits"]).get("email", "")
        owners.setdefault(email.strip().lower(), set()).add(m["userId"])
    assert any(len(users) > 1 for users in owners.values())
    # Anonymous browsing later identified: an anonymousId seen alone before its identify.
    first_seen: dict[str, str] = {}
    for m in messages:
        if m["type"] != "identify" and "userId" not in m and m.get("anonymousId"):
            first_seen.setdefault(m["anonymousId"], m.get("timestamp", m["receivedAt"]))
    assert any(
        m["anonymousId"] in first_seen and first_seen[m["anonymousId"]] < m["timestamp"]
        for m in identifies
        if "timestamp" in m
    )


def test_cli_writes_the_requested_files(tmp_path: Path) -> None:
    code = main(
        ["--events", "600", "--files", "2", "--no-gzip", "--seed", "1", "--out", str(tmp_path)]
    )
    assert code == 0
    files = sorted(tmp_path.iterdir())
    assert [p.name for p in files] == ["events-0000.jsonl", "events-0001.jsonl"]
    assert sum(len(p.read_bytes().splitlines()) for p in files) == 600


def test_invalid_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="files"):
        generate(tmp_path, events=10, files=0)


# --- the shipped definitions --------------------------------------------------------------------


def load_folder(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    space = yaml.safe_load((root / "space.yaml").read_text())
    traits = [yaml.safe_load(p.read_text()) for p in sorted((root / "traits").glob("*.yaml"))]
    audiences = [yaml.safe_load(p.read_text()) for p in sorted((root / "audiences").glob("*.yaml"))]
    return space, traits, audiences


@pytest.mark.parametrize("root", [DEMO, BENCH], ids=["demo", "benchmark"])
def test_definition_files_have_the_required_fields(root: Path) -> None:
    space, traits, audiences = load_folder(root)
    assert space["timezone"] == "UTC" and space["schedule"]["cron"] == "0 3 * * *"
    assert [i["type"] for i in space["identifiers"]] == ["user_id", "email", "anonymous_id"]
    for trait in traits:
        assert isinstance(trait, dict) and KEY.fullmatch(trait["key"])
        assert trait.get("level", "user") in ("user", "account")
        assert trait["name"] and trait["description"]
        if trait["kind"] == "score":
            assert trait["score"] in ("quantity", "frequency", "recency", "momentum", "consistency")
            assert "property" not in trait
            continue
        if trait["kind"] == "sql":
            assert isinstance(trait["query"], str) and "event" not in trait
            continue
        assert trait["kind"] in KINDS and trait["event"]
        assert (trait["kind"] == "count") == ("property" not in trait)
    for audience in audiences:
        assert isinstance(audience, dict) and KEY.fullmatch(audience["key"])
        assert (
            audience["name"] and audience["description"] and isinstance(audience["condition"], dict)
        )
    keys = [t["key"] for t in traits] + [a["key"] for a in audiences]
    assert len(keys) == len(set(keys))


def test_demo_covers_every_feature() -> None:
    _, traits, audiences = load_folder(DEMO)
    user_traits = [t for t in traits if t.get("level", "user") == "user"]
    assert len(user_traits) >= 10 and {t["kind"] for t in user_traits} == KINDS | SECTION7_KINDS
    assert len([t for t in traits if t.get("level") == "account"]) == 3
    assert any("where" in t for t in user_traits) and any("between" in t for t in user_traits)
    assert any("min_frequency" in t for t in user_traits)
    user = [a for a in audiences if a.get("level", "user") == "user"]
    account = [a for a in audiences if a.get("level") == "account"]
    assert len(user) >= 12 and len(account) >= 4
    text = "\n".join(yaml.safe_dump(a) for a in audiences)
    for needle in (
        "parent.",
        "performed: false",
        "between:",
        "having:",
        "count(distinct",
        "include_anonymous: false",
        "backfill: false",
        "created_at:",
        "context.device.type",
        "context.campaign.source",
        "users: none",
        "users: all",
        "users: any",
        "audience: ",
        "not:",
        "plan",
        "country",
        "first_time:",
        "stopped:",
        "restarted:",
        "regularly:",
        "min_periods:",
        "sample:",
    ):
        assert needle in text, needle


@pytest.mark.parametrize("root,users,accounts", [(BENCH, (20, 50), (3, 5))], ids=["benchmark"])
def test_benchmark_sizes(root: Path, users: tuple[int, int], accounts: tuple[int, int]) -> None:
    _, traits, audiences = load_folder(root)
    level = lambda d: d.get("level", "user")  # noqa: E731
    assert len([t for t in traits if level(t) == "user"]) == users[0]
    assert len([a for a in audiences if level(a) == "user"]) == users[1]
    assert len([t for t in traits if level(t) == "account"]) == accounts[0]
    assert len([a for a in audiences if level(a) == "account"]) == accounts[1]


def names_in(sql: str) -> set[str]:
    """Dotted names an expression reads (functions and literals left out)."""
    tree = sqlglot.parse_one(sql, dialect="duckdb")
    return {".".join(part.name for part in col.parts) for col in tree.find_all(exp.Column)}


def uses(node: Any, found: list[tuple[list[str], str]]) -> None:
    """(event names, property path) pairs that event conditions and funnel steps read."""
    if isinstance(node, list):
        for child in node:
            uses(child, found)
    elif isinstance(node, dict):
        if "funnel" in node:
            previous: list[str] = []
            for step in node["funnel"]["steps"]:
                events = step["event"] if isinstance(step["event"], list) else [step["event"]]
                for name in names_in(step.get("where") or "TRUE"):
                    # parent.p is read on the previous step's events
                    found.append((previous, name) if name.startswith("parent.") else (events, name))
                previous = events
            return
        if "event" in node:
            events = node["event"] if isinstance(node["event"], list) else [node["event"]]
            for field in ("where", "having"):
                for name in names_in(node.get(field) or "TRUE"):
                    found.append((events, name))
        for value in node.values():
            uses(value, found)


def has_path(m: dict[str, Any], path: str) -> bool:
    parts = path.split(".")
    value: Any = m if parts[0] == "context" else m.get("properties", {})
    if m["type"] in ("page", "screen") and parts[0] != "context":
        value = {**m.get("context", {}).get("page", {}), "name": m.get("name"), **value}
    for part in parts:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


@pytest.mark.parametrize("root", [DEMO, BENCH], ids=["demo", "benchmark"])
def test_event_names_and_fields_the_definitions_use_occur(
    root: Path, messages: list[dict[str, Any]]
) -> None:
    _, traits, audiences = load_folder(root)
    by_event: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        name = event_name(m)
        if name is not None:
            by_event.setdefault(name, []).append(m)
    pairs: list[tuple[list[str], str]] = []
    for trait in traits:
        if "event" not in trait:
            continue  # a score over every event, or a SQL trait
        events = trait["event"] if isinstance(trait["event"], list) else [trait["event"]]
        assert all(e in by_event for e in events), events
        for name in names_in(trait.get("where") or "TRUE") | {trait.get("property") or ""}:
            if name and not name.startswith("trait."):
                pairs.append((events, name))
    uses([a["condition"] for a in audiences], pairs)
    for events, name in pairs:
        assert all(e in by_event for e in events), events
        if name.startswith("trait."):
            continue
        path = name.removeprefix("parent.")
        assert any(has_path(m, path) for e in events for m in by_event[e]), (events, name)


@pytest.mark.parametrize("root", [DEMO, BENCH], ids=["demo", "benchmark"])
def test_custom_traits_the_definitions_use_occur(
    root: Path, messages: list[dict[str, Any]]
) -> None:
    _, traits, audiences = load_folder(root)
    computed = {t["key"] for t in traits}
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            if isinstance(node.get("traits"), str):
                found.extend(names_in(node["traits"]))
            for field in ("where",):
                found.extend(
                    n[6:] for n in names_in(node.get(field) or "TRUE") if n.startswith("trait.")
                )
            for value in node.values():
                walk(value)

    walk([a["condition"] for a in audiences] + traits)
    # `crm.plan` reads the field of the computed (SQL) trait crm.
    custom = {n for n in found if n.split(".")[0] not in computed}
    assert custom  # plan, country, ... are used
    seen: set[str] = set()
    for m in messages:
        if m["type"] in ("identify", "group"):
            seen |= set(m.get("traits") or {}) | set(m.get("context", {}).get("traits") or {})
    assert custom <= seen, custom - seen
