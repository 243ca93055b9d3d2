"""One facade over the engine, shared by the command line and orchestration.

Each function here is a whole user action (validate, compute, preview, query); the CLI only parses
arguments and prints, and Dagster assets call the same functions.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from audience_pipeline.engine.compute import ComputeResult
from audience_pipeline.engines import engine_compute
from audience_pipeline.ingest import (
    IngestResult,
    ingest,
    ingest_to_parquet,
    read_normalized,
    write_normalized,
)
from audience_pipeline.manifest import publish_normalized, staging_folder, write_manifest
from audience_pipeline.membership.diff import membership_changes, membership_history
from audience_pipeline.spec.compile import compile_space, load_space_ir, validate_definitions
from audience_pipeline.spec.issues import DefinitionsError, Issue
from audience_pipeline.spec.loader import load_definitions, parse_timestamp
from audience_pipeline.spec.models import Definitions
from audience_pipeline.storage import read_table, warehouse_connection, write_table

log = logging.getLogger(__name__)

NORMALIZED = "_normalized"


@dataclass
class RunSummary:
    out: Path
    as_of: datetime
    tables: dict[str, int]
    audience_sizes: dict[str, int]
    entered: dict[str, int]
    exited: dict[str, int]
    quarantined: int
    seconds: dict[str, float] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=dict)


def parse_as_of(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    return parse_timestamp(text)


def validate(definitions: str | Path) -> list[Issue]:
    return validate_definitions(str(definitions), datetime.now(UTC))


def load_events(
    events: str | Path,
    definitions: Definitions,
    schema: str | None = None,
    *,
    staging: Path | None = None,
) -> IngestResult:
    """Ingest event files, read an already normalized folder (one holding events.parquet), or,
    with `schema`, read Segment's warehouse tables (tracks, identifies, groups, pages, ...) of
    that schema from a DuckDB database file or a PostgreSQL DSN.

    `staging`: also leave the normalized tables in this folder (event files are ingested
    straight into it, not through a temporary folder)."""
    path = Path(events)
    if schema is not None:
        from audience_pipeline.sql.warehouse import read_segment_warehouse

        result = read_segment_warehouse(str(events), schema, space=definitions.space)
    elif (
        path.is_dir()
        and (path / "events.parquet").exists()
        and (path / "trait_updates.parquet").exists()
    ):
        result = read_normalized(path)
    elif staging is not None:
        ingest_to_parquet(path, definitions.space, staging)
        return read_normalized(staging)
    else:
        return ingest(path, definitions.space)
    if staging is not None:
        write_normalized(result, staging)
    return result


def compute_tables(
    ingested: IngestResult,
    definitions_dir: str | Path,
    as_of: datetime,
    engine: str = "polars",
    *,
    dsn: str | None = None,
) -> tuple[Definitions, ComputeResult]:
    """Every computed table, by the Polars engine, inside DuckDB or inside the PostgreSQL server
    at `dsn` (same tables, same dtypes; see `engines`)."""
    compute_fn = engine_compute(engine, dsn=dsn)
    definitions, space = load_space_ir(str(definitions_dir), as_of)
    result = compute_fn(ingested.events, ingested.trait_updates, definitions.space, space, as_of)
    return definitions, result


@contextmanager
def _staging(folder: Path, keep: bool) -> Iterator[Path | None]:
    """A staging folder for the run's normalized tables (None when not kept), removed on the
    way out: emptied by `publish_normalized`, or still full after a failed run."""
    staging = staging_folder(folder) if keep else None
    try:
        yield staging
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def run_compute(
    events: str | Path,
    definitions_dir: str | Path,
    as_of: datetime,
    out: str | Path,
    *,
    keep_normalized: bool = True,
    engine: str = "polars",
    schema: str | None = None,
    dsn: str | None = None,
    out_schema: str | None = None,
) -> RunSummary:
    """`compute`: ingest, compute every table, diff against the previous run in `out`, write.

    `dsn` and `out_schema`: with ``engine="postgres"``, the server that computes, and the schema
    of it where the run's tables are also written (replaced in one transaction)."""
    out = Path(out)
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    with _staging(out / NORMALIZED, keep_normalized) as staging:
        ingested = load_events(events, definitions, schema, staging=staging)
        timings["ingest"] = time.perf_counter() - start
        start = time.perf_counter()
        _, result = compute_tables(ingested, definitions_dir, as_of, engine, dsn=dsn)
        timings["compute"] = time.perf_counter() - start
        start = time.perf_counter()
        previous = read_table(out, "memberships")
        changes = membership_changes(previous, result.memberships, as_of)
        history = membership_history(read_table(out, "membership_history"), changes, as_of)
        tables = {
            **result.tables(),
            "membership_changes": changes,
            "membership_history": history,
            "quarantine": ingested.quarantine,
        }
        # Memberships last: a reader that sees the new memberships sees everything else new too.
        for name in sorted(tables, key=lambda n: n == "memberships"):
            write_table(tables[name], out, name)
        if engine == "postgres" and dsn and out_schema:
            from audience_pipeline.sql.postgres_tables import write_tables

            write_tables(dsn, out_schema, tables)
        inputs = None
        if staging is not None:
            inputs = publish_normalized(staging, result.message_profiles, out / NORMALIZED)
        # Written last: readers (the Profile API, explain) pin the files of one run through it.
        write_manifest(
            out, as_of=as_of, inputs=inputs, layout="normalized", json_columns=result.json_columns
        )
        timings["write"] = time.perf_counter() - start
    sizes = result.memberships.group_by("audience_key").len()
    size_map = dict(zip(sizes["audience_key"].to_list(), sizes["len"].to_list(), strict=True))
    audience_keys = [a.key for a in definitions.audiences]
    counts = changes.group_by("audience_key", "change").len()

    def count(change: str) -> dict[str, int]:
        rows = counts.filter(pl.col("change") == change)
        found = dict(zip(rows["audience_key"].to_list(), rows["len"].to_list(), strict=True))
        return {k: int(found.get(k, 0)) for k in audience_keys}

    return RunSummary(
        out=out,
        as_of=as_of,
        tables={name: frame.height for name, frame in tables.items()},
        audience_sizes={k: int(size_map.get(k, 0)) for k in audience_keys},
        entered=count("entered"),
        exited=count("exited"),
        quarantined=ingested.quarantine.height,
        seconds=timings,
        stats={**ingested.stats, **result.stats},
    )


