"""Explain agrees with the run's memberships for every profile, account and demo audience."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import polars as pl
import pytest

from audience_pipeline.cli import main
from audience_pipeline.explain import Explainer
from audience_pipeline.warehouse.snapshot import open_snapshot
from tests.api.support import AS_OF, DEFINITIONS, Expected, Server, profile_path

DURATION = {"d": 86400, "h": 3600, "m": 60, "w": 604800}


@pytest.fixture(scope="module")
def explainer(warehouse: Path) -> Explainer:
    return Explainer(open_snapshot(warehouse), DEFINITIONS)


@pytest.fixture(scope="module")
def messages(warehouse: Path) -> pl.DataFrame:
    events = pl.read_parquet(warehouse / "_normalized" / "events.parquet")
    owners = pl.read_parquet(warehouse / "_normalized" / "message_profiles.parquet")
    return events.join(owners, on="seq", how="inner")


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("children", []):
        yield from _nodes(child)
    if "child" in node:
        yield from _nodes(node["child"])
    if node["type"] == "audience":
        yield from _nodes(node["explanation"]["condition"])
    for member in node.get("members_shown", []):
        yield from _nodes(member["condition"])


def _check_tree(node: dict[str, Any], traits: dict[str, Any]) -> None:
    """Each node's details agree with its `held` (the engine's value for that node)."""
    for n in _nodes(node):
        kind = n["type"]
        if kind == "all":
            assert n["held"] == all(c["held"] for c in n["children"])
        elif kind == "any":
            assert n["held"] == any(c["held"] for c in n["children"])
        elif kind == "not":
            assert n["held"] != n["child"]["held"]
        elif kind == "audience":
            assert n["held"] == n["explanation"]["member"]
        elif kind == "traits":
            assert n["held"] == (n["result"] is True)
        elif kind == "funnel":
            steps = n["steps"]
            if steps[-1]["performed"]:
                assert n["held"] == (steps[-1]["reached"] > 0)
            positive = [s for s in steps if s["performed"]]
            unreached = [s["step"] for s in positive if s["reached"] == 0]
            if unreached:
                assert n["failed_step"] == unreached[0] and not n["held"]
        elif kind in ("first_time", "stopped", "restarted"):
            assert n["held"] == all(w["held"] for w in n["windows"])
            for w in n["windows"]:
                want_held = (w["matching_events"] == 0 if w["needs"] == "none"
                             else w["matching_events"] >= int(w["needs"].split()[-1]))  # fmt: skip
                assert w["held"] == want_held
        elif kind == "regularly":
            assert n["held"] == (n["periods_held"] >= n["min_periods"])
        elif kind == "sample":
            bucket = n["bucket"]
            assert isinstance(bucket, int) and 0 <= bucket < 10000
            assert n["held"] == (round(n["from"] * 100) <= bucket < round(n["to"] * 100))
        elif kind == "users":
            held, total = n["members_held"], n["members"]
            want = {"any": held > 0, "all": total > 0 and held == total, "none": held == 0}
            assert n["held"] == want[n["mode"]]


def _check_trait_values(node: dict[str, Any], row: dict[str, Any]) -> None:
    """Trait values shown in `traits:` nodes are the table's values (top level only)."""
    for n in _nodes(node):
        if n["type"] == "traits" and n is node:
            for name, value in n["traits"].items():
                if name in row:
                    assert value == row[name], name


def _check_event_counts(node: dict[str, Any], mine: pl.DataFrame) -> None:
    """count(*) of a plain event node (no where, no backfill cut) recounted from the messages."""
    if node["type"] != "event" or "where" in node or "since" in node:
        return
    if "count(*)" not in node["values"]:
        return
    names = node["event"] if isinstance(node["event"], list) else [node["event"]]
    ts = pl.col("timestamp")
    keep = pl.col("event").is_in(names) & pl.col("type").is_in(["track", "page", "screen"])
    keep = keep & (ts <= AS_OF)
    if "within" in node:
        keep = keep & (ts > AS_OF - timedelta(seconds=_seconds(node["within"])))
    if "between" in node:
        low, high = (_seconds(x) for x in node["between"])
        keep = (
            keep & (ts > AS_OF - timedelta(seconds=high)) & (ts <= AS_OF - timedelta(seconds=low))
        )
    assert node["values"]["count(*)"] == mine.filter(keep).height


