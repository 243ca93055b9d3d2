"""Ingestion: quarantine, identifiers, dedupe, formats (SPEC sections 1 and 5a)."""

from __future__ import annotations

import gzip
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pandera.errors
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from audience_pipeline.ingest import (
    EVENTS_SCHEMA,
    IngestResult,
    ingest,
    read_normalized,
    write_normalized,
)
from audience_pipeline.spec.models import IdentifierSpec, SpaceConfig
from audience_pipeline.values import loads

SPACE = SpaceConfig()
TS = "2026-01-01T00:00:00Z"


def _line(message: Any) -> str:
    return message if isinstance(message, str) else orjson.dumps(message).decode()


def _write(path: Path, messages: list[Any]) -> Path:
    path.write_text("".join(_line(m) + "\n" for m in messages))
    return path


def _ingest(tmp_path: Path, messages: list[Any], space: SpaceConfig = SPACE) -> IngestResult:
    return ingest(_write(tmp_path / "events.jsonl", messages), space)


def _track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Clicked", "userId": "u1", "timestamp": TS, **fields}


def _ids(result: IngestResult, row: int = 0) -> list[tuple[str, str]]:
    return [(item["id_type"], item["id_value"]) for item in result.events["ids"][row]]


def _one_reason(tmp_path: Path, message: Any) -> str:
    result = _ingest(tmp_path, [message])
    assert result.events.height == 0
    assert result.quarantine.height == 1
    return str(result.quarantine["reason"][0])


# --- quarantine -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ("{not json", "invalid json"),
        ('{"type": "track", "x": NaN}', "invalid json"),
        ("[1, 2]", "not an object"),
        ('"text"', "not an object"),
        ("null", "not an object"),
        (_track(type="click"), "unknown type"),
        (_track(type=None), "unknown type"),
        (_track(type="Track"), "unknown type"),
        (_track(userId=None), "no identifier"),
        (_track(userId="  Undefined "), "no identifier"),
        (_track(userId=""), "no identifier"),
        (_track(userId=1.5), "no identifier"),
        (_track(userId=True), "no identifier"),
        (_track(userId=0), "no identifier"),  # 0 -> "0", blocked
        (_track(timestamp="yesterday"), "unparseable timestamp"),
        (_track(timestamp=""), "unparseable timestamp"),
        (_track(timestamp=1767225600), "unparseable timestamp"),
        (_track(timestamp="nope", receivedAt=TS), "unparseable timestamp"),
        (_track(timestamp=None), "missing timestamp"),
        (_track(timestamp=None, receivedAt="garbage"), "missing timestamp"),
        ({"type": "track", "event": "A", "userId": "u"}, "missing timestamp"),
        (_track(event=None), "track without event"),
        (_track(event=""), "track without event"),
        (_track(event=5), "track without event"),
        ({"type": "group", "userId": "u", "timestamp": TS}, "group without groupId"),
        (
            {"type": "group", "userId": "u", "timestamp": TS, "groupId": None},
            "group without groupId",
        ),
        ({"type": "group", "userId": "u", "timestamp": TS, "groupId": ""}, "group without groupId"),
    ],
)
def test_quarantine_reasons(tmp_path: Path, message: Any, reason: str) -> None:
    assert _one_reason(tmp_path, message) == reason


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        # each message is wrong in two ways; the earlier check names it
        (_track(type="nope", userId=None), "unknown type"),
        (_track(userId=None, timestamp="bad"), "no identifier"),
        (_track(timestamp="bad", event=None), "unparseable timestamp"),
        (_track(timestamp=None, event=None), "missing timestamp"),
    ],
)
def test_quarantine_order_of_work(tmp_path: Path, message: Any, reason: str) -> None:
    assert _one_reason(tmp_path, message) == reason


def test_quarantine_row_keeps_raw_text_source_and_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'\n{"type":"track"  ,"event":"A","timestamp":"x"}\r\n\n  {oops \n')
    result = ingest(path, SPACE)
    rows = result.quarantine.to_dicts()
    assert rows == [
        {
            "raw": '{"type":"track"  ,"event":"A","timestamp":"x"}',
            "source": str(path),
            "line": 2,
            "reason": "no identifier",
        },
        {"raw": "  {oops ", "source": str(path), "line": 4, "reason": "invalid json"},
    ]
    assert result.quarantine.schema == pl.Schema(
        {"raw": pl.String, "source": pl.String, "line": pl.Int64, "reason": pl.String}
    )


