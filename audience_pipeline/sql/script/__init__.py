"""`compile --all`: one SQL script that builds every output table of a space from Segment's
warehouse schema, for duckdb, postgres, snowflake, bigquery or spark (docs/sql.md). The
definitions folder is read by `audience_pipeline.compile_sql`, which hands the compiled space to
`build.space_script`."""

from __future__ import annotations

from audience_pipeline.sql.script.build import space_script

__all__ = ["space_script"]
