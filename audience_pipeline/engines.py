"""The engines that compute a run's tables, chosen by name (a neutral place: the CLI, the service
facade and Dagster's engine resource pick one here; no backend imports another).

Every engine takes the normalized events and trait updates, the space's identifier rules, the
compiled space and the as-of, and returns the same `ComputeResult` (same tables, same dtypes).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import polars as pl

from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.models import SpaceConfig

if TYPE_CHECKING:
    from audience_pipeline.engine.compute import ComputeResult
    from audience_pipeline.sqltraits.run import SqlTraitResult

ENGINES = ("polars", "duckdb", "postgres", "spark")


class ComputeFn(Protocol):
    """``fn(events, trait_updates, space_config, space_ir, as_of, sql_traits=...)``."""

    def __call__(
        self,
        events: pl.DataFrame,
        trait_updates: pl.DataFrame,
        space_config: SpaceConfig,
        space_ir: ir.Space,
        as_of: datetime,
        /,
        *,
        sql_traits: list[SqlTraitResult] | None = None,
    ) -> ComputeResult: ...


def engine_compute(
    engine: str = "polars",
    *,
    dsn: str | None = None,
    normalized: Path | None = None,
    memory_limit: str | int | None = None,
) -> ComputeFn:
    """The compute function of one engine.

    Args:
        engine: polars (in process), duckdb (in process), postgres (inside the server at `dsn`),
            or spark (on the master URL `dsn`, default ``local[*]``).
        dsn: what the engine connects to: a PostgreSQL connection string (``postgres``), a Spark
            master URL (``spark``).
        normalized: the folder holding the very events and trait updates the function will be
            handed, as Parquet (a run's `_normalized/`): ``duckdb`` reads them there itself
            instead of from the frames.
        memory_limit: the run's memory limit (see `limits`; None: its default), for ``duckdb``.

    Returns:
        ``fn(events, trait_updates, space_config, space_ir, as_of, sql_traits) -> ComputeResult``
        (`sql_traits`: the rows of the space's `kind: sql` traits, or None).
    """
    if engine == "polars":
        from audience_pipeline.engine.compute import compute

        return compute
    if engine == "duckdb":
        return _duckdb(normalized, memory_limit)
    if engine == "postgres":
        if not dsn:
            raise ValueError("--engine postgres needs --dsn (a PostgreSQL connection string)")
        from audience_pipeline.sql.postgres_compute import compute_postgres

        def on_postgres(events: pl.DataFrame, trait_updates: pl.DataFrame,
                        space_config: SpaceConfig, space_ir: ir.Space, as_of: datetime,
                        sql_traits: list[SqlTraitResult] | None = None) -> ComputeResult:  # fmt: skip
            return compute_postgres(events, trait_updates, space_config, space_ir, as_of,
                                    sql_traits, dsn=dsn)  # fmt: skip

        return on_postgres
    if engine == "spark":
        from audience_pipeline.spark.engine import compute_on_spark

        def on_spark(events: pl.DataFrame, trait_updates: pl.DataFrame, space_config: SpaceConfig,
                     space_ir: ir.Space, as_of: datetime,
                     sql_traits: list[SqlTraitResult] | None = None) -> ComputeResult:  # fmt: skip
            return compute_on_spark(events, trait_updates, space_config, space_ir, as_of,
                                    sql_traits, master=dsn)  # fmt: skip

        return on_spark
    msg = f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}"
    raise ValueError(msg)


def _duckdb(normalized: Path | None, memory_limit: str | int | None) -> ComputeFn:
    from audience_pipeline.sql.compute import compute_duckdb, compute_duckdb_normalized
    from audience_pipeline.sql.sources import ParquetSource

    def on_duckdb(events: pl.DataFrame, trait_updates: pl.DataFrame, space_config: SpaceConfig,
                  space_ir: ir.Space, as_of: datetime,
                  sql_traits: list[SqlTraitResult] | None = None) -> ComputeResult:  # fmt: skip
        if normalized is not None and ParquetSource.in_folder(normalized, as_of) is not None:
            # The same messages as the frames, read by DuckDB itself (and spilled if need be).
            return compute_duckdb_normalized(normalized, space_config, space_ir, as_of,
                                             sql_traits, memory_limit=memory_limit)  # fmt: skip
        return compute_duckdb(events, trait_updates, space_config, space_ir, as_of, sql_traits,
                              bounded=True, memory_limit=memory_limit)  # fmt: skip

    return on_duckdb
