"""Test support: a tiny warehouse and definitions on disk, and a flaky Segment-spec receiver."""

from __future__ import annotations

import hashlib
import hmac
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import yaml

from audience_pipeline.warehouse.files import write_table

AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPACE = {
    "space": "test",
    "identifiers": [
        {"type": "user_id", "from": "userId", "limit": 1},
        {"type": "email", "from": ["traits.email", "context.traits.email"], "limit": 5},
        {"type": "anonymous_id", "from": "anonymousId", "limit": 100},
    ],
}
AUDIENCES = [
    {"key": "buyers", "name": "Buyers", "condition": {"event": "Order Completed"}},
    {"key": "browsers", "name": "Browsers", "condition": {"event": "Page Viewed"}},
    {"key": "big_accounts", "name": "Big accounts", "level": "account",
     "condition": {"event": "Order Completed"}},
]  # fmt: skip


def write_definitions(root: Path, destinations: list[dict[str, Any]]) -> Path:
    """A definitions folder with SPACE, AUDIENCES and the given destinations."""
    (root / "audiences").mkdir(parents=True, exist_ok=True)
    (root / "traits").mkdir(exist_ok=True)
    (root / "destinations").mkdir(exist_ok=True)
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    for audience in AUDIENCES:
        (root / "audiences" / f"{audience['key']}.yaml").write_text(yaml.safe_dump(audience))
    for old in (root / "destinations").glob("*.yaml"):
        old.unlink()
    for destination in destinations:
        (root / "destinations" / f"{destination['name']}.yaml").write_text(
            yaml.safe_dump(destination)
        )
    return root


def profile(n: int) -> str:
    return f"p_{n:06d}"


def identities_for(profiles: range, *, extra_emails: int = 1) -> pl.DataFrame:
    """Profile n holds user u<n>, anonymous a<n>, and emails; every 5th has no user id."""
    rows: list[tuple[str, str, str]] = []
    for n in profiles:
        if n % 5:
            rows.append((profile(n), "user_id", f"u{n}"))
        rows.append((profile(n), "anonymous_id", f"a{n}"))
        for e in range(1 + (extra_emails if n % 3 == 0 else 0)):
            rows.append((profile(n), "email", f"user{n}.{e}@example.com"))
    return pl.DataFrame(rows, schema=["profile_id", "id_type", "id_value"], orient="row")


def write_warehouse(
    warehouse: Path,
    members: dict[str, list[int]],
    accounts: dict[str, dict[str, list[int]]] | None = None,
    *,
    as_of: datetime = AS_OF,
    population: int = 200,
    identities: pl.DataFrame | None = None,
) -> None:
    """memberships / identities / account_user_memberships as compute would write them."""
    rows = [(key, "user", profile(n)) for key, ns in members.items() for n in ns]
    member_rows = []
    for key, by_account in (accounts or {}).items():
        for account, ns in by_account.items():
            rows.append((key, "account", account))
            member_rows.extend((key, account, profile(n)) for n in ns)
    memberships = pl.DataFrame(rows, schema=["audience_key", "level", "entity_id"], orient="row")
    memberships = memberships.with_columns(
        pl.lit(as_of).cast(pl.Datetime("us", "UTC")).alias("as_of")
    )
    write_table(memberships, warehouse, "memberships")
    write_table(identities if identities is not None else identities_for(range(population)),
                warehouse, "identities")  # fmt: skip
    write_table(
        pl.DataFrame(member_rows, schema=["audience_key", "account_id", "profile_id"], orient="row"),
        warehouse, "account_user_memberships",
    )  # fmt: skip


def user_key(n: int) -> str:
    """What a receiver keys profile n by: its userId, else its anonymousId."""
    return f"u{n}" if n % 5 else f"a{n}"


@dataclass
class Receiver:
    """State a Segment-spec receiver builds: dedupes by messageId, applies identify/track/group."""

    secret: str | None = None
    fail_every: int = 0  # every n-th request fails (0: never)
    requests: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    seen: dict[str, bytes] = field(default_factory=dict)  # messageId -> message JSON
    duplicates: int = 0
    conflicting: int = 0
    traits: dict[tuple[str, str], bool] = field(default_factory=dict)  # (audience, who) -> value
    tracked: dict[tuple[str, str], bool] = field(default_factory=dict)
    groups: dict[tuple[str, str], bool] = field(default_factory=dict)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stall: threading.Event | None = None  # when set: answer nothing until cleared

    def apply(self, body: dict[str, Any]) -> None:
        for message in body["batch"]:
            encoded = orjson.dumps(message, option=orjson.OPT_SORT_KEYS)
            mid = message["messageId"]
            if mid in self.seen:
                self.duplicates += 1
                self.conflicting += self.seen[mid] != encoded
                continue
            self.seen[mid] = encoded
            who = message.get("userId") or message.get("anonymousId")
            key = message["context"]["personas"]["computation_key"]
            if message["type"] == "identify":
                self.traits[(key, who)] = message["traits"][key]
            elif message["type"] == "track":
                self.tracked[(key, who)] = message["event"] == "Audience Entered"
            elif message["type"] == "group":
                self.groups[(key, message["groupId"])] = message["traits"][key]

    def members(self, table: dict[tuple[str, str], bool]) -> set[tuple[str, str]]:
        return {k for k, v in table.items() if v}


FAILURE_KINDS = ("500", "429", "drop_before", "drop_after")


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each answer waits ~40 ms for a delayed ACK

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return None

        def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
            payload = b'{"success": true}' if status == 200 else b'{"error": "nope"}'
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.lock:
                receiver.requests += 1
                number = receiver.requests
            if receiver.secret is not None:
                expected = hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers.get("X-Signature", "")):
                    with receiver.lock:
                        receiver.failures["bad_signature"] += 1
                    self._answer(401)
                    return
            kind = None
            if receiver.fail_every and number % receiver.fail_every == 0:
                kind = FAILURE_KINDS[(number // receiver.fail_every) % len(FAILURE_KINDS)]
            parsed = orjson.loads(body)
            if kind is None or kind == "drop_after":
                with receiver.lock:
                    receiver.bodies.append({"headers": dict(self.headers), "body": parsed})
                    receiver.apply(parsed)
            if kind is None:
                self._answer(200)
                return
            with receiver.lock:
                receiver.failures[kind] += 1
            if kind == "500":
                self._answer(500)
            elif kind == "429":
                self._answer(429, {"Retry-After": "0"})
            else:  # a dropped connection: no answer at all
                self.close_connection = True
                self.connection.close()

    return Handler


@contextmanager
def serving(receiver: Receiver) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 for ``receiver``; yields its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
