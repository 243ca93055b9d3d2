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

from audience_pipeline.orchestration import last_valid
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.assets import (
    audience_assets,
    engine_asset,
    history_assets,
    raw_assets,
    trait_assets,
)
from audience_pipeline.orchestration.checks import all_checks
from audience_pipeline.orchestration.impact import edit_impact_check
from audience_pipeline.orchestration.io import ParquetIOManager
from audience_pipeline.orchestration.resources import (
    EngineResource,
    PipelineSettings,
    engine_from_env,
    settings_from_env,
)
from audience_pipeline.orchestration.schedules import daily_schedule, recompute_job
from audience_pipeline.orchestration.sensors import (
    definitions_sensor,
    definitions_state,
    landing_sensor,
)
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions

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
    try:
        assets = list(module.reverse_etl_assets(definitions_dir, warehouse_dir))
        sensors: list[dg.SensorDefinition] = []
        if hasattr(module, "reverse_etl_sensor"):
            # Every 10 s: a tick compares two timestamps; each destination's min_interval
            # still limits how often it is sent to.
            sensor = module.reverse_etl_sensor(
                definitions_dir, warehouse_dir, minimum_interval_seconds=10
            )
            sensors = list(sensor) if isinstance(sensor, list | tuple) else [sensor]
    except DefinitionsError as error:
        # A typo in a destination keeps the code location loadable; definitions_valid says why.
        log.warning("destinations left out: %s", error)
        return [], []
    return assets, sensors


def _definitions_to_build(settings: PipelineSettings) -> Definitions:
    definitions, issues = load_definitions(settings.definitions_dir)
    if not issues:
        last_valid.remember(settings.definitions_dir, settings.warehouse)
        return definitions
    kept = last_valid.recall(settings.warehouse)
    log.warning(
        "definitions have %d problems (first: %s); %s", len(issues), issues[0],
        "keeping the last valid assets" if kept else "per-definition assets left out",
    )  # fmt: skip
    if kept is not None:
        return kept
    return Definitions(definitions.space, (), (), definitions.root)


def build_definitions(
    settings: PipelineSettings | None = None, engine: EngineResource | None = None
) -> dg.Definitions:
    """Every asset, check, sensor and schedule of the space in `settings.definitions_dir`.

    Invalid definitions do not break the code location: the per-trait and per-audience assets
    of the last valid definitions stay in place (none when there never were any), the
    `definitions_valid` check on memberships lists every problem, and the engine run fails
    with them.
    """
    settings = settings or settings_from_env()
    definitions = _definitions_to_build(settings)
    space = definitions.space
    traits = list(definitions.traits)
    audiences = list(definitions.audiences)
    extra_assets, extra_sensors = _reverse_etl(settings.definitions_dir, settings.warehouse_dir)
    assets = [
        raw_assets(_partitions(settings, space.timezone)),
        engine_asset(),
        *trait_assets(traits),
        *audience_assets(audiences, definitions, space.size_change_warning),
        *history_assets(space.timezone),
        *extra_assets,
    ]
    warehouse = str(Path(settings.warehouse_dir).resolve())
    return dg.Definitions(
        assets=assets,
        asset_checks=[*all_checks(), edit_impact_check],
        jobs=[recompute_job],
        # One process per run, its steps in it: a subprocess per step cost 5-9 s of start-up
        # for about 1 s of work, and a sensor run of ~50 steps took 7-8 minutes.
        executor=dg.in_process_executor,
        schedules=[daily_schedule(space)],
        sensors=[
            landing_sensor(settings),
            definitions_sensor(settings, definitions_state(settings.definitions_dir)),
            *extra_sensors,
        ],
        resources={
            "settings": settings,
            "engine": engine or engine_from_env(),
            "parquet_io_manager": ParquetIOManager(warehouse_dir=warehouse),
        },
    )


defs = build_definitions()
