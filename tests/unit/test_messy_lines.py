"""Messy input through the real `compute`: every line is kept or quarantined, never a failed run.

Each generated line is a usable message, a blank line, or a usable message with exactly one
defect whose quarantine reason is known in advance (SPEC 1 and 5a; docs/semantics.md, "Input
limits"). The property: exit 0, each defective line quarantined with its reason, and
conservation: lines in = kept messages + duplicates + quarantined + blank lines.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audience_pipeline import service
from audience_pipeline.cli import main
from audience_pipeline.ingest.limits import MAX_DEPTH

DEFINITIONS = Path(__file__).parents[2] / "definitions"
AS_OF = "2026-03-01T00:00:00Z"

SURROGATE = "\ud800"
HUGE_INTEGERS = [2**63, 2**64 - 1, 2**64, -(2**63) - 1, 2**70, -(10**30)]
# Readable by datetime.fromisoformat, but outside years 1-9999 once converted to UTC.
EXTREME_TIMESTAMPS = [
    "9999-12-31T23:59:59.999999-23:59",
    "9999-12-31T23:00:00-01:00",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00.000001+00:01",
]
EDGE_TIMESTAMPS = ["9999-12-31T23:59:59.999999+00:00", "0001-01-01T00:00:00Z", "0001-01-01"]
SURROGATE_FIELDS = [
    "event", "userId", "messageId", "groupId", "trait key", "trait value", "property key",
    "property value", "context value", "anonymousId",
]  # fmt: skip

KINDS = [
    "ok", "ok", "ok", "blank", "surrogate", "timestamp", "deep", "shallow", "inf", "not json",
    "not object",
]  # fmt: skip

numbers = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from(HUGE_INTEGERS),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["12", "N/A", "1e5", ""]),
)


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """A usable message of the demo space (ids and messageIds from small pools: duplicates)."""
    kind = draw(st.sampled_from(["track", "track", "identify", "group", "page"]))
    message: dict[str, Any] = {
        "type": kind,
        "userId": draw(st.sampled_from(["u1", "u2", "u3", 2**70, 7])),
        "messageId": draw(st.sampled_from(["m1", "m2", "m3", "m4", "m5", "m6", "m7", 2**64])),
        "timestamp": draw(
            st.sampled_from(["2026-02-20T10:00:00Z", "2026-02-27T00:00:00+05:00", *EDGE_TIMESTAMPS])
        ),
        "properties": {
            "revenue": draw(numbers),
            "price": draw(numbers),
            "currency": "USD",
            "category": draw(numbers),
            "product_id": draw(numbers),
        },
        "context": {"device": {"type": "ios"}, "campaign": {"source": draw(numbers)}},
    }
    if kind == "track":
        message["event"] = draw(st.sampled_from(["Order Completed", "Product Viewed"]))
    if kind in ("identify", "group"):
        message["traits"] = {"plan": draw(numbers), "employees": draw(numbers)}
    if kind == "group":
        message["groupId"] = draw(st.sampled_from(["g1", 2**64, 5]))
    if draw(st.booleans()):
        message["receivedAt"] = draw(st.sampled_from(["2026-02-21T00:00:00Z", *EXTREME_TIMESTAMPS]))
    return message


def _nested(depth: int, as_list: bool) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value] if as_list else {"x": value}
    return value


def _with_surrogate(message: dict[str, Any], field: str) -> dict[str, Any]:
    bad = "a" + SURROGATE + "b"
    if field in ("trait key", "trait value"):
        message["type"] = "identify"
        traits = message.setdefault("traits", {})
        if field == "trait key":
            traits[bad] = 1
        else:
            traits["plan"] = bad
    elif field == "groupId":
        message["type"] = "group"
        message["groupId"] = bad
    elif field == "event":
        message["type"] = "track"
        message["event"] = bad
    elif field == "property key":
        message["properties"][bad] = 1
    elif field == "property value":
        message["properties"]["category"] = bad
    elif field == "context value":
        message["context"]["page"] = {"url": bad}
    else:
        message[field] = bad
    return message


@st.composite
def lines(draw: st.DrawFn) -> tuple[str, str | None]:
    """One input line and the quarantine reason it must get (None: kept or skipped)."""
    choice = draw(st.sampled_from(KINDS))
    if choice == "blank":
        return draw(st.sampled_from(["", "   ", "\t"])), None
    if choice == "not json":
        return '{"type": "track", "userId": ', "invalid json"
    if choice == "not object":
        return draw(st.sampled_from(["[1, 2]", "12", '"text"', "null"])), "not an object"
    message = draw(messages())
    if message["type"] == "track" and "event" not in message:
        message["event"] = "x"
    reason: str | None = None
    if choice == "surrogate":
        field = draw(st.sampled_from(SURROGATE_FIELDS))
        message, reason = _with_surrogate(message, field), "lone surrogate in text"

    elif choice == "timestamp":
        message["timestamp"] = draw(st.sampled_from(EXTREME_TIMESTAMPS))
        reason = "timestamp out of range"

    elif choice in ("deep", "shallow"):
        # The message is level 1 and properties level 2: a value under a property key at
        # level 3 nested `depth` times reaches level 2 + depth.
        depth = MAX_DEPTH - 2 + draw(st.integers(1, 1200) if choice == "deep" else st.just(0))
        message["properties"]["nested"] = _nested(depth, draw(st.booleans()))
        reason = "nested too deep" if choice == "deep" else None
    text = json.dumps(message)  # ensure_ascii: a lone surrogate becomes the escape \ud800
    if choice == "inf":
        text = text.replace('"currency": "USD"', '"currency": ' + draw(st.sampled_from(
            ["1e400", "-1e400", "[1.5e999]"]
        )))  # fmt: skip
        reason = "number out of range"
    return text, reason


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(lines(), min_size=1, max_size=25), st.sampled_from(["polars", "duckdb"]))
def test_messy_lines_are_kept_or_quarantined(
    generated: list[tuple[str, str | None]], engine: str
) -> None:
    ingested: list[Any] = []  # what compute() was handed: the run's messages after dedupe
    real = service.compute_tables

    def recording(*args: Any, **kwargs: Any) -> Any:
        ingested.append(args[0])
        return real(*args, **kwargs)

    with tempfile.TemporaryDirectory() as tmp:
        events = Path(tmp) / "events.jsonl"
        events.write_text("".join(text + "\n" for text, _ in generated), encoding="utf-8")
        out = Path(tmp) / "warehouse"
        with mock.patch.object(service, "compute_tables", recording):
            code = main([
                "compute", "--definitions", str(DEFINITIONS), "--events", str(events),
                "--as-of", AS_OF, "--out", str(out), "--engine", engine,
            ])  # fmt: skip
        assert code == 0
        quarantine = pl.read_parquet(out / "quarantine.parquet")
    kept, duplicates = ingested[0].events.height, ingested[0].stats["duplicates"]
    blank = sum(1 for text, _ in generated if not text.strip())
    assert len(generated) == kept + duplicates + quarantine.height + blank
    expected = {n: reason for n, (_, reason) in enumerate(generated, start=1) if reason}
    found = dict(zip(quarantine["line"].to_list(), quarantine["reason"].to_list(), strict=True))
    assert found == expected


def test_the_depth_limit_is_the_same_with_and_without_the_orjson_shortcut() -> None:
    from audience_pipeline.ingest.limits import message_problem

    for as_list in (False, True):
        within = {"properties": _nested(MAX_DEPTH - 1, as_list)}  # MAX_DEPTH levels in all
        beyond = {"properties": _nested(MAX_DEPTH, as_list)}
        for exact in (False, True):
            assert message_problem(within, exact_check=exact) is None
            assert message_problem(beyond, exact_check=exact) == "nested too deep"
