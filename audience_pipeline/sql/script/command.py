"""`audience-pipeline compile --all`: print (or write) the whole-space script."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path

from audience_pipeline.sql.script.build import compile_script
from audience_pipeline.sql.script.catalog import Catalog, catalog_from_csv, catalog_from_database


def load_catalog(columns: str | None, events: str | None, schema: str) -> Catalog:
    if columns:
        if not Path(columns).is_file():
            msg = f"--columns {columns}: no such file"
            raise ValueError(msg)
        return catalog_from_csv(columns, schema)
    if events:
        is_dsn = events.startswith(("postgres://", "postgresql://"))
        if not is_dsn and not Path(events).is_file():
            msg = f"--events {events}: no such DuckDB file (or give a postgresql:// DSN)"
            raise ValueError(msg)
        return catalog_from_database(events, schema)
    msg = (
        "compile --all needs the columns of Segment's tables: --columns FILE (an export of "
        "information_schema.columns, see docs/sql.md) or --events DUCKDB_FILE|POSTGRES_DSN"
    )
    raise ValueError(msg)


def compile_all_command(definitions: str, dialect: str, *, columns: str | None,
                        events: str | None, schema: str, as_of: datetime,
                        out_schema: str, out: str | None) -> int:  # fmt: skip
    """Write the script to `out` (or stdout); 0 on success (user mistakes raise ValueError)."""
    catalog = load_catalog(columns, events, schema)
    text = compile_script(definitions, dialect, catalog, as_of=as_of, out_schema=out_schema)
    if out:
        Path(out).write_text(text)
        print(f"{dialect} script for {len(catalog.tables)} tables of {schema} -> {out}",
              file=sys.stderr)  # fmt: skip
    else:
        sys.stdout.write(text)
    return 0
