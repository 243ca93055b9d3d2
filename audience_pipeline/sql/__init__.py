"""The SQL backend: the same IR as the Polars engine, compiled to sqlglot ASTs.

`compile_audience` renders one audience for duckdb, postgres, snowflake, bigquery or spark;
`compute_duckdb` computes every table inside DuckDB; `read_segment_warehouse` reads events from
Segment's warehouse schema (DuckDB or PostgreSQL).
"""

from __future__ import annotations

from audience_pipeline.sql.compiler import SpaceSql, build_space_sql, compile_audience
from audience_pipeline.sql.compute import compute_duckdb
from audience_pipeline.sql.dialects import DIALECTS, get_dialect

__all__ = [
    "DIALECTS",
    "SpaceSql",
    "build_space_sql",
    "compile_audience",
    "compute_duckdb",
    "get_dialect",
]
