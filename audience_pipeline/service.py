"""One facade over the engine, shared by the command line and orchestration.

Each function here is a whole user action (validate, compute, preview, query); the CLI only parses
arguments and prints, and Dagster assets call the same functions.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import polars as pl

from audience_pipeline.engine.compute import ComputeResult
from audience_pipeline.engine.source import scan_events
from audience_pipeline.engines import engine_compute
from audience_pipeline.ingest import (
    IngestResult,
    ingest,
    ingest_to_parquet,
    read_normalized,
    write_normalized,
)
from audience_pipeline.ingest.schema import QUARANTINE_COLUMNS, TRAIT_UPDATES_COLUMNS
from audience_pipeline.ingest.storage import (
    EVENTS_FILE,
    QUARANTINE_FILE,
    TRAIT_UPDATES_FILE,
    stats_metadata,
)
from audience_pipeline.membership.diff import membership_changes, membership_history
from audience_pipeline.progress import Stages
from audience_pipeline.spec.compile import (
    compile_space,
    load_space_ir,
    validate_definitions,
    validation_warnings,
)
from audience_pipeline.spec.issues import DefinitionsError, Issue
from audience_pipeline.spec.loader import load_definitions, parse_timestamp
from audience_pipeline.spec.models import Definitions
from audience_pipeline.sqltraits.run import run_sql_traits, sql_traits
from audience_pipeline.warehouse import NORMALIZED, begin_run, check_not_empty, require_run
from audience_pipeline.warehouse.catalog import run_connection
from audience_pipeline.warehouse.files import write_parquet
from audience_pipeline.warehouse.guard import lines_read
from audience_pipeline.warehouse.layout import NORMALIZED_INPUTS
from audience_pipeline.warehouse.writer import checkpoint

log = logging.getLogger(__name__)


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


def validate_warnings(definitions: str | Path) -> list[str]:
    """Doubts that do not make definitions invalid: trait names nothing defines (when space.yaml
    declares no custom_traits), overlapping sample ranges of one salt."""
    from audience_pipeline.spec.unknown_names import unknown_name_warnings

    loaded, _ = load_definitions(str(definitions))
    unknown = [str(issue) for issue in unknown_name_warnings(loaded)]
    return unknown + validation_warnings(str(definitions), datetime.now(UTC))


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


def _load_for_engine(
    events: str | Path,
    definitions: Definitions,
    schema: str | None,
    staging: Path | None,
    engine: str,
) -> tuple[IngestResult, pl.LazyFrame | None, int]:
    """`load_events`, except that the Polars engine gets normalized events on disk (event files
    ingested into `staging`, or a normalized folder) as a scan: it reads them a bucket at a
    time, within the process's memory limit, instead of all at once."""
    path = Path(events)
    normalized = (
        schema is None
        and path.is_dir()
        and (path / EVENTS_FILE).exists()
        and (path / TRAIT_UPDATES_FILE).exists()
    )
    if engine != "polars" or schema is not None or not (normalized or staging is not None):
        ingested = load_events(events, definitions, schema, staging=staging)
        return ingested, None, ingested.events.height
    if normalized:
        ingested, scan, count = load_normalized_lazily(path)
        if staging is not None:  # the run keeps its inputs: a copy of the folder's tables
            staging.mkdir(parents=True, exist_ok=True)
            for name in (EVENTS_FILE, TRAIT_UPDATES_FILE, QUARANTINE_FILE):
                shutil.copyfile(path / name, staging / name)
        return ingested, scan, count
    assert staging is not None
    stats = ingest_to_parquet(path, definitions.space, staging)
    return load_normalized_lazily(staging, stats)


def compute_tables(
    ingested: IngestResult,
    definitions_dir: str | Path,
    as_of: datetime,
    engine: str = "polars",
    *,
    dsn: str | None = None,
    scan: pl.LazyFrame | None = None,
) -> tuple[Definitions, ComputeResult]:
    """Every computed table, by the Polars engine, inside DuckDB or inside the PostgreSQL server
    at `dsn` (same tables, same dtypes; see `engines`).

    `scan`: the events as a lazy scan of normalized Parquet (`ingested.events` then holds their
    seq column alone):
    the Polars engine streams them into its buckets; other engines and SQL traits read them
    whole."""
    compute_fn = engine_compute(engine, dsn=dsn)
    definitions, space = load_space_ir(str(definitions_dir), as_of)
    events: pl.DataFrame | pl.LazyFrame = ingested.events
    if scan is not None:
        events = scan
        if engine != "polars" or sql_traits(definitions):
            events = scan.collect(engine="streaming")
    sql_rows = run_sql_traits(definitions, _frame(events), ingested.trait_updates, as_of)
    result = compute_fn(events, ingested.trait_updates, definitions.space, space, as_of,  # type: ignore[arg-type]
                        sql_traits=sql_rows)  # fmt: skip
    return definitions, result


