"""The code location loads, and the whole demo graph materializes in a temporary instance."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import yaml

from audience_pipeline.incremental import definition_hash
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.definitions import build_definitions
from audience_pipeline.orchestration.resources import AS_OF_TAG, PipelineSettings
from audience_pipeline.spec.loader import load_definitions
from tests.orchestration.conftest import AS_OF, DAYS


def test_definitions_load(space: PipelineSettings) -> None:
    defs = build_definitions(space)
    definitions, issues = load_definitions(space.definitions_dir)
    assert not issues
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert {"raw_events", "memberships", "membership_history", "membership_snapshots"} <= keys
    for audience in definitions.audiences:
        node = repo.asset_graph.get(dg.AssetKey(["audiences", audience.key]))
        assert node.code_version == definition_hash(audience.raw)
        assert node.description == audience.name
        assert node.group_name == "audiences"
    for trait in definitions.traits:
        assert f"traits/{trait.key}" in keys
    assert repo.get_schedule_def("daily_recompute").cron_schedule == definitions.space.schedule
    assert {"landing_files", "definitions_changed"} <= {s.name for s in repo.sensor_defs}


def materialize_all(defs: dg.Definitions, instance: dg.DagsterInstance, as_of: str) -> None:
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    everything = list(defs.assets or [])
    raw = [a for a in everything if isinstance(a, dg.AssetsDefinition) and a.partitions_def]
    resources = defs.resources or {}
    partitions = raw[0].partitions_def
    assert partitions is not None and graph is not None
    for day in range(DAYS):
        key = (AS_OF - timedelta(days=DAYS - day)).date().isoformat()
        result = dg.materialize([raw[0]], partition_key=key, instance=instance, resources=resources)
        assert result.success
    result = dg.materialize(
        everything, instance=instance, resources=resources, tags={AS_OF_TAG: as_of},
        selection=dg.AssetSelection.groups("profiles", "computed_traits", "audiences",
                                           "memberships"),
    )  # fmt: skip
    assert result.success


def test_demo_graph_materializes(space: PipelineSettings) -> None:
    defs = build_definitions(space)
    instance = dg.DagsterInstance.ephemeral()
    materialize_all(defs, instance, AS_OF.isoformat())
    warehouse = Path(space.warehouse_dir)
    memberships = pl.read_parquet(warehouse / "memberships.parquet")
    assert memberships.height > 0
    assert memberships.select(
        pl.struct("audience_key", "level", "entity_id").is_unique().all()
    ).item()
    # Numeric metadata on an audience, and the checks passed.
    key = memberships["audience_key"][0]
    event = instance.get_latest_materialization_event(dg.AssetKey(["audiences", key]))
    assert event is not None
    meta = event.asset_materialization.metadata  # type: ignore[union-attr]
    assert meta["size"].value == memberships.filter(pl.col("audience_key") == key).height
    assert meta["entered"].value == meta["size"].value  # first run: everyone entered
    # Every table is a view in the DuckDB catalog.
    sizes = wh.query(warehouse, "SELECT audience_key, count(*) AS n FROM memberships GROUP BY 1")
    assert sizes["n"].sum() == memberships.height
    view = wh.query(warehouse, f'SELECT count(*) AS n FROM "audiences_{key}"')
    assert view["n"][0] == meta["size"].value
    assert wh.query(warehouse, "SELECT count(*) AS n FROM quarantine")["n"][0] > 0
    history = pl.read_parquet(warehouse / "membership_history.parquet")
    assert (
        history.height == memberships.height and history["valid_to"].null_count() == history.height
    )
    # Files ingested by a run the landing sensor did not start are not ingested again...
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def("landing_files")
    context = dg.build_sensor_context(cursor=None, repository_def=repo, instance=instance)
    assert not sensor.evaluate_tick(context).run_requests
    # ...but a file rewritten since is.
    landed = sorted(Path(space.landing_dir).rglob("*.jsonl*"))[0]
    landed.write_bytes(landed.read_bytes() + b"\n")
    context = dg.build_sensor_context(cursor=None, repository_def=repo, instance=instance)
    assert len(sensor.evaluate_tick(context).run_requests) == 1


def _drop_whole_run_traits(folder: Path) -> None:
    """Score and SQL traits (and the audiences naming them) make every refresh a full run:
    this test is about the incremental path, so its copy of the demo goes without them."""
    keys = set()
    for path in (folder / "traits").glob("*.yaml"):
        raw = yaml.safe_load(path.read_text())
        if raw.get("kind") in ("score", "sql"):
            keys.add(raw["key"])
            path.unlink()
    names = re.compile(r"\b(" + "|".join(sorted(keys)) + r")\b")
    for path in (folder / "audiences").glob("*.yaml"):
        if keys and names.search(str(yaml.safe_load(path.read_text()).get("condition"))):
            path.unlink()


@pytest.mark.parametrize("hours", [24])
def test_second_run_is_incremental_and_tracks_history(space: PipelineSettings, hours: int) -> None:
    _drop_whole_run_traits(Path(space.definitions_dir))
    defs = build_definitions(space)
    instance = dg.DagsterInstance.ephemeral()
    materialize_all(defs, instance, (AS_OF - timedelta(hours=hours)).isoformat())
    materialize_all(defs, instance, AS_OF.isoformat())
    event = instance.get_latest_materialization_event(dg.AssetKey("memberships"))
    meta = event.asset_materialization.metadata  # type: ignore[union-attr]
    # Incremental unless the merge cannot be proven exact (then a full run, with its reason).
    assert meta["mode"].value == "incremental" or "mixed" in meta["reason"].value
    warehouse = Path(space.warehouse_dir)
    snapshots = pl.read_parquet(warehouse / "membership_snapshots.parquet")
    assert snapshots["snapshot_date"].n_unique() == 2
