"""One run facade (`service.run`): the CLI's `compute` and Dagster's engine step both go through
it; `compute --incremental` refreshes from the last run's state and leaves the tables a full
computation leaves."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline import service
from audience_pipeline.cli import main
from audience_pipeline.demo.generate import generate
from audience_pipeline.ingest import ingest
from audience_pipeline.membership.pipeline import Partitions
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.warehouse import open_run
from audience_pipeline.warehouse.layout import NORMALIZED_INPUTS

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "tests" / "fixtures" / "smoke" / "definitions"  # no score or SQL traits
AS_OF_A = datetime(2026, 2, 26, tzinfo=UTC)
AS_OF_B = datetime(2026, 3, 1, tzinfo=UTC)
ENGINE_TABLES = ("identities", "user_traits", "account_traits", "memberships",
                 "account_user_memberships", "membership_changes", "membership_history")  # fmt: skip


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four daily files: a folder with the first three, and the fourth."""
    root = tmp_path_factory.mktemp("facade")
    generated = root / "generated"
    generate(generated, events=1500, seed=11, as_of=AS_OF_B, days=8, files=4, gzip=False)
    first, *_, last = sorted(generated.glob("events-*"))
    folder = root / "events"
    folder.mkdir()
    for path in sorted(generated.glob("events-*")):
        if path != last:
            shutil.copy(path, folder / path.name)
    assert first.exists()
    return folder, last


def _compute(events: Path, warehouse: Path, as_of: datetime, *extra: str) -> None:
    code = main(["compute", "--definitions", str(DEFINITIONS), "--events", str(events),
                 "--as-of", as_of.isoformat(), "--out", str(warehouse), "-q", *extra])  # fmt: skip
    assert code == 0


def test_incremental_compute_leaves_what_a_full_compute_leaves(
    events: tuple[Path, Path], tmp_path: Path
) -> None:
    folder, last = events
    source = tmp_path / "events"  # one folder for both: `source` columns name the same files
    shutil.copytree(folder, source)
    full, refreshed = tmp_path / "full", tmp_path / "incremental"
    _compute(source, full, AS_OF_A)
    _compute(source, refreshed, AS_OF_A, "--incremental")
    shutil.copy(last, source / last.name)  # run B: the fourth day's file landed
    _compute(source, full, AS_OF_B)
    _compute(source, refreshed, AS_OF_B, "--incremental")
    want, got = open_run(full), open_run(refreshed)
    assert want is not None and got is not None
    assert got.layout == want.layout == "normalized"
    for name in ENGINE_TABLES:
        assert_frame_equal(got.table(name), want.table(name), rel_tol=1e-12)
    for relative in NORMALIZED_INPUTS.values():  # what explain and the API read
        assert_frame_equal(pl.read_parquet(got.file(relative)),
                           pl.read_parquet(want.file(relative)))  # fmt: skip
    # What only a series of refreshes keeps: state, registry, custom traits, daily snapshots.
    assert {"custom_traits", "membership_snapshots"} <= set(got.tables) - set(want.tables)
    assert (got.folder / "_state").is_dir() and not (want.folder / "_state").exists()


def test_the_second_run_is_a_refresh(events: tuple[Path, Path], tmp_path: Path) -> None:
    folder, last = events
    shutil.copytree(folder, tmp_path / "events")
    warehouse = tmp_path / "warehouse"
    source = service.EventFiles(tmp_path / "events")
    first = service.run(DEFINITIONS, source, warehouse, AS_OF_A, incremental=True)
    assert first.engine_run is not None and first.engine_run.refresh.mode == "full"
    shutil.copy(last, tmp_path / "events" / last.name)
    second = service.run(DEFINITIONS, source, warehouse, AS_OF_B, incremental=True)
    assert second.engine_run is not None
    refresh = second.engine_run.refresh
    assert (refresh.mode, refresh.reason) == ("incremental", "")
    assert 0 < refresh.profiles_recomputed < second.tables["user_traits"].height
    full = service.run(DEFINITIONS, source, tmp_path / "full", AS_OF_B)
    assert full.engine_run is None
    for name in ("memberships", "user_traits", "account_traits"):
        assert_frame_equal(second.tables[name], full.tables[name], rel_tol=1e-12)
    profiles = NORMALIZED_INPUTS["message_profiles"]
    assert_frame_equal(pl.read_parquet(second.committed.file(profiles)),
                       pl.read_parquet(full.committed.file(profiles)))  # fmt: skip


def test_event_files_and_dagster_partitions_give_the_same_run(
    events: tuple[Path, Path], tmp_path: Path
) -> None:
    """The same messages read by the CLI's source (one ingest of the folder) and by Dagster's
    (one partition per day, stacked) make the same tables through the one facade."""
    folder, last = events
    source = tmp_path / "events"
    shutil.copytree(folder, source)
    shutil.copy(last, source / last.name)
    space = load_definitions(str(DEFINITIONS))[0].space
    warehouse = tmp_path / "dagster"
    for day, path in enumerate(sorted(source.glob("events-*")), start=1):
        ingested = ingest([path], space)  # what the raw asset writes for one day
        for table, frame in (("raw_events", ingested.events),
                             ("raw_trait_updates", ingested.trait_updates),
                             ("quarantine", ingested.quarantine)):  # fmt: skip
            (warehouse / table).mkdir(parents=True, exist_ok=True)
            frame.write_parquet(warehouse / table / f"2026-02-{day:02d}.parquet")
    dagster = service.run(DEFINITIONS, Partitions(warehouse), warehouse, AS_OF_B, incremental=True)
    cli = service.run(DEFINITIONS, service.EventFiles(source), tmp_path / "cli", AS_OF_B,
                      incremental=True)  # fmt: skip
    assert dagster.committed.layout == "partitions" and cli.committed.layout == "normalized"
    assert set(cli.tables) - set(dagster.tables) == {"quarantine"}  # Dagster's: partitioned
    for name, frame in dagster.tables.items():
        assert_frame_equal(cli.tables[name], frame, rel_tol=1e-12)
    assert dagster.tables["memberships"].height > 0
