"""Pinning a run: reads that survive later runs and cleanup, reloads on commit only, layouts."""

from __future__ import annotations

import os
import shutil
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from audience_pipeline.api.store import Store
from audience_pipeline.explain import Explainer
from audience_pipeline.ingest import ingest
from audience_pipeline.membership.pipeline import engine_step
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.spec.loader import load_space
from audience_pipeline.warehouse import begin_run, open_run
from audience_pipeline.warehouse.snapshot import open_snapshot
from audience_pipeline.warehouse.writer import amend_run
from tests.api.support import AS_OF, DEFINITIONS, Expected, compute, make_events


@pytest.fixture
def copy(demo: Path, tmp_path: Path) -> Path:
    """A fresh run in a folder of its own."""
    target = tmp_path / "warehouse"
    compute(demo / "events", target)
    return target


def test_pinned_reads_survive_later_runs_and_their_cleanup(
    copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUDIENCE_PIPELINE_KEEP_RUNS", "2")
    snapshot = open_snapshot(copy)
    before = snapshot.table("user_traits")
    events = snapshot.messages().collect().height
    for _ in range(3):  # each commits a run; the cleanup keeps the last 2
        amend_run(copy, {"user_traits": before.head(1)})
    assert not snapshot.run.folder.exists()
    assert snapshot.table("user_traits").equals(before)
    assert snapshot.scan("user_traits").collect().height == before.height
    assert snapshot.messages().collect().height == events
    assert open_snapshot(copy).table("user_traits").height == 1


def test_store_sees_a_run_only_once_it_is_committed(copy: Path) -> None:
    store = Store(copy, DEFINITIONS, poll_seconds=0)
    first = store.load()
    run = open_run(copy)
    assert run is not None and run.as_of is not None
    with begin_run(copy, as_of=run.as_of) as writer:
        writer.write("memberships", pl.read_parquet(copy / "memberships.parquet").head(0))
        assert not store.changed() and store.reload_once() is False
        assert store.current is first
    # Left without commit: nothing changed for readers, and the folder is gone.
    assert not writer.folder.exists() and not store.changed()
    amend_run(copy, {"memberships": pl.read_parquet(copy / "memberships.parquet").head(0)})
    assert store.changed() and store.reload_once() is True
    assert store.current.number == 2


def test_a_folder_without_commit_point_is_read(copy: Path, tmp_path: Path) -> None:
    """Loose `<table>.parquet` files (an older version's layout) are read as one run."""
    loose = tmp_path / "loose"
    (loose / "_normalized").mkdir(parents=True)
    for path in copy.glob("*.parquet"):
        shutil.copyfile(path, loose / path.name)
    for path in (copy / "_normalized").glob("*.parquet"):
        shutil.copyfile(path, loose / "_normalized" / path.name)
    snapshot = open_snapshot(loose)
    assert snapshot.as_of == AS_OF and snapshot.has_inputs and snapshot.run.run_id is None
    past = time.time() - 60
    os.utime(loose / "memberships.parquet", (past, past))
    store = Store(loose, DEFINITIONS, poll_seconds=0)
    store.load()
    assert not store.changed()
    os.utime(loose / "memberships.parquet")  # rewritten by hand: a new "run"
    assert store.changed()


def test_the_dagster_layout(tmp_path: Path) -> None:
    """Daily raw partitions pinned into the run by hard links, and the engine state."""
    events = make_events(tmp_path / "generated", seed=3, events=1500)
    landing = tmp_path / "landing"
    for k, path in enumerate(sorted(events.glob("*.jsonl"))):
        day = (AS_OF - timedelta(days=1 + k)).date().isoformat()
        (landing / day).mkdir(parents=True)
        shutil.move(str(path), landing / day / path.name)
    warehouse = tmp_path / "warehouse"
    space = load_space(DEFINITIONS, [])
    for day_dir in sorted(landing.iterdir()):
        result = ingest(sorted(day_dir.iterdir()), space)
        wh.write_partition(warehouse, "raw_events", day_dir.name, result.events)
        wh.write_partition(warehouse, "raw_trait_updates", day_dir.name, result.trait_updates)
    _, run = engine_step(warehouse, DEFINITIONS, AS_OF)
    assert run.layout == "partitions"
    snapshot = open_snapshot(warehouse)
    assert snapshot.has("state_messages") and snapshot.has_inputs
    # A partition rewritten after the run does not change what the run pinned.
    day = sorted(landing.iterdir())[0].name
    pinned = snapshot.table(f"raw_events/{day}")
    wh.write_partition(warehouse, "raw_events", day, pinned.head(1))
    assert open_snapshot(warehouse).table(f"raw_events/{day}").equals(pinned)
    explainer = Explainer(snapshot, DEFINITIONS)
    expected = Expected(warehouse)
    keys = sorted(expected.audiences["user"])
    for profile in expected.users["profile_id"].to_list()[:40]:
        for key, explanation in explainer.explain("user", profile, keys).items():
            assert explanation["member"] == ((key, profile) in expected.members), (key, profile)
    generation = Store(warehouse, DEFINITIONS, poll_seconds=0).load()
    assert generation.users.events is not None and generation.users.events.height > 0


def test_a_reload_builds_in_a_child_and_frees_the_old_generation(copy: Path) -> None:
    """A reload's frames come from a child process (api/builder.py) and serve the same answers
    as a load in this process; the replaced generation is freed once nothing holds it."""
    import gc
    import weakref

    store = Store(copy, DEFINITIONS, poll_seconds=0)
    first = store.load()
    watch = weakref.ref(first)
    ids = first.users.ids.to_list()
    rows = {i: first.users.row_of(i) for i in ids[:50]}
    id_rows = {t: [(v, idx.get(v)) for v in idx.keys.head(20).to_list()]
               for t, idx in first.id_index.items()}  # fmt: skip
    traits = first.users.traits
    del first
    amend_run(copy, {})  # the same tables committed again: a new run to load
    assert store.reload_once() and store.current.number == 2
    second = store.current
    assert second.users.ids.to_list() == ids
    assert {i: second.users.row_of(i) for i in ids[:50]} == rows
    assert second.users.row_of("nobody") is None
    for id_type, pairs in id_rows.items():
        assert [(v, second.id_index[id_type].get(v)) for v, _ in pairs] == pairs
    assert second.users.traits.equals(traits)
    assert second.users.events is not None and second.users.events.height > 0
    del traits
    gc.collect()
    assert watch() is None


def test_a_dagster_materialization_commits_a_whole_run(tmp_path: Path) -> None:
    """The real pipeline: the engine asset commits its run, the IO manager writes nothing."""
    import dagster as dg

    from audience_pipeline.orchestration.definitions import build_definitions
    from audience_pipeline.orchestration.resources import PipelineSettings
    from tests.orchestration.conftest import make_landing
    from tests.orchestration.test_definitions import materialize_all

    definitions = tmp_path / "definitions"
    shutil.copytree(DEFINITIONS, definitions)
    make_landing(tmp_path / "landing", events=1500)
    settings = PipelineSettings(definitions_dir=str(definitions),
                                landing_dir=str(tmp_path / "landing"),
                                warehouse_dir=str(tmp_path / "warehouse"))  # fmt: skip
    materialize_all(build_definitions(settings), dg.DagsterInstance.ephemeral(), AS_OF.isoformat())
    snapshot = open_snapshot(tmp_path / "warehouse")
    assert snapshot.layout == "partitions" and snapshot.has_inputs
    runs = list((tmp_path / "warehouse" / "runs").iterdir())
    assert len(runs) == 1  # one engine run, one commit (history and snapshots included)
    assert snapshot.run.has("membership_history") and snapshot.run.has("membership_snapshots")
    generation = Store(tmp_path / "warehouse", definitions, poll_seconds=0).load()
    assert len(generation.users.ids) > 0 and generation.users.events is not None
