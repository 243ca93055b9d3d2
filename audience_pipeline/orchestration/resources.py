"""Settings shared by assets, sensors and checks (paths), and the engine that computes."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
from dagster import AssetExecutionContext

from audience_pipeline.engine.memory import set_memory_limit

AS_OF_TAG = "audience_pipeline/as_of"


class PipelineSettings(dg.ConfigurableResource):
    """Where the definitions, the landing folder and the warehouse live."""

    definitions_dir: str = "definitions"
    landing_dir: str = "data/landing"
    warehouse_dir: str = "data/warehouse"
    # SPEC section 7's empty-input guard: a run over no event does not replace one that had
    # events unless this is set.
    allow_empty: bool = False

    @property
    def warehouse(self) -> Path:
        return Path(self.warehouse_dir)

    @property
    def landing(self) -> Path:
        return Path(self.landing_dir)


class EngineResource(dg.ConfigurableResource):
    """Which engine computes the tables (`engines`): ``polars`` (default; incremental runs),
    ``duckdb``, ``postgres`` inside the server at `dsn` (give it as
    ``dg.EnvVar("AUDIENCE_PIPELINE_POSTGRES_DSN")``), or ``spark`` on `spark_master`. Engines
    other than Polars compute in full."""

    engine: str = "polars"
    dsn: str | None = None
    spark_master: str = "local[2]"
    # What the Polars engine plans its buckets of profiles for (`engine.memory`; 6GB, 512MB).
    memory_limit: str = "6GB"

    def address(self) -> str | None:
        """What the engine connects to: the Spark master for spark, else the DSN (postgres)."""
        return self.spark_master if self.engine == "spark" else self.dsn

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Dagster calls this before a run uses the resource: the run's process plans with it."""
        set_memory_limit(self.memory_limit)


def engine_from_env() -> EngineResource:
    """AUDIENCE_PIPELINE_ENGINE (default polars; duckdb, postgres, spark); for postgres the DSN
    is read at run time from AUDIENCE_PIPELINE_POSTGRES_DSN (an EnvVar: never stored in the
    run's config)."""
    engine = os.environ.get("AUDIENCE_PIPELINE_ENGINE", "polars")
    if engine == "postgres":
        return EngineResource(engine=engine, dsn=dg.EnvVar("AUDIENCE_PIPELINE_POSTGRES_DSN"))
    if engine == "spark":  # AUDIENCE_PIPELINE_SPARK_MASTER, default local[2]
        return EngineResource(engine=engine, spark_master=os.environ.get(
            "AUDIENCE_PIPELINE_SPARK_MASTER", "local[2]"))  # fmt: skip
    return EngineResource(engine=engine)


def settings_from_env() -> PipelineSettings:
    """Paths from AUDIENCE_PIPELINE_{DEFINITIONS,LANDING,WAREHOUSE}, else the repository's."""
    return PipelineSettings(
        definitions_dir=os.environ.get("AUDIENCE_PIPELINE_DEFINITIONS", "definitions"),
        landing_dir=os.environ.get("AUDIENCE_PIPELINE_LANDING", "data/landing"),
        warehouse_dir=os.environ.get("AUDIENCE_PIPELINE_WAREHOUSE", "data/warehouse"),
        allow_empty=os.environ.get("AUDIENCE_PIPELINE_ALLOW_EMPTY", "") in ("1", "true", "yes"),
    )


def run_as_of(context: AssetExecutionContext) -> datetime:
    """The run's as-of: its `audience_pipeline/as_of` tag (schedules and sensors set it), else
    now (whole seconds, UTC)."""
    tag = context.run.tags.get(AS_OF_TAG)
    if tag:
        return datetime.fromisoformat(tag).astimezone(UTC)
    return datetime.now(UTC).replace(microsecond=0)