def test_blank_lines_are_skipped_and_not_counted(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    body = "\n   \n" + _line(_track(messageId="a")) + "\n\t\n" + "bad\n" + _line(_track()) + "\n\n"
    path.write_text(body)
    result = ingest(path, SPACE)
    assert result.events["seq"].to_list() == [0, 2]
    assert result.events["line"].to_list() == [3, 6]
    assert result.quarantine["line"].to_list() == [5]
    assert result.stats["lines_read"] == 3
    assert result.stats["quarantined"] == 1
    assert result.stats["messages"] == 2


def test_a_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    text = '{"type":"track","event":"A","userId":1234567890123,"timestamp":"2026-01-01"}'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() + b"\n")
    result = ingest(path, SPACE)
    assert _ids(result) == [("user_id", "1234567890123")]


# --- identifiers ------------------------------------------------------------------------------


def test_identifiers_trim_lowercase_email_and_ints(tmp_path: Path) -> None:
    result = _ingest(
        tmp_path,
        [
            _track(
                userId=42,
                anonymousId="  anon-1 ",
                traits={"email": " Ann@Example.COM "},
                context={"traits": {"email": "ann@example.com"}},
            )
        ],
    )
    assert _ids(result) == [
        ("user_id", "42"),
        ("email", "ann@example.com"),
        ("anonymous_id", "anon-1"),
    ]


def test_blocked_values_are_case_insensitive_and_trimmed(tmp_path: Path) -> None:
    result = _ingest(tmp_path, [_track(userId=" NULL ", anonymousId="Anonymous", context={})])
    assert result.quarantine["reason"].to_list() == ["no identifier"]
    space = SpaceConfig(blocked_values=frozenset({"guest"}))
    result = _ingest(tmp_path, [_track(userId="GUEST", anonymousId="null")], space)
    assert _ids(result) == [("anonymous_id", "null")]


def test_an_email_alone_is_enough(tmp_path: Path) -> None:
    result = _ingest(tmp_path, [_track(userId=None, context={"traits": {"email": "a@b.co"}})])
    assert _ids(result) == [("email", "a@b.co")]


def test_two_emails_are_two_identifiers_sorted_by_priority_then_value(tmp_path: Path) -> None:
    message = {
        "type": "identify",
        "userId": "u9",
        "anonymousId": "b-anon",
        "timestamp": TS,
        "traits": {"email": "zed@x.io"},
        "context": {"traits": {"email": "Amy@x.io"}},
    }
    result = _ingest(tmp_path, [message])
    assert _ids(result) == [
        ("user_id", "u9"),
        ("email", "amy@x.io"),
        ("email", "zed@x.io"),
        ("anonymous_id", "b-anon"),
    ]


def test_same_identifier_twice_counts_once(tmp_path: Path) -> None:
    message = _track(traits={"email": "A@x.io"}, context={"traits": {"email": " a@X.io"}})
    assert _ids(_ingest(tmp_path, [message])) == [("user_id", "u1"), ("email", "a@x.io")]


def test_group_calls_do_not_read_traits_paths(tmp_path: Path) -> None:
    message = {
        "type": "group",
        "groupId": "acct-1",
        "timestamp": TS,
        "traits": {"email": "billing@acme.io"},
        "context": {"traits": {"email": "me@acme.io"}},
    }
    result = _ingest(tmp_path, [message])
    assert _ids(result) == [("email", "me@acme.io")]
    only_account_email = {**message, "context": {}}
    assert _one_reason(tmp_path, only_account_email) == "no identifier"


def test_custom_identifier_paths_and_priorities(tmp_path: Path) -> None:
    space = SpaceConfig(
        identifiers=(
            IdentifierSpec("device_id", ("context.device.id",), 10, 1),
            IdentifierSpec("user_id", ("userId",), 1, 0),
        )
    )
    message = _track(userId="u", context={"device": {"id": 7}}, anonymousId="ignored")
    assert _ids(_ingest(tmp_path, [message], space)) == [("user_id", "u"), ("device_id", "7")]


