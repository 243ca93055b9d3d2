"""events, external_ids, metadata and links, against the warehouse and the raw input."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import polars as pl
import pytest

from tests.api.support import AS_OF, Expected, Server, pages, profile_path


@pytest.fixture(scope="module")
def client(server: Server) -> httpx.Client:
    return server.client()


@pytest.fixture(scope="module")
def messages(warehouse: Path) -> pl.DataFrame:
    """Normalized messages with their profile, read straight from the files."""
    events = pl.read_parquet(warehouse / "_normalized" / "events.parquet")
    owners = pl.read_parquet(warehouse / "_normalized" / "message_profiles.parquet")
    return events.join(owners, on="seq", how="inner")


@pytest.fixture(scope="module")
def raw(demo: Path) -> dict[str, dict]:
    """The input lines by messageId (the first copy of retried messages)."""
    out: dict[str, dict] = {}
    for path in sorted((demo / "events").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                message = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(message, dict) and isinstance(message.get("messageId"), str):
                out.setdefault(message["messageId"], message)
    return out


def _busy_profiles(messages: pl.DataFrame, n: int = 6) -> list[str]:
    recent = messages.filter(
        pl.col("type").is_in(["track", "page", "screen"])
        & (pl.col("timestamp") > AS_OF - timedelta(days=14))
    )
    counts = recent.group_by("profile_id").len().sort("len", "profile_id", descending=True)
    return counts["profile_id"].head(n).to_list()


def test_events_are_the_last_14_days_newest_first_across_pages(
    client: httpx.Client, messages: pl.DataFrame, raw: dict[str, dict]
) -> None:
    for profile in _busy_profiles(messages):
        want = (
            messages.filter(
                (pl.col("profile_id") == profile)
                & pl.col("type").is_in(["track", "page", "screen"])
                & (pl.col("timestamp") > AS_OF - timedelta(days=14))
                & (pl.col("timestamp") <= AS_OF)
            )
            .sort("timestamp", "seq", descending=True)["message_id"]
            .to_list()
        )
        got = pages(client, profile_path(f"profile_id:{profile}", "events"), {"limit": 3}, "data")
        assert [e["message_id"] for e in got] == want and want
        for event in got:
            source = raw[event["message_id"]]
            assert event["type"] == source["type"]
            assert event["context"] == source.get("context", {})
            assert event["related"] == {"users": profile}
            if source["type"] == "track":
                assert event["event"] == source["event"]
                assert event["properties"] == source.get("properties", {})
            else:  # page/screen: name, url and path may be filled in from the call
                assert source.get("properties", {}).items() <= event["properties"].items()


def test_events_filters_and_ascending_order(client: httpx.Client, messages: pl.DataFrame) -> None:
    profile = _busy_profiles(messages, 1)[0]
    path = profile_path(f"profile_id:{profile}", "events")
    everything = pages(client, path, {"limit": 200, "sort": "asc"}, "data")
    stamps = [e["timestamp"] for e in everything]
    assert stamps == sorted(stamps)
    name = everything[0]["event"]
    only = pages(client, path, {"include": name}, "data")
    assert only and {e["event"] for e in only} == {name}
    rest = pages(client, path, {"exclude": name}, "data")
    assert len(only) + len(rest) == len(everything)
    middle = stamps[len(stamps) // 2]
    later = pages(client, path, {"start": middle}, "data")
    assert all(e["timestamp"] > middle for e in later)
    earlier = pages(client, path, {"end": middle}, "data")
    assert all(e["timestamp"] < middle for e in earlier)
    assert client.get(path, params={"start": "yesterday"}).status_code == 400
    # Readable dates whose UTC instant is outside years 1-9999: 400 with the reason, never 500.
    for name in ("start", "end"):
        for text in ("9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59"):
            response = client.get(path, params={name: text})
            assert response.status_code == 400, (name, text)
            assert "out of range" in response.text
    edge = client.get(path, params={"start": "0001-01-01T00:00:00Z", "end": "9999-12-31"})
    assert edge.status_code == 200
    assert client.get(path, params={"sort": "sideways"}).status_code == 400


def test_account_events_pool_the_members(client: httpx.Client, messages: pl.DataFrame) -> None:
    groups = messages.filter(pl.col("type") == "group").select("group_id", "profile_id").unique()
    account = (
        groups.group_by("group_id").len().sort("len", "group_id", descending=True)["group_id"][0]
    )
    members = groups.filter(pl.col("group_id") == account)["profile_id"].to_list()
    got = pages(
        client, profile_path(f"group_id:{account}", "events", "accounts"), {"limit": 50}, "data"
    )
    want = messages.filter(
        pl.col("profile_id").is_in(members)
        & pl.col("type").is_in(["track", "page", "screen"])
        & (pl.col("timestamp") > AS_OF - timedelta(days=14))
    )
    assert sorted(e["message_id"] for e in got) == sorted(want["message_id"].to_list())


def test_external_ids_are_the_profiles_identifiers(
    client: httpx.Client, expected: Expected, messages: pl.DataFrame
) -> None:
    for profile in expected.users["profile_id"].head(30).to_list():
        want = expected.identities.filter(pl.col("profile_id") == profile)
        got = pages(
            client, profile_path(f"profile_id:{profile}", "external_ids"), {"limit": 1}, "data"
        )
        assert sorted((e["type"], e["id"]) for e in got) == sorted(
            want.select("id_type", "id_value").iter_rows()
        )
        for item in got:
            assert item["collection"] == "users" and item["encoding"] == "none"
            carrying = messages.filter(
                pl.col("ids").list.contains({"id_type": item["type"], "id_value": item["id"]})
            )
            first = carrying["timestamp"].min()
            assert item["created_at"] == first.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    path = profile_path(f"profile_id:{profile}", "external_ids")
    only = client.get(path, params={"include": "user_id,email"}).json()["data"]
    assert {e["type"] for e in only} <= {"user_id", "email"}


def test_metadata_is_the_first_and_last_message(
    client: httpx.Client, expected: Expected, messages: pl.DataFrame
) -> None:
    for profile in expected.users["profile_id"].head(20).to_list():
        mine = messages.filter(pl.col("profile_id") == profile)
        meta = client.get(profile_path(f"profile_id:{profile}", "metadata")).json()["metadata"]
        first, last = mine["timestamp"].min(), mine["timestamp"].max()
        assert meta["created_at"] == first.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
        assert meta["updated_at"] == last.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
        # On a timestamp tie either message may be named.
        assert meta["first_message_id"] in mine.filter(pl.col("timestamp") == first)["message_id"]
        assert meta["last_message_id"] in mine.filter(pl.col("timestamp") == last)["message_id"]


def test_links_between_users_and_accounts(
    client: httpx.Client, expected: Expected, messages: pl.DataFrame
) -> None:
    pairs = set(
        messages.filter(pl.col("type") == "group").select("profile_id", "group_id").iter_rows()
    )
    accounts = expected.accounts["account_id"].to_list()
    for account in accounts:
        got = pages(
            client, profile_path(f"group_id:{account}", "links", "accounts"), {"limit": 2}, "data"
        )
        member_ids = set()
        for link in got:
            assert link["to_collection"] == "users"
            profiles = {
                p for t, v in ((e["type"], e["id"]) for e in link["external_ids"])
                for p in expected.identities.filter((pl.col("id_type") == t) & (pl.col("id_value") == v))["profile_id"]
            }  # fmt: skip
            assert len(profiles) == 1
            member_ids |= profiles
        assert member_ids == {p for p, g in pairs if g == account}
    users = sorted({p for p, _ in pairs})[:15]
    for profile in users:
        got = pages(client, profile_path(f"profile_id:{profile}", "links"), {"limit": 1}, "data")
        assert [link["to_collection"] for link in got] == ["accounts"] * len(got)
        assert {link["external_ids"][0]["id"] for link in got} == {
            g for p, g in pairs if p == profile
        }


def test_members_pages_return_each_member_once(client: httpx.Client, expected: Expected) -> None:
    for key in sorted(expected.audiences["user"] | expected.audiences["account"]):
        want = sorted(
            expected.memberships.filter(pl.col("audience_key") == key)["entity_id"].to_list()
        )
        path = f"/v1/spaces/demo/audiences/{key}/members"
        got = pages(client, path, {"limit": 7}, "data")
        assert [m["id"] for m in got] == want
        body = client.get(path, params={"limit": 1, "verbose": "true"}).json()
        assert body["size"] == len(want)
        if want:
            collection = body["data"][0]["collection"]
            assert collection == ("users" if key in expected.audiences["user"] else "accounts")
            assert body["data"][0]["external_ids"]
    assert client.get("/v1/spaces/demo/audiences/no_such_audience/members").status_code == 404
