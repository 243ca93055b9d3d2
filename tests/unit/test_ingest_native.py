"""The native reader against the per-line normalizer (the reference) on messy files.

Both read the same generated file; their events, trait updates and quarantine must be equal
row for row, and every non-blank line must be accounted for (kept + quarantined). The native
reader takes a line only when its checks prove the per-line result; the cases below aim at
each check (duplicate keys, NaN and friends, big numbers, escapes, nesting, timestamps).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_pipeline.ingest import ingest
from audience_pipeline.ingest.native import ODD_LINE, screen, supported
from audience_pipeline.ingest.reader import DEFAULT_READER, READER_ENV, read_file, reader_name
from audience_pipeline.spec.models import IdentifierSpec, SpaceConfig
from tests.unit.test_ingest_fast import _lines, _message

SPACE = SpaceConfig()
BASE = b'"type":"track","event":"E","userId":"u","timestamp":"2026-01-01T00:00:00Z"'

# Lines aimed at the native reader's routing checks: each must read as the per-line path reads
# it (whichever path takes it).
_routing_lines = st.sampled_from(
    [
        b"{" + BASE + b',"properties":{"a":1,"a":2}}',  # nested duplicate: Python keeps the last
        b"{" + BASE + b',"context":{"traits":{"email":"x@y.z","email":"w@y.z"}}}',
        b'{"type":"identify","userId":"u","timestamp":"2026-01-01T00:00:00Z",'
        b'"traits":{"email":"A@B.C","plan":"x","plan":null},"context":{"traits":{"age":3}}}',
        b"{" + BASE + b',"userId":"v"}',  # top-level duplicate
        b"{" + BASE + b',"x":nan}',
        b"{" + BASE + b',"x":-Infinity}',
        b"{" + BASE + b',"x":INF}',
        b"{" + BASE + b',"x":1e400}',
        b"{" + BASE + b',"x":' + b"9" * 400 + b"}",
        b"{" + BASE + b',"properties":{"n":123456789012345678901234567890}}',
        b"{" + BASE + b',"properties":{"n":18446744073709551615,"m":-9223372036854775808}}',
        b"{" + BASE + b',"properties":{"n":1E2,"m":2.50,"k":-0,"j":-0.0,"i":0.1}}',
        b"{" + BASE + b',"properties":{"s":"a\\"b\\\\c\\/d\\n\\t\\b\\f\\r"}}',
        b"{" + BASE + b',"properties":{"s":"\\u00e9\\ud83d\\ude00"}}',
        b"{" + BASE + b',"properties":{"s":"\\ud800"}}',  # lone surrogate
        b"{" + BASE + b',"properties":{"s":"tab\there"}}',  # raw control character
        b"{" + BASE + b',"x":[1,2,]}',
        b"{" + BASE + b',"x":{"a":1,}}',
        b"{" + BASE + b',"x":' + b"[" * 300 + b"]" * 300 + b"}",
        b"{" + BASE + b',"x":' + b"[" * 200 + b"]" * 200 + b"}",
        b"{" + BASE + b"}\x0b",
        b'{ "type" : "page" , "userId" : "u" , "timestamp" : "2026-01-01T00:00:00+05:30" ,'
        b' "name" : "Home" , "context" : { "page" : { "url" : "https://x" , "path" : null } } }',
        b'{"type":"screen","anonymousId":"a","timestamp":null,"receivedAt":"2026-01-01T10:00:00.5Z",'
        b'"properties":{"name":"kept"},"name":"N","context":{"page":"not an object"}}',
        b'{"type":"track","event":"E","userId":"u","timestamp":"2026-02-29T00:00:00Z"}',
        b'{"type":"track","event":"E","userId":"u","timestamp":"2024-02-29T23:59:59.999999-00:01"}',
        b'{"type":"track","event":"E","userId":"u","timestamp":"2026-01-01T00:00:00Z",'
        b'"receivedAt":"not a time"}',
        b'{"type":"group","groupId":"","userId":"u","timestamp":"2026-01-01T00:00:00Z"}',
        b'{"type":"group","groupId":7,"userId":"u","timestamp":"2026-01-01T00:00:00Z",'
        b'"traits":{"email":"a@b.c","n":1}}',
        b'{"type":"alias","previousId":" P ","userId":"u","timestamp":"2026-01-01T00:00:00Z"}',
        b'{"type":"alias","previousId":12,"userId":"u","timestamp":"2026-01-01T00:00:00Z"}',
        b'{"type":"track","event":"E","userId":12,"messageId":5,"timestamp":"2026-01-01T00:00:00Z"}',
        b'{"type":"track","event":"E","userId":" Null ","anonymousId":"a","timestamp":"2026-01-01"}',
        b'{"type":"track","event":"E","userId":"\xc3\x89mile","timestamp":"2026-01-01T00:00:00Z"}',
    ]
)
# Messy messages of the per-line reader's tests, with routing cases mixed in.
_native_lines = st.tuples(_lines, st.lists(_routing_lines, max_size=6)).flatmap(
    lambda both: st.permutations(both[0] + both[1])
)


def _same(path: Path, space: SpaceConfig = SPACE) -> Any:
    native = read_file(path, space, reader="native")
    per_line = read_file(path, space, fast=False)
    for table in ("events", "trait_updates", "quarantine"):
        got, expected = getattr(native, table), getattr(per_line, table)
        assert got.schema == expected.schema, table
        assert got.equals(expected), (table, got.rows(), expected.rows())
    assert native.lines == per_line.lines
    assert native.blank == per_line.blank
    assert native.events.height + native.quarantine.height == native.lines
    return native


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_lines)
def test_native_reader_equals_the_per_line_reader(
    tmp_path_factory: Any, lines: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("native") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _same(path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(_routing_lines | st.just(b""), min_size=1, max_size=10))
def test_native_routing_cases_read_as_the_per_line_reader(
    tmp_path_factory: Any, lines: list[bytes]
) -> None:
    path = tmp_path_factory.mktemp("routing") / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    _same(path)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=st.lists(_message(), min_size=1, max_size=8))
def test_native_reader_with_custom_identifier_rules(
    tmp_path_factory: Any, messages: list[dict[str, Any]]
) -> None:
    space = SpaceConfig(
        identifiers=(
            IdentifierSpec("device_id", ("context.library.a",), 10, 0),
            IdentifierSpec("user_id", ("userId", "properties.b"), 1, 1),
            IdentifierSpec("email", ("traits.email", "context.traits.email"), 5, 2),
        ),
        blocked_values=frozenset({"u1", "0"}),
    )
    assert supported(space)
    path = tmp_path_factory.mktemp("custom") / "events.jsonl"
    path.write_bytes(b"".join(_line(message) + b"\n" for message in messages))
    _same(path, space)


def _line(message: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(message)
    except TypeError:  # integers beyond 64 bits
        import json

        return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode()


def test_native_reader_takes_the_common_shape(tmp_path: Path) -> None:
    messages = [
        {"type": kind, "userId": f"u{i % 3}", "anonymousId": "a1", "event": "Bought",
         "name": "Home", "groupId": "g1", "previousId": "p1",
         "properties": {"price": 12.5, "n": 3, "ok": True, "none": None, "tags": ["a", 1],
                        "deep": {"x": {"y": "z"}}},
         "context": {"page": {"url": "https://x.io/", "path": "/"}, "ip": "1.2.3.4",
                     "traits": {"email": " Ann@X.io "}},
         "traits": {"plan": "pro", "seats": 3},
         "messageId": f"m{i % 7}", "timestamp": "2026-01-01T00:00:00.123Z",
         "receivedAt": f"2026-01-0{1 + i % 3}T00:00:00+01:00"}
        for i, kind in enumerate(["track", "page", "screen", "identify", "group", "alias"] * 5)
    ]  # fmt: skip
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(m) + b"\n" for m in messages))
    native = _same(path)
    assert native.events.height == 30
    assert native.quarantine.height == 0
    assert native.trait_updates.height > 0


def test_the_native_reader_takes_the_lines_it_proves(tmp_path: Path) -> None:
    # Spies on the reader: the plain lines are taken natively, the odd ones per line.
    from audience_pipeline.ingest import native as module

    taken: list[int] = []
    original = module.NativeReader.read

    def spy(self: module.NativeReader, lines: pl.DataFrame) -> module.Block:
        block = original(self, lines)
        taken.extend(block.taken.to_list())
        return block

    plain = b"{" + BASE + b',"properties":{"a":1},"context":{"ip":"1"}}'
    lines = [plain, b"{" + BASE + b',"x":NaN}', plain, b"{" + BASE + b',"userId":"v"}', b"{bad"]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module.NativeReader, "read", spy)
        _same(path)
    assert taken == [0, 2]


@pytest.mark.parametrize(
    ("line", "plain"),
    [
        ('{"a":1,"b":"x"}', True),
        ('{"a":"\\u00e9"}', False),
        ('{"a":NaN}', False),
        ('{"a": -inf}', False),
        ('{"a":1e5}', False),
        ('{"a":12345678901234567890}', False),
        ('{"a":[1,2 ]}', True),
        ('{"a":[1,2, ]}', False),
        ('{"a":{"b":1},}', False),
        ('{"a":"\x0c"}', False),
        ("[" * 251 + "]" * 251, False),
        ("[" * 250 + "]" * 250, True),
    ],
)
def test_screen_routes_what_duckdb_and_python_read_apart(line: str, plain: bool) -> None:
    frame = pl.DataFrame({"text": [line]})
    assert frame.select(screen(pl.col("text"))).item() is plain
    assert ODD_LINE  # the pattern is the one documented in docs/benchmarks.md


def test_unsupported_identifier_paths_take_the_per_line_reader(tmp_path: Path) -> None:
    space = SpaceConfig(identifiers=(IdentifierSpec("user_id", ("ids.0",), 1, 0),))
    assert not supported(space)
    space = SpaceConfig(
        identifiers=(
            IdentifierSpec("user_id", ("user",), 1, 0),
            IdentifierSpec("email", ("user.email",), 5, 1),
        )
    )
    assert not supported(space)
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"type":"track","event":"E","user":{"email":"a@b"},"timestamp":"2026-01-01"}\n'
    )
    _same(path, space)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_native_lines, more=_native_lines)
def test_native_and_per_line_ingest_give_the_same_tables(
    tmp_path_factory: Any, lines: list[bytes], more: list[bytes]
) -> None:
    # Through the whole ingest: parts, dedupe across files, assembly, stats (conservation).
    folder = tmp_path_factory.mktemp("tables")
    (folder / "a.jsonl").write_bytes(b"".join(line + b"\n" for line in lines + more))
    (folder / "b.jsonl").write_bytes(b"".join(line + b"\n" for line in more + lines))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(READER_ENV, "native")
        native = ingest(folder, SPACE, workers=1)
        patch.setenv(READER_ENV, "per_line")
        per_line = ingest(folder, SPACE, workers=1)
    for table in ("events", "trait_updates", "quarantine"):
        got, expected = getattr(native, table), getattr(per_line, table)
        assert got.columns == expected.columns, table
        assert got.equals(expected), table
    assert native.stats == per_line.stats
    stats = native.stats
    assert stats["lines_read"] == stats["messages"] + stats["duplicates"] + stats["quarantined"]


def test_the_reader_is_chosen_by_argument_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(READER_ENV, raising=False)
    monkeypatch.delenv("AUDIENCE_PIPELINE_FAST_INGEST", raising=False)
    assert reader_name() == DEFAULT_READER == "per_line"
    monkeypatch.setenv(READER_ENV, "native")
    assert reader_name() == "native"
    assert reader_name(fast=False) == "per_line"
    assert reader_name(fast=True, reader="native") == "native"
    monkeypatch.setenv(READER_ENV, "nativ")  # a typo: the default, with a warning
    assert reader_name() == DEFAULT_READER
