"""A typo in one YAML file: the last valid assets stay, and a failing check says where."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from audience_pipeline.orchestration.checks import DEFINITIONS_CHECK
from audience_pipeline.orchestration.definitions import build_definitions
from audience_pipeline.orchestration.resources import PipelineSettings


def _keys(defs: dg.Definitions) -> set[str]:
    graph = defs.get_repository_def().asset_graph
    return {k.to_user_string() for k in graph.get_all_asset_keys()}


def test_a_yaml_typo_keeps_the_last_valid_assets_and_fails_a_check(
    space: PipelineSettings,
) -> None:
    valid = _keys(build_definitions(space))
    assert any(k.startswith("audiences/") for k in valid)
    broken = Path(space.definitions_dir) / "audiences" / "big_spenders.yaml"
    broken.write_text(broken.read_text().replace("name: Big spenders", "name: Big: spenders"))

    defs = build_definitions(space)  # "Reload definitions"
    assert _keys(defs) == valid
    repo = defs.get_repository_def()
    assert DEFINITIONS_CHECK in repo.asset_graph.asset_check_keys

    # The definitions sensor asks for the check (once per distinct problem)...
    sensor = repo.get_sensor_def("definitions_changed")
    instance = dg.DagsterInstance.ephemeral()
    tick = sensor.evaluate_tick(dg.build_sensor_context(repository_def=repo, instance=instance))
    assert len(tick.run_requests) == 1
    assert tick.run_requests[0].asset_check_keys == [DEFINITIONS_CHECK]
    # ...which fails, naming the file, the line and column and the problem.
    result = dg.materialize(
        [*(a for a in defs.assets or [] if isinstance(a, dg.AssetsDefinition)),
         *(c for c in defs.asset_checks or [] if isinstance(c, dg.AssetsDefinition))],
        selection=dg.AssetSelection.checks(DEFINITIONS_CHECK),
        resources=defs.resources, instance=instance, raise_on_error=False,
    )  # fmt: skip
    (evaluation,) = result.get_asset_check_evaluations()
    assert not evaluation.passed
    issues = str(evaluation.metadata["issues"].value)
    assert "audiences/big_spenders.yaml" in issues and "line 2, column 10: mapping values" in issues
    assert "big_spenders.yaml" in (evaluation.description or "")

    # Fixed: the check passes again.
    broken.write_text(broken.read_text().replace("name: Big: spenders", "name: Big spenders"))
    defs = build_definitions(space)
    result = dg.materialize(
        [*(c for c in defs.asset_checks or [] if isinstance(c, dg.AssetsDefinition))],
        selection=dg.AssetSelection.checks(DEFINITIONS_CHECK),
        resources=defs.resources, instance=instance,
    )  # fmt: skip
    assert all(e.passed for e in result.get_asset_check_evaluations())