def test_alias_previous_id_is_normalized_and_not_an_identifier(tmp_path: Path) -> None:
    messages = [
        {"type": "alias", "userId": "u2", "previousId": "  anon-9 ", "timestamp": TS},
        {"type": "alias", "userId": "u3", "previousId": "Unknown", "timestamp": TS},
        {"type": "alias", "previousId": "anon-1", "timestamp": TS},
    ]
    result = _ingest(tmp_path, messages)
    assert result.events["previous_id"].to_list() == ["anon-9", None]
    assert _ids(result, 0) == [("user_id", "u2")]
    assert result.quarantine["reason"].to_list() == ["no identifier"]


# --- columns ----------------------------------------------------------------------------------


def test_event_names_group_ids_and_message_ids(tmp_path: Path) -> None:
    messages = [
        _track(messageId=17),
        {"type": "page", "userId": "u", "timestamp": TS},
        {"type": "screen", "userId": "u", "timestamp": TS, "messageId": "s-1"},
        {"type": "identify", "userId": "u", "timestamp": TS},
        {"type": "group", "userId": "u", "timestamp": TS, "groupId": 12.0},
        {"type": "group", "userId": "u", "timestamp": TS, "groupId": " g "},
    ]
    events = _ingest(tmp_path, messages).events
    assert events["event"].to_list() == [
        "Clicked",
        "Page Viewed",
        "Screen Viewed",
        None,
        None,
        None,
    ]
    assert events["group_id"].to_list() == [None, None, None, None, "12", " g "]
    assert events["message_id"].to_list() == ["17", None, "s-1", None, None, None]
    assert events["type"].to_list() == ["track", "page", "screen", "identify", "group", "group"]


def test_page_and_screen_fill_name_url_and_path(tmp_path: Path) -> None:
    page_context = {"page": {"url": "https://x.io/a?b=1", "path": "/a", "title": "A"}}
    messages = [
        {"type": "page", "userId": "u", "timestamp": TS, "name": "Home", "context": page_context},
        {
            "type": "page",
            "userId": "u",
            "timestamp": TS,
            "name": "Home",
            "properties": {"name": "Own", "path": "/own", "extra": 1},
            "context": page_context,
        },
        {"type": "screen", "userId": "u", "timestamp": TS, "name": "Cart"},
        {"type": "track", "event": "E", "userId": "u", "timestamp": TS, "name": "not a page"},
    ]
    props = [loads(text) for text in _ingest(tmp_path, messages).events["properties"]]
    assert props[0] == {"name": "sHome", "url": "shttps://x.io/a?b=1", "path": "s/a"}
    assert props[1] == {
        "name": "sOwn",
        "path": "s/own",
        "extra": "n1",
        "url": "shttps://x.io/a?b=1",
    }
    assert props[2] == {"name": "sCart"}
    assert props[3] == {}


def test_properties_and_context_are_tagged_json(tmp_path: Path) -> None:
    properties = {
        "price": 12.0,
        "qty": 3,
        "ratio": 0.5,
        "sku": "12",
        "gift": False,
        "note": None,
        "tags": ["a", 1, True],
        "address": {"city": "Oslo"},
    }
    messages = [
        _track(properties=properties, context={"device": {"type": "ios"}}),
        _track(properties=[1, 2], context="text"),
    ]
    events = _ingest(tmp_path, messages).events
    assert loads(events["properties"][0]) == {
        "price": "n12",
        "qty": "n3",
        "ratio": "n0.5",
        "sku": "s12",
        "gift": "bfalse",
        "note": None,
        "tags": 'o["a",1,true]',
        "address": 'o{"city":"Oslo"}',
        "address.city": "sOslo",
    }
    # the flat index columns carry the same tagged values
    assert events["p.address.city"][0] == "sOslo"
    assert events["c.device.type"][0] == "sios"
    assert loads(events["context"][0]) == {"device": 'o{"type":"ios"}', "device.type": "sios"}
    assert events["properties"][1] == "{}"
    assert events["context"][1] == "{}"


