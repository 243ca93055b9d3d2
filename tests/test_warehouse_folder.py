"""The warehouse folder: copied or moved it still opens, old runs and folders of killed runs
are removed, and the empty-input guard (SPEC section 7) refuses a run that read no event."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from audience_pipeline import cli, service
from audience_pipeline.demo.generate import generate
from audience_pipeline.warehouse import open_run
from audience_pipeline.warehouse.layout import RUNS
from audience_pipeline.warehouse.snapshot import open_snapshot

ROOT = Path(__file__).resolve().parents[1]
DEFINITIONS = ROOT / "definitions"
AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("events") / "events"
    generate(folder, events=600, seed=9, as_of=AS_OF, days=10, files=1, gzip=False)
    return folder


def _compute(events: Path, warehouse: Path, as_of: datetime = AS_OF) -> None:
    service.run_compute(events, DEFINITIONS, as_of, warehouse)


def _contents(warehouse: Path) -> dict[str, pl.DataFrame]:
    run = open_run(warehouse)
    assert run is not None
    return {name: pl.read_parquet(run.path(name)) for name in run.tables}


def _opens_like(copy: Path, original: dict[str, pl.DataFrame]) -> None:
    assert _contents(copy).keys() == original.keys()
    for name, frame in _contents(copy).items():
        assert frame.equals(original[name]), name
    for name in original:  # SPEC section 6 paths
        assert pl.read_parquet(copy / f"{name}.parquet").equals(original[name]), name
    sql = service.query("SELECT count(*) AS n FROM memberships", copy)
    assert sql["n"][0] == original["memberships"].height
    snapshot = open_snapshot(copy)
    assert snapshot.has_inputs and snapshot.table("identities").equals(original["identities"])
    assert snapshot.run.folder.is_relative_to(copy)
    import duckdb

    con = duckdb.connect(str(copy / "warehouse.duckdb"), read_only=True,
                         config={"file_search_path": str(copy)})  # fmt: skip
    try:
        rows = con.sql("SELECT count(*) FROM identities").fetchall()[0][0]
    finally:
        con.close()
    assert rows == original["identities"].height


def test_copied_and_moved_warehouses_open(events: Path, tmp_path: Path) -> None:
    warehouse = tmp_path / "warehouse"
    _compute(events, warehouse, AS_OF - timedelta(days=1))
    _compute(events, warehouse)
    original = _contents(warehouse)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(warehouse), str(copy)], check=True)
    _opens_like(copy, original)
    moved = tmp_path / "elsewhere" / "moved"
    moved.parent.mkdir()
    subprocess.run(["mv", str(copy), str(moved)], check=True)
    _opens_like(moved, original)
    # A copy that followed the links (shutil's default): `current` and the tables are plain
    # files; it opens, and the next run puts the links back.
    plain = tmp_path / "plain"
    shutil.copytree(warehouse, plain)
    assert not (plain / "current").is_symlink()
    _opens_like(plain, original)
    _compute(events, plain, AS_OF + timedelta(days=1))
    assert (plain / "current").is_symlink() and (plain / "memberships.parquet").is_symlink()
    assert open_run(plain).as_of == AS_OF + timedelta(days=1)  # type: ignore[union-attr]
    _compute(events, moved, AS_OF + timedelta(days=1))
    assert _contents(moved)["memberships"].equals(_contents(plain)["memberships"])
    assert _contents(warehouse)["memberships"].equals(original["memberships"])


def test_old_runs_and_killed_runs_are_removed(
    events: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIENCE_PIPELINE_KEEP_RUNS", "2")
    warehouse = tmp_path / "warehouse"
    ids = []
    for day in range(4):
        _compute(events, warehouse, AS_OF + timedelta(days=day))
        ids.append(open_run(warehouse).run_id)  # type: ignore[union-attr]
    assert sorted(p.name for p in (warehouse / RUNS).iterdir()) == sorted(ids[-2:])
    # Left by killed runs: a run folder never committed, a half-swapped link, and an older
    # version's normalized staging folder.
    (warehouse / RUNS / "20260101T000000000000-dead00" / "_normalized").mkdir(parents=True)
    (warehouse / ".current.deadbeef").symlink_to("runs/nowhere")
    _compute(events, warehouse, AS_OF + timedelta(days=5))
    ids.append(open_run(warehouse).run_id)  # type: ignore[union-attr]
    assert sorted(p.name for p in (warehouse / RUNS).iterdir()) == sorted(ids[-2:])
    assert not list(warehouse.glob(".current.*"))


def test_legacy_staging_folders_are_removed(events: Path, tmp_path: Path) -> None:
    """A warehouse of an older version (loose tables, `_normalized/.staging.*` of killed runs)
    is taken over by the next run."""
    old = tmp_path / "old"
    _compute(events, old)
    legacy = tmp_path / "legacy"
    (legacy / "_normalized" / ".staging.abc123").mkdir(parents=True)
    run = open_run(old)
    assert run is not None
    for name in run.tables:
        shutil.copyfile(run.path(name), legacy / f"{name}.parquet")
    assert open_run(legacy).run_id is None  # type: ignore[union-attr]
    _compute(events, legacy, AS_OF + timedelta(days=1))
    assert (legacy / "_normalized").is_symlink() and (legacy / "memberships.parquet").is_symlink()
    assert not list((legacy / "_normalized").glob(".staging.*"))
    changes = pl.read_parquet(legacy / "membership_changes.parquet")
    # Diffed against the loose tables: not everyone entered again.
    assert changes.height < pl.read_parquet(legacy / "memberships.parquet").height


def _main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(["-q", "compute", "--definitions", str(DEFINITIONS), "--as-of",
                     (AS_OF + timedelta(days=1)).isoformat(), *args])  # fmt: skip
    return code, capsys.readouterr().err


def test_empty_input_guard(
    events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    warehouse = tmp_path / "warehouse"
    _compute(events, warehouse)
    before = open_run(warehouse)
    assert before is not None
    empty = tmp_path / "empty"
    empty.mkdir()
    unknown = tmp_path / "unknown"
    unknown.mkdir()
    (unknown / "events.csv").write_text("type,userId\ntrack,u1\n")
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"type": "track"}\n')[:12])
    for source in (empty, unknown, unreadable, tmp_path / "missing"):
        code, err = _main(capsys, "--events", str(source), "--out", str(warehouse))
        assert code == 1, (source, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "no event read" in lines[0] and "--allow-empty" in lines[0]
        assert str(source) in lines[0]
        after = open_run(warehouse)
        assert after is not None and after.run_id == before.run_id
        assert sorted(p.name for p in (warehouse / RUNS).iterdir()) == [before.run_id]
    # Bad lines are lines read: quarantined, never a refused run (SPEC 6).
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jsonl").write_text("not json\n")
    other = tmp_path / "other"
    _compute(events, other)
    code, err = _main(capsys, "--events", str(bad), "--out", str(other))
    assert code == 0, err
    assert pl.read_parquet(other / "quarantine.parquet").height == 1
    code, err = _main(capsys, "--events", str(empty), "--out", str(warehouse), "--allow-empty")
    assert code == 0, err
    assert pl.read_parquet(warehouse / "memberships.parquet").height == 0
    changes = pl.read_parquet(warehouse / "membership_changes.parquet")
    assert set(changes["change"]) == {"exited"}
    # A warehouse whose last run had no event, or a new one: nothing to protect.
    code, err = _main(capsys, "--events", str(empty), "--out", str(warehouse))
    assert code == 0, err
    code, err = _main(capsys, "--events", str(empty), "--out", str(tmp_path / "new"))
    assert code == 0, err
