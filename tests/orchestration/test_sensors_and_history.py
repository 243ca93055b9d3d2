"""Sensors (build_sensor_context), atomic writes under a kill, history == daily snapshots."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from audience_pipeline.membership.diff import membership_changes, membership_history
from audience_pipeline.membership.registry import Registry
from audience_pipeline.membership.snapshots import members_on, snapshot_of, take_snapshot
from audience_pipeline.orchestration.definitions import build_definitions
from audience_pipeline.orchestration.resources import PipelineSettings
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.warehouse.files import write_table


def _evaluate(defs: dg.Definitions, name: str, cursor: str | None, instance: dg.DagsterInstance):  # type: ignore[no-untyped-def]
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(name)
    context = dg.build_sensor_context(cursor=cursor, repository_def=repo, instance=instance)
    return sensor.evaluate_tick(context)


def test_landing_sensor_requests_new_days(space: PipelineSettings) -> None:
    defs = build_definitions(space)
    instance = dg.DagsterInstance.ephemeral()
    first = _evaluate(defs, "landing_files", None, instance)
    days = sorted(r.partition_key for r in first.run_requests)
    assert len(days) == 4
    # The last day's run also recomputes (memberships); earlier days only ingest.
    last = [r for r in first.run_requests if r.partition_key == days[-1]][0]
    assert dg.AssetKey("memberships") in last.asset_selection
    assert all(
        dg.AssetKey("memberships") not in r.asset_selection
        for r in first.run_requests if r.partition_key != days[-1]
    )  # fmt: skip
    again = _evaluate(defs, "landing_files", first.cursor, instance)
    assert not again.run_requests
    new = Path(space.landing_dir) / "2026-03-01" / "late.jsonl"
    new.parent.mkdir(parents=True, exist_ok=True)
    new.write_text('{"type":"track","userId":"u-late","event":"Signed Up",'
                   '"timestamp":"2026-03-01T00:00:00Z"}\n')  # fmt: skip
    third = _evaluate(defs, "landing_files", first.cursor, instance)
    assert [r.partition_key for r in third.run_requests] == ["2026-03-01"]


def _write_audience(defs_dir: Path, key: str, event: str) -> None:
    body = {"key": key, "name": key.title(), "condition": {"event": event}}
    (defs_dir / "audiences" / f"{key}.yaml").write_text(yaml.safe_dump(body))


def test_definitions_sensor_added_edited_deleted_readded(space: PipelineSettings) -> None:
    defs_dir = Path(space.definitions_dir)
    defs = build_definitions(space)
    instance = dg.DagsterInstance.ephemeral()
    warehouse = Path(space.warehouse_dir)
    registry = Registry.of_warehouse(warehouse)
    definitions, _ = load_definitions(defs_dir)
    registry.record(definitions, datetime(2026, 3, 1, tzinfo=UTC))
    registry.save()
    base = _evaluate(defs, "definitions_changed", None, instance)
    assert not base.run_requests  # everything known: a baseline only
    _write_audience(defs_dir, "sensor_probe", "Signed Up")
    added = _evaluate(defs, "definitions_changed", base.cursor, instance)
    assert len(added.run_requests) == 1
    assert "audience/sensor_probe" in added.run_requests[0].tags["audience_pipeline/changed"]
    assert dg.AssetKey("memberships") in added.run_requests[0].asset_selection
    _write_audience(defs_dir, "sensor_probe", "Order Completed")
    edited = _evaluate(defs, "definitions_changed", added.cursor, instance)
    assert len(edited.run_requests) == 1
    unchanged = _evaluate(defs, "definitions_changed", edited.cursor, instance)
    assert not unchanged.run_requests
    # The engine run records the version; then the file is deleted and the key tombstoned.
    definitions, _ = load_definitions(defs_dir)
    registry = Registry.of_warehouse(warehouse)
    registry.record(definitions, datetime(2026, 3, 2, tzinfo=UTC))
    registry.save()
    (defs_dir / "audiences" / "sensor_probe.yaml").unlink()
    deleted = _evaluate(defs, "definitions_changed", edited.cursor, instance)
    assert len(deleted.run_requests) == 1
    definitions, _ = load_definitions(defs_dir)
    changes = registry.record(definitions, datetime(2026, 3, 3, tzinfo=UTC))
    registry.save()
    assert changes.deleted == ["sensor_probe"]
    _write_audience(defs_dir, "sensor_probe", "Signed Up")
    readded = _evaluate(defs, "definitions_changed", deleted.cursor, instance)
    assert not readded.run_requests
    assert "cannot be reused" in (readded.skip_message or "")


def _slow_writer(directory: str) -> None:
    frame = pl.DataFrame({"x": list(range(3_000_000)), "y": ["v" * 20] * 3_000_000})
    while True:
        write_table(frame, Path(directory), "memberships")


def test_kill_during_write_keeps_previous_table(tmp_path: Path) -> None:
    old = pl.DataFrame({"x": [1, 2, 3]})
    write_table(old, tmp_path, "memberships")
    context = multiprocessing.get_context("spawn")
    process = context.Process(target=_slow_writer, args=(str(tmp_path),))
    process.start()
    deadline = time.time() + 30
    while not list(tmp_path.glob(".memberships.*.tmp")) and time.time() < deadline:
        time.sleep(0.01)
    assert list(tmp_path.glob(".memberships.*.tmp")), "the writer never started a write"
    os.kill(process.pid, signal.SIGKILL)  # type: ignore[arg-type]
    process.join()
    table = pl.read_parquet(tmp_path / "memberships.parquet")
    assert table.height in (3, 3_000_000)  # the old table, or a finished new one: never torn


def _members(keys: list[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {"audience_key": ["a"] * len(keys), "level": ["user"] * len(keys), "entity_id": keys},
        schema={"audience_key": pl.String, "level": pl.String, "entity_id": pl.String},
    ).with_columns(pl.lit(None).cast(pl.Datetime("us", "UTC")).alias("as_of"))


@pytest.mark.parametrize("timezone", ["UTC", "America/New_York"])
def test_history_on_day_equals_snapshot(timezone: str) -> None:
    runs = [  # several runs a day, some days without runs
        (datetime(2026, 3, 1, 3, tzinfo=UTC), ["p1", "p2"]),
        (datetime(2026, 3, 1, 20, tzinfo=UTC), ["p2", "p3"]),
        (datetime(2026, 3, 2, 3, tzinfo=UTC), ["p3"]),
        (datetime(2026, 3, 4, 3, tzinfo=UTC), ["p1", "p3", "p4"]),
        (datetime(2026, 3, 4, 23, 30, tzinfo=UTC), []),
        (datetime(2026, 3, 5, 3, tzinfo=UTC), ["p1"]),
    ]
    previous = history = snapshots = None
    for as_of, keys in runs:
        current = _members(keys)
        changes = membership_changes(previous, current, as_of)
        history = membership_history(history, changes, as_of)
        snapshots = take_snapshot(snapshots, current, as_of, timezone)
        previous = current
    assert history is not None and snapshots is not None
    for day in sorted(set(snapshots["snapshot_date"].to_list())):
        assert isinstance(day, date)
        assert members_on(history, day, timezone).equals(snapshot_of(snapshots, day)), day
    if timezone != "UTC":
        return
    # A day without a run keeps the previous day's members.
    last_run_day = date(2026, 3, 2)
    quiet = last_run_day + timedelta(days=1)
    assert members_on(history, quiet, "UTC").equals(snapshot_of(snapshots, last_run_day))