def test_events_schema_and_validation(tmp_path: Path) -> None:
    result = _ingest(tmp_path, [_track()])
    expected: dict[str, pl.DataType] = {
        "seq": pl.Int64(),
        "message_id": pl.String(),
        "type": pl.String(),
        "event": pl.String(),
        "timestamp": pl.Datetime("us", "UTC"),
        "received_at": pl.Datetime("us", "UTC"),
        "ids": pl.List(pl.Struct({"id_type": pl.String(), "id_value": pl.String})),
        "previous_id": pl.String(),
        "group_id": pl.String(),
        "properties": pl.String(),
        "context": pl.String(),
        "source": pl.String(),
        "line": pl.Int64(),
    }
    assert result.events.schema == pl.Schema(expected)
    EVENTS_SCHEMA.validate(result.events)
    broken = result.events.with_columns(event=pl.lit(None, pl.String))
    with pytest.raises(pandera.errors.SchemaError):
        EVENTS_SCHEMA.validate(broken)
    with pytest.raises(pandera.errors.SchemaError):
        EVENTS_SCHEMA.validate(result.events.drop("context"))


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-01T10:20:30Z", datetime(2026, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2026-03-01T10:20:30.123456Z", datetime(2026, 3, 1, 10, 20, 30, 123456, tzinfo=UTC)),
        ("2026-03-01T10:20:30+02:00", datetime(2026, 3, 1, 8, 20, 30, tzinfo=UTC)),
        ("2026-03-01T00:30:00-05:30", datetime(2026, 3, 1, 6, 0, 0, tzinfo=UTC)),
        ("2026-03-01T10:20:30", datetime(2026, 3, 1, 10, 20, 30, tzinfo=UTC)),
        ("2026-03-01 10:20", datetime(2026, 3, 1, 10, 20, tzinfo=UTC)),
        ("2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_timestamps_are_read_like_fromisoformat(
    tmp_path: Path, text: str, expected: datetime
) -> None:
    result = _ingest(tmp_path, [_track(timestamp=text, receivedAt=text)])
    assert result.events["timestamp"][0] == expected
    assert result.events["received_at"][0] == expected


def test_missing_timestamp_falls_back_to_received_at(tmp_path: Path) -> None:
    messages = [
        _track(receivedAt="2026-02-02T00:00:00+01:00"),
        {**_track(), "timestamp": None, "receivedAt": "2026-02-02T00:00:00+01:00"},
        _track(receivedAt="not a time"),
    ]
    events = _ingest(tmp_path, messages).events
    assert events["timestamp"].to_list() == [
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 2, 1, 23, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
    ]
    assert events["received_at"].to_list() == [
        datetime(2026, 2, 1, 23, tzinfo=UTC),
        datetime(2026, 2, 1, 23, tzinfo=UTC),
        None,
    ]


# --- traits -----------------------------------------------------------------------------------


def test_identify_trait_updates_traits_override_context_traits(tmp_path: Path) -> None:
    message = {
        "type": "identify",
        "userId": "u1",
        "timestamp": TS,
        "context": {"traits": {"plan": "pro", "age": 30, "email": "x@y.z", "seats": 2}},
        "traits": {"plan": None, "email": " Mixed@Case.io ", "vip": True, "meta": {"a": 1.0}},
    }
    updates = _ingest(tmp_path, [message]).trait_updates
    rows = {row["key"]: row for row in updates.to_dicts()}
    assert set(rows) == {"age", "email", "seats", "vip", "meta"}  # plan: null in traits wins
    assert rows["email"]["value"] == '" Mixed@Case.io "'  # traits keep case and spaces
    assert rows["email"]["tagged"] == '"s Mixed@Case.io "'
    assert rows["meta"]["value"] == '{"a":1.0}'
    assert rows["meta"]["tagged"] == '{"a":"n1"}'
    assert rows["vip"]["tagged"] == '"btrue"'
    assert set(updates["kind"]) == {"user"}
    assert set(updates["seq"]) == {0}


def test_group_trait_updates_are_account_traits_only(tmp_path: Path) -> None:
    messages = [
        {
            "type": "group",
            "userId": "u",
            "groupId": "g1",
            "timestamp": TS,
            "traits": {"name": "Acme", "size": None, "employees": 50},
            "context": {"traits": {"plan": "ignored"}},
        },
        _track(traits={"plan": "not a trait update"}),
        {"type": "identify", "userId": "u", "timestamp": TS, "traits": "not an object"},
    ]
    updates = _ingest(tmp_path, messages).trait_updates
    assert updates.select("seq", "kind", "key", "value").rows() == [
        (0, "account", "name", '"Acme"'),
        (0, "account", "employees", "50"),
    ]


