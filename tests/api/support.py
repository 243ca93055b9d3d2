"""Helpers for the Profile API tests: a demo warehouse, a real server process, expectations."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl

from audience_pipeline.demo.generate import generate
from audience_pipeline.service import run_compute
from audience_pipeline.spec.loader import load_definitions

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "definitions"
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)
TOKEN = "test-token-3f9a"
SPACE = "demo"


def make_events(folder: Path, *, seed: int = 0, events: int = 4000) -> Path:
    """Demo events dense enough that most demo audiences have members and non-members."""
    generate(folder, events=events, profiles=200, accounts=10, days=100, seed=seed,
             as_of=AS_OF, gzip=False)  # fmt: skip
    return folder


def compute(events: Path, warehouse: Path, as_of: datetime = AS_OF) -> None:
    run_compute(events, DEFINITIONS, as_of, warehouse)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def basic(token: str, password: str = "") -> str:
    raw = f"{token}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()


@dataclass
class Server:
    """A `audience-pipeline serve` process on 127.0.0.1."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": basic(token)} if token is not None else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    warehouse: Path, log: Path, *, poll: float = 0.0, env: dict | None = None
) -> Server:
    port = free_port()
    command = [
        sys.executable, "-m", "audience_pipeline.cli", "serve", "--warehouse", str(warehouse),
        "--definitions", str(DEFINITIONS), "--port", str(port), "--poll", str(poll),
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "AUDIENCE_PIPELINE_API_TOKEN": TOKEN,
                   **(env or {})}  # fmt: skip
    handle = log.open("wb")
    process = subprocess.Popen(command, env=environment, stdout=handle, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}")


def profile_path(external_id: str, resource: str, collection: str = "users") -> str:
    return f"/v1/spaces/{SPACE}/collections/{collection}/profiles/{external_id}/{resource}"


def pages(client: httpx.Client, path: str, params: dict[str, Any], key: str) -> list[Any]:
    """Follow `next` cursors to the end; every page's items in order."""
    out: list[Any] = []
    nxt = None
    for _ in range(10_000):
        response = client.get(path, params={**params, **({"next": nxt} if nxt else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        items = body[key]
        out.extend(items.items() if isinstance(items, dict) else items)
        cursor = body["cursor"]
        assert cursor["has_more"] == bool(cursor["next"])
        if not cursor["has_more"]:
            return out
        nxt = cursor["next"]
    raise AssertionError("pagination did not end")


@dataclass
class Expected:
    """What the warehouse tables say, read with Polars independently of the API code."""

    warehouse: Path

    def __post_init__(self) -> None:
        run = orjson.loads((self.warehouse / "current" / "run.json").read_bytes())
        self.json_columns = {k: set(v) for k, v in run["json_columns"].items()}
        definitions, _ = load_definitions(str(DEFINITIONS))
        self.audiences = {lvl: {a.key for a in definitions.audiences if a.level == lvl}
                          for lvl in ("user", "account")}  # fmt: skip
        self.identities = pl.read_parquet(self.warehouse / "identities.parquet")
        self.users = pl.read_parquet(self.warehouse / "user_traits.parquet")
        self.accounts = pl.read_parquet(self.warehouse / "account_traits.parquet")
        columns = {"user": self.users.columns, "account": self.accounts.columns}
        # A SQL trait is served as its `<key>.<field>` columns, each a computed trait.
        self.computed = {
            lvl: {t.key for t in definitions.traits if t.level == lvl and t.kind != "sql"}
            | {c for t in definitions.traits if t.level == lvl and t.kind == "sql"
               for c in columns[lvl] if c.startswith(t.key + ".")}
            for lvl in ("user", "account")
        }  # fmt: skip
        self.memberships = pl.read_parquet(self.warehouse / "memberships.parquet")
        self.members = set(self.memberships.select("audience_key", "entity_id").iter_rows())

    def traits(self, level: str, entity: str) -> dict[str, Any]:
        table, key = (
            (self.users, "profile_id") if level == "user" else (self.accounts, "account_id")
        )
        row = table.filter(pl.col(key) == entity).to_dicts()[0]
        json_cols = self.json_columns.get(f"{level}_traits", set())
        out = {}
        for name, value in row.items():
            if name == key:
                continue
            custom = name not in self.computed[level] and name not in self.audiences[level]
            if custom and value is None:
                continue
            out[name] = orjson.loads(value) if name in json_cols and value is not None else value
        return out

    def external_id(self, profile: str) -> str:
        """A user_id (else email, else anonymous id) of the profile, as `type:value`."""
        ids = dict(
            self.identities.filter(pl.col("profile_id") == profile)
            .sort("id_type", "id_value", descending=[True, False])
            .select("id_type", "id_value")
            .iter_rows()
        )
        for id_type in ("user_id", "email", "anonymous_id"):
            if id_type in ids:
                return f"{id_type}:{ids[id_type]}"
        return f"profile_id:{profile}"
