"""Assemble the whole-space script: staging, identity, inputs, frames, outputs."""

from __future__ import annotations

from datetime import datetime

import sqlglot

from audience_pipeline.ir import nodes as ir
from audience_pipeline.spec.models import Definitions
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


def space_script(definitions: Definitions, space: ir.Space, dialect: str, catalog: Catalog, *,
                 as_of: datetime, out_schema: str = "audiences", source: str = "") -> Script:  # fmt: skip
    """The whole-space script as steps (see `program`; `Script.render` gives its text).

    Args:
        definitions: the space's definitions (its identifier rules).
        space: the same space compiled (`spec.compile.load_space_ir` at `as_of`).
        dialect: duckdb, postgres, snowflake, bigquery or spark.
        catalog: the columns of Segment's tables in the source schema.
        as_of: the evaluation time (the script's first table, ``ap_params``, holds it).
        out_schema: where the output tables go (created if missing).
        source: where the definitions came from (named in the script's header).
    """
    d = get_dialect(dialect)
    if not catalog.tables:
        msg = f"no tables found for schema {catalog.schema!r} (--events-schema / --columns)"
        raise ValueError(msg)
    staging = Staging(catalog, definitions.space, d, referenced_paths(space),
                      referenced_events(space))  # fmt: skip
    script = Script(d.sqlglot_dialect, header=_header(source, d.name, catalog, as_of, out_schema))
    for setting in _SESSION.get(d.name, ()):
        script.add(Statement(sqlglot.parse_one(setting, read=d.sqlglot_dialect)))
    script.add(params_step(d, as_of))
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


def _header(source: str, dialect: str, catalog: Catalog, as_of: datetime,
            out_schema: str) -> list[str]:  # fmt: skip
    return [
        f"audience_pipeline: every output table of the space in {source}, for {dialect}.",
        f"Reads Segment's tables in schema {catalog.schema}; writes {out_schema}.identities,",
        "user_traits, account_traits, memberships, account_user_memberships,",
        "membership_changes, membership_history and quarantine (changes and history diff",
        f"against the previous run's tables there). As-of: {as_of.isoformat()} (table ap_params,",
        "the script's first statement: change it there to run at another time).",
        "Intermediate tables are named ap_*. Run it as one script (see docs/sql.md).",
        "",
    ]


__all__ = ["Table", "space_script"]