def _frame(events: pl.DataFrame | pl.LazyFrame) -> pl.DataFrame:
    """A frame where one is needed (only SQL traits read it; they are collected beforehand)."""
    return events if isinstance(events, pl.DataFrame) else events.head(0).collect()


def load_normalized_lazily(folder: Path, stats: dict[str, int] | None = None
                           ) -> tuple[IngestResult, pl.LazyFrame, int]:  # fmt: skip
    """A normalized folder's trait updates and quarantine, and its events as a scan (the
    returned IngestResult's events hold their seq column alone), with the number of events.

    `stats`: the ingestion's counts when known (else the ones events.parquet carries)."""
    scan = scan_events(folder)
    seqs = scan.select("seq").collect()  # 8 bytes an event: the rows counted, not their columns
    count = seqs.height
    updates = pl.read_parquet(folder / TRAIT_UPDATES_FILE).select(
        pl.col(c).cast(t) for c, t in TRAIT_UPDATES_COLUMNS.items()
    )
    quarantine = pl.read_parquet(folder / QUARANTINE_FILE).select(
        pl.col(c).cast(t) for c, t in QUARANTINE_COLUMNS.items()
    )
    if stats is None:
        (key,) = stats_metadata({})
        stored = pl.read_parquet_metadata(folder / EVENTS_FILE).get(key)
        stats = dict(orjson.loads(stored)) if stored else {"messages": count}
    return IngestResult(seqs, updates, quarantine, stats), scan, count


def run_compute(
    events: str | Path,
    definitions_dir: str | Path,
    as_of: datetime,
    out: str | Path,
    *,
    keep_normalized: bool = True,
    engine: str = "polars",
    schema: str | None = None,
    allow_empty: bool = False,
    dsn: str | None = None,
    out_schema: str | None = None,
) -> RunSummary:
    """`compute`: ingest, compute every table, diff against the previous run in `out`, commit.

    Everything is written into a new run folder of `out`, which becomes the warehouse's
    current run in one atomic step (`audience_pipeline.warehouse`); a failed or killed run
    changes nothing readers see.

    `dsn` and `out_schema`: with ``engine="postgres"``, the server that computes, and the schema
    of it where the run's tables are also written (replaced in one transaction).

    Raises:
        DefinitionsError: invalid definitions.
        EmptyInput: no event read while the warehouse's last run had events (`allow_empty`
            overrides).
    """
    out = Path(out)
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    timings: dict[str, float] = {}
    stages = Stages(timings)
    stages.start("ingest")
    with begin_run(out, as_of=as_of) as writer:
        guard = {"source": events, "allow_empty": allow_empty, "option": "--allow-empty"}
        if schema is None and not Path(events).exists():
            check_not_empty(0, writer.previous, **guard)  # type: ignore[arg-type]
        staging = writer.folder / NORMALIZED if keep_normalized else None
        ingested, scan, n_events = _load_for_engine(events, definitions, schema, staging, engine)
        read = lines_read(n_events, ingested.quarantine)
        check_not_empty(read, writer.previous, **guard)  # type: ignore[arg-type]
        stages.start("compute")
        _, result = compute_tables(ingested, definitions_dir, as_of, engine, dsn=dsn, scan=scan)
        stages.start("write")
        # Changes and history derive from the committed run (never from a killed run's files).
        base = writer.base
        previous = base.table("memberships") if base else None
        changes = membership_changes(previous, result.memberships, as_of)
        history = membership_history(
            base.table("membership_history") if base else None, changes, as_of
        )
        tables = {
            **result.tables(),
            "membership_changes": changes,
            "membership_history": history,
            "quarantine": ingested.quarantine,
        }
        writer.write_all(tables)
        if engine == "postgres" and dsn and out_schema:
            from audience_pipeline.sql.postgres_tables import write_tables

            write_tables(dsn, out_schema, tables)
        if staging is not None:
            write_parquet(
                result.message_profiles, writer.folder / NORMALIZED_INPUTS["message_profiles"]
            )
            checkpoint("normalized")
        stages.start("commit")
        writer.commit(
            as_of=as_of,
            layout="normalized" if staging is not None else "none",
            json_columns=result.json_columns,
            messages=n_events,
        )
        stages.finish()
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
    """Run an analyst's SQL over the tables of the warehouse's current run (one view each)."""
    con = run_connection(require_run(warehouse))
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
    "validate_warnings",
]
