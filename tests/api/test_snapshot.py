"""Pinning a run: the manifest check, reads that survive replacement, both warehouse layouts."""

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
from audience_pipeline.manifest import MANIFEST_FILE, read_manifest
from audience_pipeline.membership.pipeline import combine_partitions, commit_engine, run_engine
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.snapshot import SnapshotChanged, open_snapshot
from audience_pipeline.spec.loader import load_space
from tests.api.support import AS_OF, DEFINITIONS, Expected, compute, make_events


@pytest.fixture
def copy(demo: Path, tmp_path: Path) -> Path:
    """A fresh run in a folder of its own (computed, so that its manifest matches its files)."""
    target = tmp_path / "warehouse"
    compute(demo / "events", target)
    return target


def _replace_with(path: Path, frame: pl.DataFrame) -> None:
    tmp = path.with_suffix(".tmp")
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def test_pinned_reads_survive_replacement(copy: Path) -> None:
    snapshot = open_snapshot(copy)
    before = snapshot.table("user_traits")
    _replace_with(copy / "user_traits.parquet", before.head(1))
    assert snapshot.table("user_traits").equals(before)
    assert snapshot.scan("user_traits").collect().height == before.height
    with pytest.raises(SnapshotChanged):
        open_snapshot(copy)  # the folder now mixes two "runs"


def test_store_keeps_serving_while_files_do_not_match(copy: Path) -> None:
    store = Store(copy, DEFINITIONS, poll_seconds=0)
    first = store.load()
    _replace_with(
        copy / "memberships.parquet", pl.read_parquet(copy / "memberships.parquet").head(0)
    )
    os.utime(copy / MANIFEST_FILE)  # a touched manifest that no longer matches the files
    assert store.changed()
    assert store.reload_once() is False
    assert store.current is first


def test_changed_inputs_only_disable_events_and_explain(copy: Path) -> None:
    events = copy / "_normalized" / "events.parquet"
    _replace_with(events, pl.read_parquet(events).head(10))
    snapshot = open_snapshot(copy)
    assert not snapshot.has_inputs and "events.parquet" in (snapshot.inputs_problem or "")
    store = Store(copy, DEFINITIONS, poll_seconds=0)
    generation = store.load()
    assert generation.users.events is None and len(generation.users.ids) > 0


def test_a_folder_without_manifest_is_read_when_quiet(copy: Path) -> None:
    (copy / MANIFEST_FILE).unlink()
    past = time.time() - 60
    for path in [*copy.glob("*.parquet"), *(copy / "_normalized").glob("*.parquet")]:
        os.utime(path, (past, past))
    snapshot = open_snapshot(copy)
    assert snapshot.as_of == AS_OF and snapshot.has_inputs
    os.utime(copy / "memberships.parquet")  # just written: wait for the writer
    with pytest.raises(SnapshotChanged):
        open_snapshot(copy)


def test_the_dagster_layout(tmp_path: Path) -> None:
    """Daily raw partitions + the engine state, published by commit_engine."""
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
    stacked, updates = combine_partitions(
        wh.read_partitions(warehouse, "raw_events"),
        wh.read_partitions(warehouse, "raw_trait_updates"),
    )
    run = run_engine(stacked, updates, DEFINITIONS, AS_OF, warehouse)
    for name, frame in run.tables.items():
        wh.write_whole(warehouse, name, frame)
    commit_engine(run, warehouse)

    manifest = read_manifest(warehouse)
    assert manifest is not None and manifest.layout == "partitions"
    assert "state_messages" in manifest.files
    snapshot = open_snapshot(warehouse)
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

    from audience_pipeline.manifest import write_manifest

    store = Store(copy, DEFINITIONS, poll_seconds=0)
    first = store.load()
    watch = weakref.ref(first)
    ids = first.users.ids.to_list()
    rows = {i: first.users.row_of(i) for i in ids[:50]}
    id_rows = {t: [(v, idx.get(v)) for v in idx.keys.head(20).to_list()]
               for t, idx in first.id_index.items()}  # fmt: skip
    traits = first.users.traits
    del first
    manifest = read_manifest(copy)
    assert manifest is not None
    inputs = {n: e.path for n, e in manifest.files.items() if e.role == "input"}
    write_manifest(copy, as_of=manifest.as_of, inputs=inputs, layout=manifest.layout,
                   json_columns=manifest.json_columns)  # fmt: skip
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


def test_a_dagster_materialization_publishes_a_matching_manifest(tmp_path: Path) -> None:
    """The real pipeline: the IO manager writes the engine's tables, commit_engine the manifest."""
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
    snapshot = open_snapshot(tmp_path / "warehouse")  # raises if a file does not match
    assert snapshot.manifest.layout == "partitions" and snapshot.has_inputs
    generation = Store(tmp_path / "warehouse", definitions, poll_seconds=0).load()
    assert len(generation.users.ids) > 0 and generation.users.events is not None