@dataclass
class Preview:
    key: str
    level: str
    size: int
    universe: int
    sample: pl.DataFrame


def preview(
    key: str,
    events: str | Path,
    definitions_dir: str | Path,
    as_of: datetime,
    *,
    sample: int = 10,
    schema: str | None = None,
) -> Preview:
    """Size and a sample of an audience's members, computed now and written nowhere."""
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    audience = definitions.audience(key)
    if audience is None:
        raise DefinitionsError([Issue(str(definitions_dir), key, None, "unknown audience", key)])
    ingested = load_events(events, definitions, schema)
    _, result = compute_tables(ingested, definitions_dir, as_of)
    members = result.memberships.filter(pl.col("audience_key") == key)
    if audience.level == "user":
        universe = result.user_traits.height
        ids = result.identities.group_by("profile_id").agg(
            pl.concat_str("id_type", pl.lit(":"), "id_value")
            .sort()
            .str.join(", ")
            .alias("identifiers")
        )
        shown = (
            members.select(pl.col("entity_id").alias("profile_id"))
            .head(sample)
            .join(ids, on="profile_id", how="left")
        )
    else:
        universe = result.account_traits.height
        shown = members.select(pl.col("entity_id").alias("account_id")).head(sample)
    return Preview(key, audience.level, members.height, universe, shown)


def query(sql: str, warehouse: str | Path) -> pl.DataFrame:
    """Run an analyst's SQL over the warehouse tables (one view per table)."""
    con = warehouse_connection(Path(warehouse))
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


__all__ = [
    "DefinitionsError",
    "Preview",
    "RunSummary",
    "compile_space",
    "parse_as_of",
    "preview",
    "query",
    "run_compute",
    "validate",
]
