"""Spark as an engine of `engines` (the protocol every engine follows: normalized events and
trait updates in, `ComputeResult` out), for callers that already hold the normalized events,
such as Dagster's engine asset. `compute --engine spark` reads the files on Spark instead
(`compute`)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.identity.result import limits_by_rank
from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.models import SpaceConfig
from audience_pipeline.sqltraits.run import SqlTraitResult
from audience_pipeline.tables.result import ComputeResult


def compute_on_spark(events: pl.DataFrame, trait_updates: pl.DataFrame, space: SpaceConfig,
                     space_ir: ir.Space, as_of: datetime,
                     sql_traits: list[SqlTraitResult] | None = None, *,
                     master: str | None = None) -> ComputeResult:  # fmt: skip
    """The Polars engine's tables, computed on Spark (a session of `master`, default
    ``local[*]``, started and stopped here); the events reach it as Parquet files."""
    from audience_pipeline.spark.compute import spark_session
    from audience_pipeline.spark.from_messages import compute_loaded, load_normalized

    scratch = Path(tempfile.mkdtemp(prefix="ap-spark-"))
    spark = spark_session(master, str(scratch / "warehouse"))
    try:
        load_normalized(spark, events, trait_updates, scratch / "input")
        result, _ = compute_loaded(spark, space, space_ir, as_of, limits_by_rank(space),
                                   sql_traits)  # fmt: skip
    finally:
        spark.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return result
