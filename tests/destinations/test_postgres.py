"""The postgres destination against a real throwaway PostgreSQL server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from audience_pipeline.destinations import sync
from audience_pipeline.destinations.retry import RetryPolicy
from audience_pipeline.destinations.sync import make_sender
from tests.destinations.support import profile, write_definitions, write_warehouse
from tests.support.postgres import PostgresServer

FAST = RetryPolicy(max_attempts=4, base_delay=0.001)


def pg(schema: str) -> dict[str, Any]:
    return {"name": "db", "type": "postgres", "batch_size": 9,
            "settings": {"dsn_env": "AP_TEST_DSN", "schema": schema}}  # fmt: skip


def current(dsn: str, schema: str) -> set[tuple[str, str, str]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            f"SELECT audience_key, level, entity_id FROM {schema}.audience_memberships"  # noqa: S608
        ).fetchall()
    return {tuple(r) for r in rows}


def expected(
    members: dict[str, list[int]], accounts: dict[str, list[str]]
) -> set[tuple[str, str, str]]:
    out = {(k, "user", profile(n)) for k, ns in members.items() for n in ns}
    return out | {(k, "account", a) for k, accs in accounts.items() for a in accs}


def test_upserts_membership_and_logs_changes(tmp_path: Path, postgres: PostgresServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("AP_TEST_DSN", postgres.dsn)
    defs = write_definitions(tmp_path / "defs", [pg("s1")])
    rounds = [
        ({"buyers": list(range(0, 30)), "browsers": [1, 2]}, {"big_accounts": {"acme": [1]}}),
        ({"buyers": list(range(5, 40)), "browsers": []}, {"big_accounts": {"initech": [2]}}),
    ]
    for members, accounts in rounds:
        write_warehouse(tmp_path / "wh", members, accounts)
        report = sync("db", defs, tmp_path / "wh", policy=FAST)
        assert report.status == "ok", report.error
        assert current(postgres.dsn, "s1") == expected(
            members, {k: list(v) for k, v in accounts.items()}
        )
    with psycopg.connect(postgres.dsn) as conn:
        log = conn.execute(
            "SELECT change, count(*) FROM s1.audience_membership_changes GROUP BY change ORDER BY 1"
        ).fetchall()
        ids = conn.execute(
            "SELECT external_ids FROM s1.audience_memberships WHERE entity_id = %s "
            "AND audience_key = 'buyers'", (profile(6),),
        ).fetchone()  # fmt: skip
    # entered: 30 + 2 + 1, then 10 + 1; exited: 5 + 2 + 1
    assert log == [("entered", 44), ("exited", 8)]
    assert ids is not None and ids[0] == {
        "user_id": ["u6"], "email": ["user6.0@example.com", "user6.1@example.com"],
        "anonymous_id": ["a6"],
    }  # fmt: skip


def test_resent_batch_is_idempotent_and_crash_resumes(tmp_path: Path, postgres: PostgresServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("AP_TEST_DSN", postgres.dsn)
    defs = write_definitions(tmp_path / "defs", [pg("s2")])
    members = {"buyers": list(range(0, 50))}
    write_warehouse(tmp_path / "wh", members)

    class Crash(BaseException):
        pass

    calls = {"n": 0}

    def crashing(ctx: Any) -> Any:
        sender = make_sender(ctx)
        original = sender.send

        def send(batch: Any) -> None:
            original(batch)
            original(batch)  # a resend of a delivered batch changes nothing
            calls["n"] += 1
            if calls["n"] == 2:
                raise Crash

        sender.send = send  # type: ignore[method-assign]
        return sender

    with pytest.raises(Crash):
        sync("db", defs, tmp_path / "wh", policy=FAST, sender_factory=crashing)
    assert len(current(postgres.dsn, "s2")) == 18
    report = sync("db", defs, tmp_path / "wh", policy=FAST)
    assert report.status == "ok" and report.resumed == 50 - 9
    assert current(postgres.dsn, "s2") == expected(members, {})
    with psycopg.connect(postgres.dsn) as conn:
        logged = conn.execute("SELECT count(*) FROM s2.audience_membership_changes").fetchone()
    assert logged == (50,)


def test_unreachable_database_fails_the_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AP_TEST_DSN", "postgresql://nobody@127.0.0.1:9/none?connect_timeout=1")
    defs = write_definitions(tmp_path / "defs", [pg("s3")])
    write_warehouse(tmp_path / "wh", {"buyers": [1, 2]})
    report = sync("db", defs, tmp_path / "wh", policy=RetryPolicy(max_attempts=2, base_delay=0.001))
    assert report.status == "failed" and report.pending == 2 and report.retries == 1
