"""The Dagster code location: `defs`, built from the definitions folder.

`dagster dev` (workspace.yaml) loads `defs` from this module. Paths come from the environment
(AUDIENCE_PIPELINE_DEFINITIONS, AUDIENCE_PIPELINE_LANDING, AUDIENCE_PIPELINE_WAREHOUSE), with the
repository's folders as defaults.
"""

from __future__ import annotations

import importlib
import logging
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.assets import (
    audience_asset,
    engine_asset,
    history_assets,
    raw_assets,
    trait_asset,
)
from audience_pipeline.orchestration.checks import all_checks
from audience_pipeline.orchestration.io import ParquetIOManager, ViewIOManager
from audience_pipeline.orchestration.resources import (
    EngineResource,
    PipelineSettings,
    engine_from_env,
    settings_from_env,
)
from audience_pipeline.orchestration.schedules import daily_schedule, recompute_job
from audience_pipeline.orchestration.sensors import definitions_sensor, landing_sensor
from audience_pipeline.spec.loader import load_definitions

log = logging.getLogger(__name__)

START_DATE_ENV = "AUDIENCE_PIPELINE_START_DATE"


def _partitions(settings: PipelineSettings, timezone: str) -> dg.DailyPartitionsDefinition:
    configured = os.environ.get(START_DATE_ENV)
    if configured:
        start = date.fromisoformat(configured)
    else:
        start = wh.first_partition(settings.landing, datetime.now(UTC).date() - timedelta(days=30))
    return dg.DailyPartitionsDefinition(
        start_date=start.isoformat(), timezone=timezone, end_offset=1
    )


def _reverse_etl(
    definitions_dir: str, warehouse_dir: str
) -> tuple[list[Any], list[dg.SensorDefinition]]:
    """The destinations' assets and sensor, when audience_pipeline.orchestration.reverse_etl
    exists (written by the destinations work)."""
    try:
        module = importlib.import_module("audience_pipeline.orchestration.reverse_etl")
    except ModuleNotFoundError as error:
        if error.name != "audience_pipeline.orchestration.reverse_etl":
            raise
        return [], []
    assets = list(module.reverse_etl_assets(definitions_dir, warehouse_dir))
    sensors: list[dg.SensorDefinition] = []
    if hasattr(module, "reverse_etl_sensor"):
        sensor = module.reverse_etl_sensor(definitions_dir, warehouse_dir)
        sensors = list(sensor) if isinstance(sensor, list | tuple) else [sensor]
    return assets, sensors


def build_definitions(
    settings: PipelineSettings | None = None, engine: EngineResource | None = None
) -> dg.Definitions:
    """Every asset, check, sensor and schedule of the space in `settings.definitions_dir`.

    Invalid definitions do not break the code location: the per-trait and per-audience assets
    are left out (and logged), and the engine run reports every problem when it runs.
    """
    settings = settings or settings_from_env()
    definitions, issues = load_definitions(settings.definitions_dir)
    if issues:
        log.warning("definitions have %d problems; per-definition assets left out", len(issues))
    space = definitions.space
    traits = [] if issues else list(definitions.traits)
    audiences = [] if issues else list(definitions.audiences)
    extra_assets, extra_sensors = _reverse_etl(settings.definitions_dir, settings.warehouse_dir)
    assets = [
        raw_assets(_partitions(settings, space.timezone)),
        engine_asset(),
        *(trait_asset(t) for t in traits),
        *(audience_asset(a, definitions) for a in audiences),
        *history_assets(space.timezone),
        *extra_assets,
    ]
    warehouse = str(Path(settings.warehouse_dir).resolve())
    return dg.Definitions(
        assets=assets,
        asset_checks=all_checks(audiences, space.size_change_warning),
        jobs=[recompute_job],
        schedules=[daily_schedule(space)],
        sensors=[landing_sensor(settings), definitions_sensor(settings), *extra_sensors],
        resources={
            "settings": settings,
            "engine": engine or engine_from_env(),
            "parquet_io_manager": ParquetIOManager(warehouse_dir=warehouse),
            "view_io_manager": ViewIOManager(warehouse_dir=warehouse),
        },
    )


defs = build_definitions()
