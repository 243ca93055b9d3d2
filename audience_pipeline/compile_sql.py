"""The `compile` command: a definitions folder -> SQL text.

This is where the definitions are loaded and compiled (`spec`); the SQL backend (`sql.compiler`,
`sql.script`) is handed the compiled space and never reads YAML itself.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql.compiler import audience_sql, audiences_sql
from audience_pipeline.sql.relations import Inputs
from audience_pipeline.sql.script.build import space_script
from audience_pipeline.sql.script.catalog import Catalog, catalog_from_csv, catalog_from_database
from audience_pipeline.sql.script.program import Script


def _moment(as_of: datetime | None) -> datetime:
    return as_of or datetime.now(UTC).replace(microsecond=0)


def compile_audience(
    definitions_dir: str | Path,
    key: str,
    dialect: str,
    *,
    as_of: datetime | None = None,
    inputs: Inputs | None = None,
) -> str:
    """Readable SQL listing the members (entity_id) of one audience.

    Args:
        definitions_dir: the space's definitions folder.
        key: the audience key.
        dialect: duckdb, postgres, snowflake, bigquery or spark.
        as_of: only used for `created_at` defaults of `backfill: false` audiences; the query
            itself takes the as-of as the named parameter ``as_of``.
        inputs: names of the input relations.

    Returns:
        Pretty SQL text for the dialect.
    """
    _, space = load_space_ir(str(definitions_dir), _moment(as_of))
    return audience_sql(space, key, dialect, inputs=inputs)


def compile_audiences(
    definitions_dir: str | Path, dialect: str, *, as_of: datetime | None = None
) -> dict[str, str]:
    """`compile_audience` for every audience of a space (loads the definitions once)."""
    _, space = load_space_ir(str(definitions_dir), _moment(as_of))
    return audiences_sql(space, dialect)


def build_script(definitions_dir: str | Path, dialect: str, catalog: Catalog, *,
                 as_of: datetime | None = None, out_schema: str = "audiences") -> Script:  # fmt: skip
    """The whole-space script of a definitions folder as steps (`sql.script.build.space_script`)."""
    moment = _moment(as_of)
    definitions, space = load_space_ir(str(definitions_dir), moment)
    return space_script(definitions, space, dialect, catalog, as_of=moment,
                        out_schema=out_schema, source=str(definitions_dir))  # fmt: skip


def compile_script(definitions_dir: str | Path, dialect: str, catalog: Catalog, *,
                   as_of: datetime | None = None, out_schema: str = "audiences") -> str:  # fmt: skip
    """One runnable script building every output table of the space (docs/sql.md).

    Args:
        definitions_dir: the space's definitions folder.
        dialect: duckdb, postgres, snowflake, bigquery or spark.
        catalog: the columns of Segment's tables in the source schema.
        as_of: the evaluation time (the script's first table, ``ap_params``, holds it).
        out_schema: where the output tables go (created if missing).

    Returns:
        The script's text.
    """
    return build_script(definitions_dir, dialect, catalog, as_of=as_of,
                        out_schema=out_schema).render()  # fmt: skip


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
