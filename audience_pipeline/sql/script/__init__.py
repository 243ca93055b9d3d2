"""`compile --all`: one SQL script that builds every output table of a space from Segment's
warehouse schema, for duckdb, postgres, snowflake, bigquery or spark (docs/sql.md)."""

from __future__ import annotations

from audience_pipeline.sql.script.build import compile_script

__all__ = ["compile_script"]
