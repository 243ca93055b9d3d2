"""The demo data computed on a real local Spark (local[2]) from the Spark SQL, agreeing with Polars."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import duckdb
import polars as pl
import pytest

from audience_pipeline.demo.generate import DEFAULT_AS_OF, generate
from audience_pipeline.engine.compute import compute
from audience_pipeline.ingest import ingest
from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql.compiler import build_space_sql
from audience_pipeline.sql.compute import prepare_inputs
from audience_pipeline.sql.relations import ENTITY, Inputs, bind_as_of

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("pyspark") is None,
        reason="pyspark is not importable: run scripts/install-spark.sh (the test runner does)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
SPACES = {"sqltest": Path(__file__).parent / "space", "demo": ROOT / "definitions"}


@pytest.fixture(scope="module")
def spark():  # type: ignore[no-untyped-def]
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("audience-pipeline-tests")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.mark.parametrize("space", ["demo", "sqltest"])
def test_spark_sql_agrees_with_polars(space: str, spark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = SPACES[space]
    if not (folder / "space.yaml").exists():
        pytest.skip(f"no space at {folder}")
    events_dir = tmp_path / "events"
    generate(events_dir, events=3000, seed=5, gzip=False, workers=1)
    definitions, compiled_space = load_space_ir(str(folder), DEFAULT_AS_OF)
    ingested = ingest(events_dir, definitions.space, workers=1)
    expected = compute(ingested.events, ingested.trait_updates, definitions.space,
                       compiled_space, DEFAULT_AS_OF)  # fmt: skip

    # The input tables, prepared in DuckDB, handed to Spark as Parquet.
    con = duckdb.connect()
    prepare_inputs(con, ingested.events, ingested.trait_updates, definitions.space, DEFAULT_AS_OF)
    inputs = Inputs()
    for name in (inputs.events, inputs.profiles, inputs.user_traits, inputs.accounts,
                 inputs.account_members, inputs.account_traits, inputs.identities):  # fmt: skip
        frame = con.sql(f'SELECT * FROM "{name}"').pl()  # noqa: S608
        frame = frame.select([c for c in frame.columns if not c.startswith(("p.", "c."))])
        path = tmp_path / f"{name}.parquet"
        frame.write_parquet(path)
        spark.read.parquet(str(path)).createOrReplaceTempView(name)
    con.close()

    compiled = build_space_sql(compiled_space, "spark")
    literal = compiled.dialect.timestamp(DEFAULT_AS_OF.isoformat())
    members: set[tuple[str, str]] = set()
    for level in ("user", "account"):
        frame_name = compiled.user_frame if level == "user" else compiled.account_frame
        if frame_name is None:
            continue
        query = bind_as_of(compiled.level_query(level), literal)  # type: ignore[arg-type]
        result = spark.sql(compiled.dialect.render(query))
        result.createOrReplaceTempView(frame_name)
        result.cache()
        audiences = [a for a in compiled_space.audiences if a.level == level]
        rows = result.select(ENTITY, *[f"_a_{a.key}" for a in audiences]).collect()
        for row in rows:
            for audience in audiences:
                if row[f"_a_{audience.key}"]:
                    members.add((audience.key, row[ENTITY]))
    want = set(expected.memberships.select("audience_key", "entity_id").iter_rows())
    assert members == want
    assert len(want) > 0
    assert expected.memberships.filter(pl.col("level") == "user").height > 0