# --- dedupe -----------------------------------------------------------------------------------


def test_dedupe_earliest_received_at_wins(tmp_path: Path) -> None:
    messages = [
        _track(messageId="m", receivedAt="2026-01-03T00:00:00Z", properties={"copy": 1}),
        _track(messageId="m", properties={"copy": 2}),  # no receivedAt: loses to any copy with one
        _track(messageId="m", receivedAt="2026-01-02T00:00:00Z", properties={"copy": 3}),
        _track(messageId="m", receivedAt="2026-01-02T00:00:00Z", properties={"copy": 4}),
    ]
    result = _ingest(tmp_path, messages)
    assert result.events["seq"].to_list() == [2]
    assert result.stats["duplicates"] == 3


def test_dedupe_without_received_at_keeps_first_read(tmp_path: Path) -> None:
    messages = [_track(messageId="m"), _track(messageId="m"), _track(messageId="other")]
    result = _ingest(tmp_path, messages)
    assert result.events["seq"].to_list() == [0, 2]


def test_messages_without_message_id_are_never_deduped(tmp_path: Path) -> None:
    result = _ingest(tmp_path, [_track(), _track(), _track(messageId=None)])
    assert result.events.height == 3
    assert result.stats["duplicates"] == 0


def test_quarantined_copies_do_not_compete(tmp_path: Path) -> None:
    messages = [
        _track(messageId="m", event=None, receivedAt="2026-01-01T00:00:00Z"),  # quarantined
        _track(messageId="m", receivedAt="2026-01-05T00:00:00Z"),
    ]
    result = _ingest(tmp_path, messages)
    assert result.events["seq"].to_list() == [1]
    assert result.stats["duplicates"] == 0


def test_dedupe_drops_trait_updates_of_dropped_copies(tmp_path: Path) -> None:
    base = {"type": "identify", "userId": "u", "timestamp": TS, "messageId": "m"}
    messages = [
        {**base, "traits": {"plan": "late"}, "receivedAt": "2026-01-09T00:00:00Z"},
        {**base, "traits": {"plan": "early"}, "receivedAt": "2026-01-01T00:00:00Z"},
    ]
    result = _ingest(tmp_path, messages)
    assert result.trait_updates.select("seq", "value").rows() == [(1, '"early"')]


def test_dedupe_across_files(tmp_path: Path) -> None:
    _write(tmp_path / "a.jsonl", [_track(messageId="m", receivedAt="2026-01-02")])
    _write(tmp_path / "b.jsonl", [_track(messageId="m", receivedAt="2026-01-01")])
    result = ingest(tmp_path, SPACE)
    assert result.events["source"].to_list() == [str(tmp_path / "b.jsonl")]
    assert result.events["seq"].to_list() == [1]


# --- files and formats ------------------------------------------------------------------------

MIXED = [
    _track(messageId="1", properties={"revenue": 9.5, "sku": "a"}, anonymousId="x"),
    "",
    "not json",
    {
        "type": "identify",
        "userId": "u2",
        "timestamp": "2026-01-02T03:04:05+01:00",
        "traits": {"email": "E@x.io", "n": 3},
        "context": {"traits": {"plan": "pro"}, "ip": "1.1.1.1"},
    },
    {"type": "page", "anonymousId": "a1", "name": "Home", "timestamp": TS},
    _track(messageId="1", receivedAt="2026-01-01T00:00:00Z"),
    {"type": "group", "userId": "u2", "groupId": "g", "timestamp": TS, "traits": {"size": 5}},
]


