"""Webhook sync against a real flaky HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audience_pipeline.destinations import sync, sync_all
from audience_pipeline.destinations.retry import RetryPolicy
from audience_pipeline.destinations.sync import make_sender
from tests.destinations.support import (
    FAILURE_KINDS,
    Receiver,
    serving,
    user_key,
    write_definitions,
    write_warehouse,
)

FAST = RetryPolicy(max_attempts=8, base_delay=0.001, max_delay=0.01)


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "hook", "type": "webhook", "settings": {"url": url, "secret_env": "HOOK_SECRET"},
            "batch_size": 7, **extra}  # fmt: skip


def expected(members: dict[str, list[int]]) -> set[tuple[str, str]]:
    return {(key, user_key(n)) for key, ns in members.items() for n in ns}


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")


def test_flaky_server_ends_with_exactly_the_current_membership(tmp_path: Path) -> None:
    receiver = Receiver(secret="s3cret", fail_every=3)
    rounds = [
        {"buyers": list(range(0, 60)), "browsers": list(range(30, 90))},
        {"buyers": list(range(10, 70)), "browsers": list(range(30, 50))},
        {"buyers": [], "browsers": list(range(0, 40))},
    ]
    with serving(receiver) as url:
        defs = write_definitions(tmp_path / "defs", [hook(url + "/hook")])
        for members in rounds:
            write_warehouse(tmp_path / "wh", members)
            report = sync("hook", defs, tmp_path / "wh", policy=FAST)
            assert report.status == "ok", report.error
            assert report.pending == 0
            assert receiver.members(receiver.traits) == expected(members)
            assert receiver.members(receiver.tracked) == expected(members)
    assert set(receiver.failures) == set(FAILURE_KINDS)
    assert sum(receiver.failures.values()) >= receiver.requests // 3 - 1
    # Only a batch whose answer was lost is seen twice, always with identical messages.
    assert receiver.conflicting == 0
    assert 0 < receiver.duplicates <= receiver.failures["drop_after"] * 7 * 4
    assert "bad_signature" not in receiver.failures


def test_second_sync_sends_only_changes(tmp_path: Path) -> None:
    receiver = Receiver(secret="s3cret")
    with serving(receiver) as url:
        defs = write_definitions(tmp_path / "defs", [hook(url, send=["identify"])])
        write_warehouse(tmp_path / "wh", {"buyers": [1, 2, 3, 4]})
        first = sync("hook", defs, tmp_path / "wh", policy=FAST)
        assert first.entered == {"buyers": 4} and first.backfilled == [
            "big_accounts",
            "browsers",
            "buyers",
        ]
        again = sync("hook", defs, tmp_path / "wh", policy=FAST)
        assert again.sent == 0 and again.requests == 0
        write_warehouse(tmp_path / "wh", {"buyers": [2, 3, 4, 6]})
        third = sync("hook", defs, tmp_path / "wh", policy=FAST)
    assert (third.entered, third.exited) == ({"buyers": 1}, {"buyers": 1})
    last = [m for body in receiver.bodies[-1:] for m in body["body"]["batch"]]
    assert [(m["userId"], m["traits"]["buyers"]) for m in last] == [
        ("u1", False),
        ("u6", True),  # profile 6 has two emails: one call each
        ("u6", True),
    ]


def test_payloads_are_shaped_like_segment_engage(tmp_path: Path) -> None:
    receiver = Receiver(secret="s3cret")
    with serving(receiver) as url:
        defs = write_definitions(tmp_path / "defs", [hook(url, audiences=["buyers"],
                                 identifiers={"user_id": "last", "email": "all"})])  # fmt: skip
        write_warehouse(tmp_path / "wh", {"buyers": [3]})  # profile 3 has two emails
        sync("hook", defs, tmp_path / "wh", policy=FAST)
    messages = receiver.bodies[0]["body"]["batch"]
    assert "sentAt" in receiver.bodies[0]["body"]
    identify = [m for m in messages if m["type"] == "identify"]
    track = [m for m in messages if m["type"] == "track"]
    assert len(identify) == 2 and len(track) == 2  # one call per email, as Engage does
    personas = {
        "computation_class": "audience",
        "computation_id": identify[0]["context"]["personas"]["computation_id"],
        "computation_key": "buyers",
        "namespace": "spa_test",
        "space_id": "spa_test",
    }
    assert identify[0]["context"]["personas"] == personas
    assert personas["computation_id"].startswith("aud_")
    assert identify[0]["userId"] == "u3" and "anonymousId" not in identify[0]
    assert identify[0]["traits"] == {"buyers": True, "email": "user3.0@example.com"}
    assert identify[1]["traits"] == {"buyers": True, "email": "user3.1@example.com"}
    assert track[0]["event"] == "Audience Entered"
    assert track[0]["properties"] == {"audience_key": "buyers", "audience_name": "Buyers",
                                      "buyers": True, "email": "user3.0@example.com"}  # fmt: skip
    assert track[0]["context"]["externalIds"] == [
        {"id": "u3", "type": "user_id", "collection": "users", "encoding": "none"},
        {"id": "user3.0@example.com", "type": "email", "collection": "users", "encoding": "none"},
    ]
    assert track[0]["timestamp"] == "2026-03-01T12:00:00.000Z"
    assert len({m["messageId"] for m in messages}) == 4


def test_bad_signature_fails_only_that_destination_and_resumes(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    receiver = Receiver(secret="the-right-one")
    with serving(receiver) as url:
        files = {"name": "drop", "type": "files", "settings": {"path": str(tmp_path / "out")}}
        defs = write_definitions(tmp_path / "defs", [hook(url), files])
        write_warehouse(tmp_path / "wh", {"buyers": [1, 2, 3]})
        reports = {r.destination: r for r in sync_all(defs, tmp_path / "wh")}
        assert reports["hook"].status == "failed" and "401" in (reports["hook"].error or "")
        assert reports["hook"].pending == 3 and reports["hook"].sent == 0
        assert reports["drop"].status == "ok"
        assert (tmp_path / "out" / "buyers.csv").exists()
        monkeypatch.setenv("HOOK_SECRET", "the-right-one")
        fixed = sync("hook", defs, tmp_path / "wh", policy=FAST)
    assert fixed.status == "ok" and fixed.resumed == 3 and fixed.pending == 0
    assert receiver.members(receiver.traits) == expected({"buyers": [1, 2, 3]})


def test_dead_endpoint_fails_after_retries(tmp_path: Path) -> None:
    defs = write_definitions(tmp_path / "defs", [hook("http://127.0.0.1:9/nothing")])
    write_warehouse(tmp_path / "wh", {"buyers": [1]})
    report = sync(
        "hook", defs, tmp_path / "wh", policy=RetryPolicy(max_attempts=3, base_delay=0.001)
    )
    assert report.status == "failed" and "after 3 attempts" in (report.error or "")
    assert report.requests == 3 and report.retries == 2 and report.pending == 1


class CrashAfterSend(BaseException):
    """A crash between the destination accepting a batch and the ledger recording it."""


def test_crash_mid_sync_resumes_without_loss_or_new_duplicates(tmp_path: Path) -> None:
    receiver = Receiver(secret="s3cret")
    calls = {"n": 0}

    def crashing(ctx: Any) -> Any:
        sender = make_sender(ctx)
        original = sender.send

        def send(batch: Any) -> None:
            original(batch)
            calls["n"] += 1
            if calls["n"] == 3:
                raise CrashAfterSend

        sender.send = send  # type: ignore[method-assign]
        return sender

    members = {"buyers": list(range(0, 40)), "browsers": list(range(20, 45))}
    with serving(receiver) as url:
        defs = write_definitions(tmp_path / "defs", [hook(url)])
        write_warehouse(tmp_path / "wh", members)
        with pytest.raises(CrashAfterSend):
            sync("hook", defs, tmp_path / "wh", policy=FAST, sender_factory=crashing)
        delivered = len(receiver.seen)
        assert receiver.requests == 3 and delivered > 0
        resumed = sync("hook", defs, tmp_path / "wh", policy=FAST)
    assert resumed.status == "ok" and resumed.resumed == 65 - 14
    # The batch in flight at the crash was sent again, with the same messageIds and content.
    in_flight = len(receiver.bodies[2]["body"]["batch"])
    assert receiver.duplicates == in_flight and receiver.conflicting == 0
    assert receiver.members(receiver.traits) == expected(members)
    assert receiver.members(receiver.tracked) == expected(members)
