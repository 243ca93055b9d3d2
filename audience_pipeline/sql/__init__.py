"""The SQL backend: the same IR as the Polars engine, compiled to sqlglot ASTs.

`audience_sql` renders one audience of a compiled space for duckdb, postgres, snowflake, bigquery
or spark (`audience_pipeline.compile_sql` reads a definitions folder for it);
`compute_duckdb` computes every table inside DuckDB.
"""

from __future__ import annotations

from audience_pipeline.sql.compiler import SpaceSql, audience_sql, audiences_sql, build_space_sql
from audience_pipeline.sql.compute import compute_duckdb
from audience_pipeline.sql.dialects import DIALECTS, get_dialect

__all__ = [
    "DIALECTS",
    "SpaceSql",
    "build_space_sql",
    "audience_sql",
    "audiences_sql",
    "compute_duckdb",
    "get_dialect",
]
