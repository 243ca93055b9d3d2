"""The engine resource: the same assets computed by Polars, inside PostgreSQL (its DSN from an
EnvVar) or on Spark (a master URL) give the same tables (DuckDB is the same resource with
engine="duckdb")."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audience_pipeline.membership.pipeline import STATE_DIR
from audience_pipeline.orchestration.definitions import build_definitions
from audience_pipeline.orchestration.resources import (
    AS_OF_TAG,
    EngineResource,
    PipelineSettings,
    engine_from_env,
)
from tests.orchestration.conftest import AS_OF
from tests.orchestration.test_definitions import materialize_all
from tests.support.postgres import postgres_available, running_postgres

TABLES = ("identities", "user_traits", "account_traits", "memberships")


def _settings(space: PipelineSettings, name: str) -> PipelineSettings:
    return PipelineSettings(definitions_dir=space.definitions_dir, landing_dir=space.landing_dir,
                            warehouse_dir=str(Path(space.warehouse_dir) / name))  # fmt: skip


def _run(space: PipelineSettings, engine: EngineResource, name: str) -> dict[str, pl.DataFrame]:
    """The engine and everything downstream, over the raw partitions the Polars run ingested."""
    settings = _settings(space, name)
    shutil.copytree(_settings(space, "polars").warehouse, settings.warehouse)
    for derived in settings.warehouse.glob("*.parquet"):
        derived.unlink()  # only the raw partitions (and no engine state) are kept
    shutil.rmtree(settings.warehouse / STATE_DIR, ignore_errors=True)
    defs = build_definitions(settings, engine)
    result = dg.materialize(
        list(defs.assets or []), instance=dg.DagsterInstance.ephemeral(),
        resources=defs.resources or {}, tags={AS_OF_TAG: AS_OF.isoformat()},
        selection=dg.AssetSelection.groups("profiles", "computed_traits", "audiences",
                                           "memberships"),
    )  # fmt: skip
    assert result.success
    return {t: pl.read_parquet(settings.warehouse / f"{t}.parquet") for t in TABLES}


@pytest.mark.skipif(not postgres_available(), reason="PostgreSQL not installed")
def test_same_assets_on_every_engine(space: PipelineSettings,
                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    polars = _settings(space, "polars")
    materialize_all(build_definitions(polars), dg.DagsterInstance.ephemeral(), AS_OF.isoformat())
    expected = {t: pl.read_parquet(polars.warehouse / f"{t}.parquet") for t in TABLES}
    assert expected["memberships"].height > 0
    with running_postgres() as server:
        monkeypatch.setenv("AUDIENCE_PIPELINE_POSTGRES_DSN", server.dsn)
        monkeypatch.setenv("AUDIENCE_PIPELINE_ENGINE", "postgres")
        got = _run(space, engine_from_env(), "postgres")
    for table in TABLES:
        assert_frame_equal(got[table], expected[table], check_exact=False)


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark missing")
def test_same_assets_on_spark(space: PipelineSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """engine="spark" (local[2] by default): the demo space, its SQL traits included."""
    polars = _settings(space, "polars")
    materialize_all(build_definitions(polars), dg.DagsterInstance.ephemeral(), AS_OF.isoformat())
    expected = {t: pl.read_parquet(polars.warehouse / f"{t}.parquet") for t in TABLES}
    monkeypatch.setenv("AUDIENCE_PIPELINE_ENGINE", "spark")
    engine = engine_from_env()
    assert (engine.engine, engine.spark_master) == ("spark", "local[2]")
    got = _run(space, engine, "spark")
    for table in TABLES:
        assert_frame_equal(got[table], expected[table], check_exact=False)
    assert any(c.startswith("crm.") for c in got["user_traits"].columns)  # a SQL trait's fields


def test_the_dsn_is_an_env_var_not_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIENCE_PIPELINE_ENGINE", "postgres")
    monkeypatch.setenv("AUDIENCE_PIPELINE_POSTGRES_DSN", "postgresql://u:secret@h/db")
    engine = engine_from_env()
    assert isinstance(engine.dsn, dg.EnvVar)
    monkeypatch.delenv("AUDIENCE_PIPELINE_ENGINE")
    assert engine_from_env().engine == "polars"