def _without_source(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.drop("source") if "source" in frame.columns else frame


def test_gzip_input_matches_jsonl(tmp_path: Path) -> None:
    plain = _write(tmp_path / "plain.jsonl", MIXED)
    packed = tmp_path / "packed.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    expected, got = ingest(plain, SPACE), ingest(packed, SPACE)
    assert _without_source(got.events).equals(_without_source(expected.events))
    assert got.trait_updates.equals(expected.trait_updates)
    assert _without_source(got.quarantine).equals(_without_source(expected.quarantine))
    assert got.events["source"].to_list() == [str(packed)] * got.events.height


def _parquet_rows(messages: list[Any]) -> list[dict[str, Any]]:
    return [m for m in messages if isinstance(m, dict)]


def test_parquet_input_with_json_text_fields_matches_jsonl(tmp_path: Path) -> None:
    rows = _parquet_rows(MIXED)
    expected = ingest(_write(tmp_path / "e.jsonl", rows), SPACE)
    columns = ["type", "event", "messageId", "userId", "anonymousId", "name", "groupId"]
    table = {c: [r.get(c) for r in rows] for c in columns}
    table["timestamp"] = [r.get("timestamp") for r in rows]
    table["receivedAt"] = [r.get("receivedAt") for r in rows]
    for field in ("properties", "traits", "context"):
        table[field] = [orjson.dumps(r[field]).decode() if field in r else None for r in rows]
    path = tmp_path / "e.parquet"
    pl.DataFrame(table).write_parquet(path)
    got = ingest(path, SPACE)
    assert _without_source(got.events).equals(_without_source(expected.events))
    assert got.trait_updates.equals(expected.trait_updates)


def test_parquet_with_struct_fields_and_timestamp_column(tmp_path: Path) -> None:
    table = pa.table(
        {
            "type": ["track", "identify", "track"],
            "event": ["Bought", None, None],
            "userId": ["u1", "u2", "u3"],
            "timestamp": pa.array(
                [datetime(2026, 1, 1, 12), datetime(2026, 1, 2), None], pa.timestamp("ns")
            ),
            "properties": [{"price": 5.0}, None, {"price": 1.0}],
            "traits": [None, {"plan": "pro"}, None],
        }
    )
    path = tmp_path / "e.parquet"
    pq.write_table(table, path)
    result = ingest(path, SPACE)
    assert result.events["timestamp"].to_list() == [
        datetime(2026, 1, 1, 12, tzinfo=UTC),
        datetime(2026, 1, 2, tzinfo=UTC),
    ]
    assert loads(result.events["properties"][0]) == {"price": "n5"}
    assert result.events["line"].to_list() == [1, 2]
    assert result.trait_updates.select("key", "value").rows() == [("plan", '"pro"')]
    quarantined = result.quarantine.row(0, named=True)
    assert quarantined["reason"] == "missing timestamp"  # checked before the missing event
    assert quarantined["line"] == 3
    assert loads(quarantined["raw"])["userId"] == "u3"


def test_unreadable_files_are_quarantined_and_the_run_goes_on(tmp_path: Path) -> None:
    (tmp_path / "a_bad.jsonl.gz").write_bytes(b"this is not gzip")
    (tmp_path / "b_bad.parquet").write_bytes(b"PAR1 nope")
    _write(tmp_path / "d_good.jsonl", [_track()])
    result = ingest(tmp_path, SPACE)
    assert result.events["source"].to_list() == [str(tmp_path / "d_good.jsonl")]
    assert result.events["seq"].to_list() == [0]
    rows = result.quarantine.to_dicts()
    assert [Path(r["source"]).name for r in rows] == ["a_bad.jsonl.gz", "b_bad.parquet"]
    assert all(r["line"] == 0 and r["reason"].startswith("unreadable file: ") for r in rows)
    assert result.stats["files"] == 3


@pytest.mark.parametrize("cut", [20, 300, 2000])
@pytest.mark.parametrize("fast", [True, False])
def test_a_truncated_gzip_keeps_every_line_before_the_damage(
    tmp_path: Path, cut: int, fast: bool
) -> None:
    from audience_pipeline.ingest.reader import read_file

    messages = [_track(messageId=f"m{i}", properties={"i": i}) for i in range(400)]
    whole = b"".join(orjson.dumps(m) + b"\n" for m in messages)
    packed = gzip.compress(whole)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(packed[:-cut])
    got = read_file(path, SPACE, fast=fast)
    import zlib

    readable = zlib.decompressobj(31).decompress(packed[:-cut])  # every byte before the damage
    complete = readable.count(b"\n")
    assert got.events["line"].to_list() == list(range(1, complete + 1))
    assert got.events["message_id"].to_list() == [f"m{i}" for i in range(complete)]
    (row,) = got.quarantine.to_dicts()
    assert row["line"] == complete + 1
    assert row["reason"].startswith("unreadable rest of file: EOFError")
    assert row["raw"] == readable[readable.rfind(b"\n") + 1 :].decode(errors="replace")
    assert got.lines == complete + 1  # kept + the quarantined rest: every line accounted for


def test_folder_is_searched_recursively_in_sorted_order(tmp_path: Path) -> None:
    _write(tmp_path / "b.ndjson", [_track(messageId="b")])
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub" / "a.json", [_track(messageId="sa"), _track(messageId="sb")])
    _write(tmp_path / "a.jsonl", [_track(messageId="a")])
    _write(tmp_path / "notes.txt", [_track(messageId="ignored")])
    result = ingest(tmp_path, SPACE)
    assert result.events["message_id"].to_list() == ["a", "b", "sa", "sb"]
    assert result.events["seq"].to_list() == [0, 1, 2, 3]
    assert result.stats["files"] == 3
    assert result.stats["bytes"] == sum(
        (tmp_path / name).stat().st_size for name in ("a.jsonl", "b.ndjson", "sub/a.json")
    )
    # a list is read in sorted order too, and a file named twice is read once
    again = ingest([tmp_path / "b.ndjson", tmp_path / "a.jsonl", tmp_path / "a.jsonl"], SPACE)
    assert again.events["message_id"].to_list() == ["a", "b"]


def test_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        ingest(tmp_path / "nope", SPACE)


def test_empty_input_gives_empty_typed_tables(tmp_path: Path) -> None:
    result = ingest(tmp_path, SPACE)
    assert result.events.height == 0
    assert result.events.schema["ids"] == pl.List(
        pl.Struct({"id_type": pl.String, "id_value": pl.String})
    )
    assert result.stats == {
        "lines_read": 0,
        "messages": 0,
        "quarantined": 0,
        "duplicates": 0,
        "files": 0,
        "bytes": 0,
        "blank_lines": 0,
        "unreadable_files": 0,
    }


def test_worker_processes_give_the_same_result(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for index in range(3):
        messages = [
            _track(messageId=f"m{i % 7}", receivedAt=f"2026-01-0{1 + index}") for i in range(20)
        ]
        _write(tmp_path / f"part-{index}.jsonl", [*messages, "junk"])
    serial = ingest(tmp_path, SPACE, workers=1)
    with caplog.at_level(logging.WARNING):
        parallel = ingest(tmp_path, SPACE, workers=2)
    assert "reading in process" not in caplog.text  # the workers really ran
    assert parallel.events.equals(serial.events)
    assert parallel.quarantine.equals(serial.quarantine)
    assert parallel.stats == serial.stats
    assert serial.stats["duplicates"] == 60 - 7
    assert serial.quarantine["line"].to_list() == [21, 21, 21]


def test_chunked_reading_matches_one_chunk(tmp_path: Path) -> None:
    from audience_pipeline.ingest.reader import read_file

    path = _write(tmp_path / "e.jsonl", MIXED * 5)
    whole = read_file(path, SPACE)
    chunked = read_file(path, SPACE, chunk_lines=2)
    assert chunked.events.equals(whole.events)
    assert chunked.trait_updates.equals(whole.trait_updates)
    assert chunked.quarantine.equals(whole.quarantine)


def test_write_and_read_normalized_round_trip(tmp_path: Path) -> None:
    result = ingest(_write(tmp_path / "e.jsonl", MIXED), SPACE)
    out = tmp_path / "normalized"
    write_normalized(result, out)
    assert {p.name for p in out.iterdir()} == {
        "events.parquet",
        "trait_updates.parquet",
        "quarantine.parquet",
    }
    back = read_normalized(out)
    assert back.events.equals(result.events)
    assert back.trait_updates.equals(result.trait_updates)
    assert back.quarantine.equals(result.quarantine)
    assert back.stats == result.stats
    assert (
        pq.ParquetFile(out / "events.parquet").metadata.row_group(0).column(0).compression == "ZSTD"
    )


def test_gzip_members_and_zero_padding_read_as_one_stream(tmp_path: Path) -> None:
    plain = _write(tmp_path / "plain.jsonl", MIXED * 3)
    data = plain.read_bytes()
    cut = len(data) // 3  # members need not end at a line end
    packed = tmp_path / "members.jsonl.gz"
    packed.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]) + b"\0" * 8)
    expected, got = ingest(plain, SPACE), ingest(packed, SPACE)
    assert _without_source(got.events).equals(_without_source(expected.events))
    assert _without_source(got.quarantine).equals(_without_source(expected.quarantine))
