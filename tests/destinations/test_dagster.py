"""Reverse-ETL assets and the membership-change sensor."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from audience_pipeline.orchestration.reverse_etl import (
    asset_key,
    reverse_etl_assets,
    reverse_etl_sensor,
)
from tests.destinations.support import write_definitions, write_warehouse


def _defs(tmp_path: Path, interval: str) -> Path:
    return write_definitions(tmp_path / "defs", [
        {"name": "drop-a", "type": "files", "settings": {"path": str(tmp_path / "a")},
         "min_interval": interval},
        {"name": "broken", "type": "webhook", "settings": {"url": "http://127.0.0.1:9/x"},
         "max_attempts": 1},
    ])  # fmt: skip


def test_assets_materialize_with_counts_and_fail_alone(tmp_path: Path) -> None:
    defs = _defs(tmp_path, "1h")
    write_warehouse(tmp_path / "wh", {"buyers": [1, 2, 3]})
    assets = reverse_etl_assets(defs, tmp_path / "wh")
    assert [a.key for a in assets] == [asset_key("broken"), asset_key("drop-a")]  # by file name
    assert asset_key("drop-a") == dg.AssetKey(["reverse_etl", "drop_a"])
    result = dg.materialize(assets, raise_on_error=False)
    materialized = {e.asset_key: e for e in result.get_asset_materialization_events()}
    assert list(materialized) == [asset_key("drop-a")]
    metadata = materialized[asset_key("drop-a")].materialization.metadata
    assert metadata["sent"].value == 3 and metadata["pending"].value == 0
    assert not result.success  # the broken destination failed its own step only


def test_sensor_requests_changed_destinations_no_more_often_than_their_interval(
    tmp_path: Path,
) -> None:
    defs = _defs(tmp_path, "1h")
    wh = tmp_path / "wh"
    write_warehouse(wh, {"buyers": [1, 2, 3]})
    sensor = reverse_etl_sensor(defs, wh)
    first = sensor(dg.build_sensor_context())
    assert isinstance(first, dg.SensorResult)
    assert sorted(r.tags["destination"] for r in first.run_requests or []) == ["broken", "drop-a"]
    dg.materialize(reverse_etl_assets(defs, wh), raise_on_error=False)
    # New memberships: drop-a synced less than its hour ago and waits; broken (no interval,
    # last sync failed) is asked again.
    write_warehouse(wh, {"buyers": [1, 2]}, as_of=datetime(2026, 3, 2, tzinfo=UTC))
    later = sensor(dg.build_sensor_context())
    assert [r.tags["destination"] for r in later.run_requests or []] == ["broken"]
    defs = _defs(tmp_path, "1m")
    from audience_pipeline.orchestration.reverse_etl import destinations_to_sync

    soon = datetime.now(UTC).replace(year=2100)
    assert [d.name for d, _ in destinations_to_sync(defs, wh, soon)] == ["broken", "drop-a"]


def test_sensor_leaves_out_destinations_whose_secrets_are_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = write_definitions(tmp_path / "defs", [
        {"name": "drop-a", "type": "files", "settings": {"path": str(tmp_path / "a")}},
        {"name": "warehouse-pg", "type": "postgres", "settings": {"dsn_env": "AP_TEST_DSN_UNSET"}},
    ])  # fmt: skip
    wh = tmp_path / "wh"
    write_warehouse(wh, {"buyers": [1, 2, 3]})
    monkeypatch.delenv("AP_TEST_DSN_UNSET", raising=False)
    sensor = reverse_etl_sensor(defs, wh)
    result = sensor(dg.build_sensor_context())
    assert [r.tags["destination"] for r in result.run_requests or []] == ["drop-a"]
    # Once the variable is set, the destination is due like any other.
    monkeypatch.setenv("AP_TEST_DSN_UNSET", "postgresql://127.0.0.1:1/x")
    again = sensor(dg.build_sensor_context())
    assert sorted(r.tags["destination"] for r in again.run_requests or []) == [
        "drop-a",
        "warehouse-pg",
    ]
