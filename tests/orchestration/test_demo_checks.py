"""The demo's materialization runs the asset checks (none left "Not evaluated") and they pass;
runs execute their steps in one process."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from audience_pipeline.orchestration import demo
from audience_pipeline.orchestration.definitions import build_definitions
from audience_pipeline.orchestration.resources import PipelineSettings
from tests.orchestration.conftest import AS_OF, DAYS


@pytest.mark.slow
def test_demo_runs_every_check_and_they_pass(
    space: PipelineSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("AUDIENCE_PIPELINE_DEFINITIONS", space.definitions_dir)
    monkeypatch.setenv("AUDIENCE_PIPELINE_LANDING", space.landing_dir)
    monkeypatch.setenv("AUDIENCE_PIPELINE_WAREHOUSE", space.warehouse_dir)
    partitions = sorted(p.name for p in Path(space.landing_dir).iterdir())
    assert len(partitions) == DAYS
    demo.materialize_demo(partitions, AS_OF)
    defs = build_definitions(space)
    repo = defs.get_repository_def()
    assert repo.get_implicit_global_asset_job_def().executor_def.name == "in_process"
    instance = dg.DagsterInstance.get()
    check_keys = list(repo.asset_graph.asset_check_keys)
    assert len([k for k in check_keys if k.name == "size_change"]) == len(
        [k for k in repo.asset_graph.get_all_asset_keys() if k.path[0] == "audiences"]
    )
    for key in check_keys:
        if instance.get_latest_materialization_event(key.asset_key) is None:
            # A destination waiting for its secret (crm_webhook, analytics_postgres) is not
            # synced by the demo, so its churn_guard has nothing to evaluate yet.
            assert key.asset_key.path[0] == "reverse_etl", key.to_user_string()
            continue
        record = instance.get_latest_asset_check_evaluation_record(key)
        assert record is not None, f"{key.to_user_string()} was not evaluated"
        evaluation = record.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert evaluation.passed, key.to_user_string()  # type: ignore[union-attr]
    schema_checks = [c for c in repo.asset_graph.asset_check_keys if c.name == "pandera_schema"]
    assert schema_checks
    for key in schema_checks:
        assert repo.asset_graph.get_check_spec(key).description
