"""The churn guard (max_change): held, approved, first sync never held, exit code 3."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from audience_pipeline.cli import main
from audience_pipeline.destinations import sync
from audience_pipeline.destinations.config import load_destinations
from audience_pipeline.destinations.ledger import ledger_path
from audience_pipeline.destinations.retry import RetryPolicy
from audience_pipeline.orchestration.reverse_etl import GUARD_CHECK, reverse_etl_assets
from tests.destinations.support import (
    Receiver,
    profile,
    serving,
    user_key,
    write_definitions,
    write_warehouse,
)

FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)


def hook(url: str, **extra: Any) -> dict[str, Any]:
    return {"name": "hook", "type": "webhook", "settings": {"url": url}, "batch_size": 9,
            "send": ["identify"], "audiences": ["buyers", "browsers"], **extra}  # fmt: skip


def members_of(receiver: Receiver, key: str) -> set[str]:
    return {who for (audience, who), value in receiver.traits.items() if audience == key and value}


def keys(ns: range | list[int]) -> set[str]:
    return {user_key(n) for n in ns}


def holds(warehouse: Path, name: str) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(ledger_path(warehouse, name))
    try:
        return con.execute(
            "SELECT audience_key, previous_size, entered, exited, change_limit, status "
            "FROM holds ORDER BY hold_id"
        ).fetchall()
    finally:
        con.close()


def test_held_then_approved_against_a_real_receiver(tmp_path: Path) -> None:
    receiver = Receiver()
    wh = tmp_path / "wh"
    with serving(receiver) as url:
        defs = write_definitions(tmp_path / "defs", [hook(url, max_change=0.25)])
        # First sync: a backfill of 40 + 20 members, far above 25% of nothing, never held.
        write_warehouse(wh, {"buyers": list(range(40)), "browsers": list(range(20))})
        first = sync("hook", defs, wh, policy=FAST)
        assert first.status == "ok" and first.held == []
        assert members_of(receiver, "buyers") == keys(range(40))
        # A bad input empties buyers (40 exits > 10 allowed); browsers moves 5 of 20 (= 25%).
        browsers = [*range(3, 20), 20, 21]
        write_warehouse(wh, {"buyers": [], "browsers": browsers})
        second = sync("hook", defs, wh, policy=FAST)
        assert second.status == "held"
        assert [(h.audience_key, h.previous_size, h.entered, h.exited, h.change_limit)
                for h in second.held] == [("buyers", 40, 0, 40, 10.0)]  # fmt: skip
        assert "buyers" in (second.error or "")
        assert members_of(receiver, "buyers") == keys(range(40))  # nothing sent for buyers
        assert members_of(receiver, "browsers") == keys(browsers)  # the rest was sent
        assert second.entered == {"browsers": 2} and second.exited == {"browsers": 3}
        assert holds(wh, "hook") == [("buyers", 40, 0, 40, 10.0, "held")]
        # Nothing new: the next sync holds the same numbers again, still sending nothing.
        again = sync("hook", defs, wh, policy=FAST)
        assert again.status == "held" and again.sent == 0
        assert [row[-1] for row in holds(wh, "hook")] == ["superseded", "held"]
        approved = sync("hook", defs, wh, policy=FAST, approve=["buyers"])
        assert approved.status == "ok" and approved.approved == ["buyers"]
        assert approved.sent == 40
        assert members_of(receiver, "buyers") == set()
        assert holds(wh, "hook")[-1][-1] == "approved"
        with pytest.raises(ValueError, match="no held changes for buyers"):
            sync("hook", defs, wh, policy=FAST, approve=["buyers"])


def test_cli_exits_3_naming_the_audience_and_approve_sends(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    files = {"name": "drop", "type": "files", "settings": {"path": str(out)}, "max_change": 3}
    defs = write_definitions(tmp_path / "defs", [files])
    wh = tmp_path / "wh"
    base = ["--definitions", str(defs), "--warehouse", str(wh)]
    write_warehouse(wh, {"buyers": list(range(10)), "browsers": [1]})
    assert main(["sync", "drop", *base]) == 0
    capsys.readouterr()
    write_warehouse(
        wh, {"buyers": list(range(3, 10)), "browsers": [1, 2, 3, 4, 5]}
    )  # 3 exits, 4 entries
    assert main(["sync", "drop", *base]) == 3
    err = capsys.readouterr().err
    assert "held: browsers: +4 / -0 against 1 synced exceeds max_change 3" in err
    assert "--approve browsers" in err and "buyers:" not in err  # 3 changes: not more than 3
    with (out / "browsers.csv").open(newline="") as handle:
        assert [r["entity_id"] for r in csv.DictReader(handle)] == [profile(1)]
    with (out / "buyers.csv").open(newline="") as handle:
        assert [r["entity_id"] for r in csv.DictReader(handle)] == [
            profile(n) for n in range(3, 10)
        ]
    assert main(["sync", "drop", *base, "--approve", "browsers"]) == 0
    with (out / "browsers.csv").open(newline="") as handle:
        assert [r["entity_id"] for r in csv.DictReader(handle)] == [profile(n) for n in range(1, 6)]
    assert main(["sync", "drop", *base, "--approve", "buyers"]) == 2
    assert "no held changes for buyers" in capsys.readouterr().err


def test_first_sync_of_a_newly_connected_audience_is_never_held(tmp_path: Path) -> None:
    out = tmp_path / "out"
    wh = tmp_path / "wh"
    files = {"name": "drop", "type": "files", "settings": {"path": str(out)}, "max_change": 0,
             "audiences": ["buyers"]}  # fmt: skip
    defs = write_definitions(tmp_path / "defs", [files])
    write_warehouse(wh, {"buyers": list(range(5)), "browsers": list(range(50))})
    assert sync("drop", defs, wh).status == "ok"
    write_definitions(defs, [{**files, "audiences": ["buyers", "browsers"]}])
    report = sync("drop", defs, wh)  # browsers: backfill of 50 with max_change 0
    assert report.status == "ok" and report.entered == {"browsers": 50}
    assert report.backfilled == ["browsers"]
    # An audience that was synced while empty is no longer new: its first members are held.
    write_warehouse(wh, {"buyers": [], "browsers": list(range(50))})
    assert sync("drop", defs, wh).status == "held"
    assert sync("drop", defs, wh, approve=["buyers"]).status == "ok"
    write_warehouse(wh, {"buyers": [7], "browsers": list(range(50))})
    held = sync("drop", defs, wh)
    assert [(h.audience_key, h.previous_size, h.entered) for h in held.held] == [("buyers", 0, 1)]


def test_max_change_is_validated(tmp_path: Path) -> None:
    bad = [{"name": f"d{i}", "type": "files", "settings": {"path": "x"}, "max_change": v}
           for i, v in enumerate([-1, "25%", True, -0.5, float("nan")])]  # fmt: skip
    good = [{"name": "s", "type": "files", "settings": {"path": "x"}, "max_change": 0.25},
            {"name": "c", "type": "files", "settings": {"path": "x"}, "max_change": 500}]  # fmt: skip
    defs = write_definitions(tmp_path / "defs", bad + good)
    found, issues = load_destinations(defs)
    assert sorted(i.key or "" for i in issues) == ["d0", "d1", "d2", "d3", "d4"]
    assert all(i.field == "max_change" for i in issues)
    by_name = {d.name: d.max_change for d in found}
    assert by_name == {"c": 500, "s": 0.25}
    assert isinstance(by_name["c"], int) and isinstance(by_name["s"], float)


def test_dagster_reports_a_hold_as_a_failed_check_with_the_numbers(tmp_path: Path) -> None:
    files = {"name": "drop", "type": "files", "settings": {"path": str(tmp_path / "out")},
             "max_change": 0.5}  # fmt: skip
    defs = write_definitions(tmp_path / "defs", [files])
    wh = tmp_path / "wh"
    write_warehouse(wh, {"buyers": list(range(10))})
    first = dg.materialize(reverse_etl_assets(defs, wh))
    checks = first.get_asset_check_evaluations()
    assert [(c.check_name, c.passed) for c in checks] == [(GUARD_CHECK, True)]
    write_warehouse(wh, {"buyers": [0]})
    result = dg.materialize(reverse_etl_assets(defs, wh))
    assert result.success  # what could be sent was sent; the hold is the check's to report
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == GUARD_CHECK and not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    (held,) = check.metadata["held_audiences"].value  # type: ignore[misc]
    assert (held["audience_key"], held["previous_size"], held["exited"]) == ("buyers", 10, 9)
    assert "sync drop --approve buyers" in str(check.metadata["approve_with"].value)


def test_sensor_does_not_retry_a_held_snapshot_but_syncs_the_next(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from audience_pipeline.orchestration.reverse_etl import destinations_to_sync

    files = {"name": "drop", "type": "files", "settings": {"path": str(tmp_path / "out")},
             "max_change": 1}  # fmt: skip
    defs = write_definitions(tmp_path / "defs", [files])
    wh = tmp_path / "wh"
    write_warehouse(wh, {"buyers": list(range(10))})
    assert sync("drop", defs, wh).status == "ok"
    write_warehouse(wh, {"buyers": [1]}, as_of=datetime(2026, 3, 2, tzinfo=UTC))
    assert sync("drop", defs, wh).status == "held"
    assert destinations_to_sync(defs, wh) == []  # asking again would only hold again
    write_warehouse(wh, {"buyers": [1, 2]}, as_of=datetime(2026, 3, 3, tzinfo=UTC))
    assert [d.name for d, _ in destinations_to_sync(defs, wh)] == ["drop"]
    # Disconnecting the audience closes its hold; reconnecting backfills, never held.
    write_definitions(defs, [{**files, "audiences": ["browsers"]}])
    assert sync("drop", defs, wh).status == "ok"
    assert holds(wh, "drop")[-1][-1] == "disconnected"
    write_definitions(defs, [files])
    again = sync("drop", defs, wh)
    assert again.status == "ok" and "buyers" in again.backfilled
