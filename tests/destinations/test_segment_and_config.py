"""The segment destination (/v1/batch with a write key), config validation, retry rules."""

from __future__ import annotations

import base64
import random
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from audience_pipeline.destinations import load_destinations, sync
from audience_pipeline.destinations.retry import (
    DeliveryError,
    RateLimiter,
    RetryPolicy,
    TransientError,
    call_with_retries,
    parse_retry_after,
)
from audience_pipeline.destinations.segment import split_by_size
from tests.destinations.support import Receiver, serving, write_definitions, write_warehouse


def test_segment_batch_endpoint_with_write_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEG_KEY", "wk_123")
    receiver = Receiver(fail_every=3)
    with serving(receiver) as url:
        defs = write_definitions(tmp_path / "defs", [
            {"name": "seg", "type": "segment", "audiences": ["buyers"], "send": ["identify"], "batch_size": 20,
             "settings": {"endpoint": url, "write_key_env": "SEG_KEY"}},
        ])  # fmt: skip
        write_warehouse(tmp_path / "wh", {"buyers": list(range(0, 250))}, population=250)
        report = sync("seg", defs, tmp_path / "wh", policy=RetryPolicy(base_delay=0.001))
    assert report.status == "ok" and report.sent == 250
    auth = receiver.bodies[0]["headers"]["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"wk_123:").decode()
    assert {m["userId"] for b in receiver.bodies for m in b["body"]["batch"] if "userId" in m} >= {
        "u1",
        "u249",
    }
    assert len(receiver.members(receiver.traits)) == 250
    assert receiver.failures and receiver.conflicting == 0


def test_split_by_size_keeps_requests_small() -> None:
    messages = [
        orjson.dumps({"type": "identify", "userId": f"u{i}", "traits": {"x": "y" * 100}})
        for i in range(100)
    ]
    groups = split_by_size(messages, limit=2000)
    assert sum(len(g) for g in groups) == 100 and len(groups) > 5
    assert all(sum(len(m) + 1 for m in g) <= 2000 for g in groups)


def test_config_validation_names_file_and_field(tmp_path: Path) -> None:
    defs = write_definitions(tmp_path / "defs", [
        {"name": "bad", "type": "webhook", "settings": {"url": "http://x", "secret": "plain"},
         "audiences": ["buyers", "ghost"], "identifiers": {"email": "most"}},
        {"name": "worse", "type": "ftp"},
        {"name": "pg", "type": "postgres", "settings": {}, "rate_limit": -1},
    ])  # fmt: skip
    _, issues = load_destinations(defs)
    text = "\n".join(str(i) for i in issues)
    assert "bad.yaml: bad: settings.secret: secrets are named by environment variable" in text
    assert "identifiers.email: first, last or all: 'most'" in text
    assert "pg.yaml: pg: settings.dsn_env: required for type postgres" in text
    assert "pg: rate_limit: a positive number" in text
    assert "worse: type: one of webhook, segment, postgres, files: 'ftp'" in text


def test_unknown_audience_is_an_issue(tmp_path: Path) -> None:
    defs = write_definitions(tmp_path / "defs", [
        {"name": "ok", "type": "webhook", "settings": {"url": "http://x"}, "audiences": ["ghost"]},
    ])  # fmt: skip
    _, issues = load_destinations(defs)
    assert [(i.key, i.field, i.text) for i in issues] == [("ok", "audiences", "ghost")]


def test_retry_after_is_honored_and_backoff_is_jittered() -> None:
    waits: list[float] = []
    answers = iter([TransientError("429", retry_after=7.0), TransientError("500"), None])

    def action() -> str:
        error = next(answers)
        if error is not None:
            raise error
        return "done"

    policy = RetryPolicy(max_attempts=5, base_delay=1.0, max_delay=8.0)
    assert call_with_retries(action, policy, sleep=waits.append, rng=random.Random(1)) == "done"
    assert waits[0] == 7.0 and 0.0 <= waits[1] <= 2.0
    rng = random.Random(2)
    assert all(0 <= policy.delay(n, None, rng) <= min(8.0, 2 ** (n - 1)) for n in range(1, 10))
    with pytest.raises(DeliveryError, match="after 2 attempts"):
        call_with_retries(lambda: (_ for _ in ()).throw(TransientError("x")),
                          RetryPolicy(max_attempts=2), sleep=lambda s: None)  # fmt: skip


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:30 GMT", now) == 30.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_rate_limiter_spaces_requests() -> None:
    limiter = RateLimiter(50.0)
    start = time.monotonic()
    for _ in range(11):
        limiter.acquire()
    assert time.monotonic() - start >= 0.19
    unlimited = RateLimiter(None)
    start = time.monotonic()
    for _ in range(1000):
        unlimited.acquire()
    assert time.monotonic() - start < 0.1