def _seconds(text: str) -> int:
    return int(text[:-1]) * DURATION[text[-1]]


def test_explain_agrees_with_memberships_for_every_entity(
    explainer: Explainer, expected: Expected, messages: pl.DataFrame
) -> None:
    keys = {lvl: sorted(expected.audiences[lvl]) for lvl in ("user", "account")}
    seen_member = set()
    for profile in expected.users["profile_id"].to_list():
        out = explainer.explain("user", profile, keys["user"])
        row = expected.traits("user", profile)
        mine = messages.filter(pl.col("profile_id") == profile)
        for key, explanation in out.items():
            member = (key, profile) in expected.members
            assert explanation["member"] == member, (key, profile)
            assert explanation["warehouse_member"] == member
            _check_tree(explanation["condition"], row)
            _check_trait_values(explanation["condition"], row)
            for node in _nodes(explanation["condition"]):
                if "values" in node:
                    _check_event_counts(node, mine)
            seen_member.add((key, member))
    for account in expected.accounts["account_id"].to_list():
        out = explainer.explain("account", account, keys["account"])
        row = expected.traits("account", account)
        for key, explanation in out.items():
            member = (key, account) in expected.members
            assert explanation["member"] == member, (key, account)
            _check_tree(explanation["condition"], row)
            _check_trait_values(explanation["condition"], row)
            seen_member.add((key, member))
    # The demo exercises both outcomes for most audiences (a vacuous agreement proves little).
    both = {k for k, m in seen_member if m} & {k for k, m in seen_member if not m}
    assert len(both) >= 18


def test_explain_endpoint(server: Server, explainer: Explainer, expected: Expected) -> None:
    client = server.client()
    members = expected.memberships.filter(pl.col("audience_key") == "checkout_abandoners")
    profile = members["entity_id"][0]
    path = profile_path(expected.external_id(profile), "explain")
    response = client.get(path, params={"audience": "checkout_abandoners"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (
        body == explainer.explain("user", profile, ["checkout_abandoners"])["checkout_abandoners"]
    )
    assert body["member"] is True and body["condition"]["type"] == "funnel"
    account = expected.accounts["account_id"][0]
    account_path = profile_path(f"group_id:{account}", "explain", "accounts")
    body = client.get(account_path, params={"audience": "dormant_business_accounts"}).json()
    assert body["member"] == (("dormant_business_accounts", account) in expected.members)
    assert client.get(path, params={"audience": "nope"}).status_code == 404
    assert client.get(path, params={"audience": "power_accounts"}).status_code == 400
    assert client.get(path).status_code == 400  # audience is required


def test_explain_command(
    warehouse: Path, expected: Expected, capsys: pytest.CaptureFixture[str]
) -> None:
    members = expected.memberships.filter(pl.col("audience_key") == "big_spenders")
    profile = members["entity_id"][0]
    ext = expected.external_id(profile)
    args = ["explain", "big_spenders", ext, "--warehouse", str(warehouse),
            "--definitions", str(DEFINITIONS)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].endswith(": MEMBER") and "total_revenue_90d" in text
    assert main([*args, "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["member"] is True
    assert main(["explain", "big_spenders", "user_id:nobody", "--warehouse", str(warehouse),
                 "--definitions", str(DEFINITIONS)]) == 2  # fmt: skip
    assert "no profile" in capsys.readouterr().err


def test_explain_endpoint_serves_the_profile_of_any_identifier(
    server: Server, expected: Expected
) -> None:
    client: httpx.Client = server.client()
    profile = expected.users["profile_id"][3]
    answers = set()
    for id_type, id_value in (
        expected.identities.filter(pl.col("profile_id") == profile)
        .select("id_type", "id_value")
        .iter_rows()
    ):
        body = client.get(profile_path(f"{id_type}:{id_value}", "explain"),
                          params={"audience": "known_users"}).json()  # fmt: skip
        answers.add((body["entity_id"], body["member"]))
    assert len(answers) == 1 and next(iter(answers))[0] == profile
