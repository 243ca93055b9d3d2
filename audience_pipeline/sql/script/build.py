"""Assemble the whole-space script: staging, identity, inputs, frames, outputs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlglot

from audience_pipeline.spec.compile import load_space_ir
from audience_pipeline.sql.dialects import get_dialect
from audience_pipeline.sql.script.catalog import Catalog
from audience_pipeline.sql.script.identity import identity_steps
from audience_pipeline.sql.script.program import Script, Statement, Table
from audience_pipeline.sql.script.space import frame_steps, input_steps, output_steps, params_step
from audience_pipeline.sql.script.staging import (
    Staging,
    referenced_events,
    referenced_paths,
)

# Every engine reads and writes timestamps in UTC for the run (BigQuery's are always UTC);
# PostgreSQL's JIT would compile each round's query (seconds per round on small tables).
_SESSION = {
    "duckdb": ("SET TimeZone = 'UTC'",),
    "postgres": ("SET TimeZone = 'UTC'", "SET jit = off"),
    "snowflake": ("ALTER SESSION SET TIMEZONE = 'UTC'",),
    "spark": ("SET spark.sql.session.timeZone = UTC",),
}


def build_script(definitions_dir: str | Path, dialect: str, catalog: Catalog, *,
                 as_of: datetime | None = None, out_schema: str = "audiences") -> Script:  # fmt: skip
    """The script as steps (see `program`); `compile_script` renders it."""
    moment = as_of or datetime.now(UTC).replace(microsecond=0)
    definitions, space = load_space_ir(str(definitions_dir), moment)
    d = get_dialect(dialect)
    if not catalog.tables:
        msg = f"no tables found for schema {catalog.schema!r} (--events-schema / --columns)"
        raise ValueError(msg)
    staging = Staging(catalog, definitions.space, d, referenced_paths(space),
                      referenced_events(space))  # fmt: skip
    script = Script(d.sqlglot_dialect, header=_header(definitions_dir, d.name, catalog, moment,
                                                      out_schema))  # fmt: skip
    for setting in _SESSION.get(d.name, ()):
        script.add(Statement(sqlglot.parse_one(setting, read=d.sqlglot_dialect)))
    script.add(params_step(d, moment))
    script.add(*staging.steps())
    updates = staging.trait_updates()
    if updates is not None:
        script.add(updates)
    script.add(*identity_steps(definitions.space, d, staging.id_paths))
    script.add(*input_steps(staging))
    frames, names = frame_steps(space, staging)
    script.add(*frames)
    script.add(*output_steps(staging, space, names, out_schema))
    return script


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


def _header(definitions_dir: str | Path, dialect: str, catalog: Catalog, as_of: datetime,
            out_schema: str) -> list[str]:  # fmt: skip
    return [
        f"audience_pipeline: every output table of the space in {definitions_dir}, for {dialect}.",
        f"Reads Segment's tables in schema {catalog.schema}; writes {out_schema}.identities,",
        "user_traits, account_traits, memberships, account_user_memberships,",
        "membership_changes, membership_history and quarantine (changes and history diff",
        f"against the previous run's tables there). As-of: {as_of.isoformat()} (table ap_params,",
        "the script's first statement: change it there to run at another time).",
        "Intermediate tables are named ap_*. Run it as one script (see docs/sql.md).",
        "",
    ]


__all__ = ["Table", "build_script", "compile_script"]
