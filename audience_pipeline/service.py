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
from typing import Protocol

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
from audience_pipeline.membership.refresh import EngineRun, keep_state, refresh_engine, run_tables
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
from audience_pipeline.warehouse import (
    NORMALIZED,
    Run,
    RunWriter,
    begin_run,
    check_not_empty,
    require_run,
)
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
        from audience_pipeline.ingest.segment_warehouse import read_segment_warehouse

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
    normalized: Path | None = None,
    scan: pl.LazyFrame | None = None,
) -> tuple[Definitions, ComputeResult]:
    """Every computed table, by the Polars engine, inside DuckDB or inside the PostgreSQL server
    at `dsn` (same tables, same dtypes; see `engines`).

    `normalized`: the folder where `ingested` is also stored as Parquet (DuckDB reads it there).
    `scan`: the events as a lazy scan of normalized Parquet (`ingested.events` then holds their
    seq column alone): the Polars engine streams them into its buckets; other engines and SQL
    traits read them whole."""
    compute_fn = engine_compute(engine, dsn=dsn, normalized=normalized)
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
                           ) -> tuple[IngestResult, pl.LazyFrame]:  # fmt: skip
    """A normalized folder's trait updates and quarantine, and its events as a scan (the
    returned IngestResult's events hold their seq column alone: callers count its rows).

    `stats`: the ingestion's counts when known (else the ones events.parquet carries)."""
    scan = scan_events(folder)
    seqs = scan.select("seq").collect()  # 8 bytes an event: the rows counted, not their columns
    updates = pl.read_parquet(folder / TRAIT_UPDATES_FILE).select(
        pl.col(c).cast(t) for c, t in TRAIT_UPDATES_COLUMNS.items()
    )
    quarantine = pl.read_parquet(folder / QUARANTINE_FILE).select(
        pl.col(c).cast(t) for c, t in QUARANTINE_COLUMNS.items()
    )
    if stats is None:
        (key,) = stats_metadata({})
        stored = pl.read_parquet_metadata(folder / EVENTS_FILE).get(key)
        stats = dict(orjson.loads(stored)) if stored else {"messages": seqs.height}
    return IngestResult(seqs, updates, quarantine, stats), scan


def _load_lazily(events: str | Path, definitions: Definitions, staging: Path | None
                 ) -> tuple[IngestResult, pl.LazyFrame] | None:  # fmt: skip
    """Normalized events on disk as a scan (event files ingested into `staging`, or a
    normalized folder, copied into `staging` when given); None when the events are neither."""
    path = Path(events)
    if path.is_dir() and (path / EVENTS_FILE).exists() and (path / TRAIT_UPDATES_FILE).exists():
        if staging is not None:  # the run keeps its inputs: a copy of the folder's tables
            staging.mkdir(parents=True, exist_ok=True)
            for name in (EVENTS_FILE, TRAIT_UPDATES_FILE, QUARANTINE_FILE):
                shutil.copyfile(path / name, staging / name)
        return load_normalized_lazily(path)
    if staging is None:
        return None
    stats = ingest_to_parquet(path, definitions.space, staging)
    return load_normalized_lazily(staging, stats)


@dataclass
class Loaded:
    """A run's messages, pinned into the run being written (see `EventsSource`).

    Attributes:
        ingested: the normalized events, trait updates and stats (and quarantine, for sources
            that commit it with the run).
        layout: how the run keeps its inputs (run.json's `layout`): ``normalized`` (the
            `_normalized` folder), ``partitions`` (Dagster's pinned partitions) or ``none``.
        tables: tables the source adds to the run (``quarantine`` for event files).
        staging: the run's `_normalized` folder, completed with message_profiles after compute.
        scan: the normalized events as a lazy scan, for the Polars engine to read a bucket of
            profiles at a time (`ingested.events` then holds their seq column alone).
    """

    ingested: IngestResult
    layout: str
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    staging: Path | None = None
    scan: pl.LazyFrame | None = None  # the events, when `ingested.events` holds their seq alone


class EventsSource(Protocol):
    """Where a run's messages come from: event files (`EventFiles`, the CLI) or Dagster's daily
    partitions (`membership.pipeline.Partitions`)."""

    def load(self, writer: RunWriter, definitions: Definitions, *, allow_empty: bool) -> Loaded:
        """Read the messages into the run `writer` writes; raise `EmptyInput` when none was
        read while the previous run had some (unless `allow_empty`)."""
        ...


@dataclass(frozen=True)
class EventFiles:
    """Event files or a folder (ingested), a normalized folder, or Segment's warehouse tables
    in `schema` (see `load_events`); with `keep_normalized` the run keeps them normalized."""

    events: str | Path
    schema: str | None = None
    keep_normalized: bool = True
    option: str = "--allow-empty"
    # Normalized events stay on disk as a scan (the Polars engine computing in full reads them a
    # bucket of profiles at a time, within the process's memory limit, not all at once).
    lazy: bool = False

    def load(self, writer: RunWriter, definitions: Definitions, *, allow_empty: bool) -> Loaded:
        guard = {"source": self.events, "allow_empty": allow_empty, "option": self.option}
        if self.schema is None and not Path(self.events).exists():
            check_not_empty(0, writer.previous, **guard)  # type: ignore[arg-type]
        staging = writer.folder / NORMALIZED if self.keep_normalized else None
        lazily = (
            _load_lazily(self.events, definitions, staging)
            if self.lazy and not self.schema
            else None
        )
        if lazily is not None:
            ingested, scan = lazily
        else:
            ingested, scan = (
                load_events(self.events, definitions, self.schema, staging=staging),
                None,
            )
        read = lines_read(ingested.events.height, ingested.quarantine)
        check_not_empty(read, writer.previous, **guard)  # type: ignore[arg-type]
        layout = "normalized" if staging is not None else "none"
        return Loaded(ingested, layout, {"quarantine": ingested.quarantine}, staging, scan)


@dataclass
class RunOutcome:
    """What `run` committed.

    Attributes:
        definitions: the definitions the run computed (created_at pinned when incremental).
        loaded: the source's messages.
        tables: every table written into the run.
        stats: ingestion and engine counters.
        seconds: seconds per stage (ingest, compute, write, commit).
        committed: the committed run (now the warehouse's current run).
        engine_run: incremental runs: the refresh (mode, what was recomputed) and registry.
    """

    definitions: Definitions
    loaded: Loaded
    tables: dict[str, pl.DataFrame]
    stats: dict[str, int]
    seconds: dict[str, float]
    committed: Run
    engine_run: EngineRun | None = None


@dataclass
class _Computed:
    tables: dict[str, pl.DataFrame]
    json_columns: dict[str, list[str]] | dict[str, set[str]]
    stats: dict[str, int]
    message_profiles: pl.DataFrame | None = None
    engine_run: EngineRun | None = None


def run(
    definitions_dir: str | Path,
    source: EventsSource,
    warehouse: str | Path,
    as_of: datetime,
    *,
    engine: str = "polars",
    dsn: str | None = None,
    incremental: bool = False,
    allow_empty: bool = False,
    out_schema: str | None = None,
) -> RunOutcome:
    """One run, as the CLI's `compute` and Dagster's engine asset make it: read the source's
    messages, compute every table, derive membership changes and history from the base run,
    write it all into a new run folder of `warehouse` and commit it (one atomic step,
    `audience_pipeline.warehouse`); a failed or killed run changes nothing readers see.

    Args:
        source: where the messages come from (`EventFiles`, or Dagster's partitions).
        engine: polars, duckdb or postgres (`engines.engine_compute`).
        dsn: the PostgreSQL server, for ``engine="postgres"``.
        incremental: refresh from the base run's state (Polars recomputes only the entities
            new events can change; other engines compute in full) and keep what the next run
            needs: the state, the audience registry (created_at pinned to the first computation;
            a deleted key defined again is refused), custom_traits, membership_snapshots.
            Without it every table is computed in full and none of those is kept.
        allow_empty: write the run even if no message was read while the last run had some.
        out_schema: with ``engine="postgres"``, the schema of the server the run's tables are
            also written to (replaced in one transaction).

    Raises:
        DefinitionsError: invalid definitions (or, incremental, a deleted key defined again).
        EmptyInput: no message read while the warehouse's last run had some.
    """
    definitions = _valid_definitions(definitions_dir)
    timings: dict[str, float] = {}
    stages = Stages(timings)
    stages.start("ingest")
    with begin_run(Path(warehouse), as_of=as_of) as writer:
        loaded = source.load(writer, definitions, allow_empty=allow_empty)
        stages.start("compute")
        computed = (
            _refreshed(loaded, definitions, as_of, writer, engine, dsn) if incremental
            else _computed(loaded, definitions_dir, as_of, writer.base, engine, dsn)
        )  # fmt: skip
        stages.start("write")
        tables = {**computed.tables, **loaded.tables}
        writer.write_all(tables)
        if engine == "postgres" and dsn and out_schema:
            _also_in_postgres(dsn, out_schema, tables)
        _keep_for_next(computed, loaded, writer)  # read by explain, the API, the next run
        stages.start("commit")
        committed = writer.commit(as_of=as_of, layout=loaded.layout,
                                  json_columns=computed.json_columns,
                                  messages=loaded.ingested.events.height)  # fmt: skip
        stages.finish()
    pinned = computed.engine_run.definitions if computed.engine_run else definitions
    stats = {**loaded.ingested.stats, **computed.stats}
    return RunOutcome(pinned, loaded, tables, stats, timings, committed, computed.engine_run)


def _valid_definitions(definitions_dir: str | Path) -> Definitions:
    """The loaded definitions; DefinitionsError with every issue if any."""
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    return definitions


def _also_in_postgres(dsn: str, schema: str, tables: dict[str, pl.DataFrame]) -> None:
    """The run's tables also into `schema` of the server (replaced in one transaction)."""
    from audience_pipeline.sql.postgres_tables import write_tables

    write_tables(dsn, schema, tables)


def _computed(
    loaded: Loaded,
    definitions_dir: str | Path,
    as_of: datetime,
    base: Run | None,
    engine: str,
    dsn: str | None,
) -> _Computed:
    """Every table in full, with changes and history derived from the committed base run
    (never from a killed run's files)."""
    # DuckDB reads the run's normalized Parquet itself when the source left it there; the
    # Polars engine streams a scan of it into its buckets.
    _, result = compute_tables(loaded.ingested, definitions_dir, as_of, engine, dsn=dsn,
                               normalized=loaded.staging, scan=loaded.scan)  # fmt: skip
    previous = base.table("memberships") if base else None
    changes = membership_changes(previous, result.memberships, as_of)
    history = membership_history(base.table("membership_history") if base else None, changes, as_of)
    tables = {**result.tables(), "membership_changes": changes, "membership_history": history}
    return _Computed(tables, result.json_columns, result.stats, result.message_profiles)


def _refreshed(
    loaded: Loaded,
    definitions: Definitions,
    as_of: datetime,
    writer: RunWriter,
    engine: str,
    dsn: str | None,
) -> _Computed:
    """The engine tables refreshed from the base run's state (`membership.refresh`)."""
    compute_fn = None if engine == "polars" else engine_compute(engine, dsn=dsn)
    ingested = loaded.ingested
    # A scan of the normalized events: the refresh reads only the columns it needs.
    events = ingested.events if loaded.scan is None else loaded.scan
    engine_run = refresh_engine(events, ingested.trait_updates, definitions, as_of,
                                writer.base, writer.warehouse, compute_fn)  # fmt: skip
    state = engine_run.refresh.state
    tables = run_tables(engine_run, writer.base)
    profiles = None
    if loaded.staging:
        keys = events.select("seq", "source", "line").lazy().collect()
        profiles = _message_profiles(keys, state.messages)
    return _Computed(tables, state.json_columns, engine_run.refresh.stats, profiles, engine_run)


def _message_profiles(events: pl.DataFrame, state_messages: pl.DataFrame) -> pl.DataFrame:
    """seq, profile_id of every message at or before as-of, as identity resolution gives them
    (`message_profiles`), from the state's map of (source, line) to profile."""
    owners = state_messages.select("source", "line", "profile_id")
    return (
        events.select("seq", "source", "line")
        .join(owners, on=["source", "line"], how="inner")
        .select("seq", "profile_id")
        .sort("seq")
    )


def _keep_for_next(computed: _Computed, loaded: Loaded, writer: RunWriter) -> None:
    """What readers of the run (explain, the API, `diff`) and the next run need besides the
    tables: each message's profile next to the normalized inputs; the engine state and the
    audience registry of an incremental run."""
    if loaded.staging is not None:
        assert computed.message_profiles is not None  # both paths give them for a staging source
        write_parquet(
            computed.message_profiles, writer.folder / NORMALIZED_INPUTS["message_profiles"]
        )
        checkpoint("normalized")
    if computed.engine_run is not None:
        keep_state(computed.engine_run, writer)
        checkpoint("state")


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
    incremental: bool = False,
) -> RunSummary:
    """`compute`: ingest, compute every table (in full, or with `incremental` refreshed from
    the last run's state, see `run`), diff against the previous run in `out`, commit (`run`
    over `EventFiles`), and sum it up for the terminal.

    `dsn` and `out_schema`: with ``engine="postgres"``, the server that computes, and the schema
    of it where the run's tables are also written (replaced in one transaction).

    Raises:
        DefinitionsError: invalid definitions.
        EmptyInput: no event read while the warehouse's last run had events (`allow_empty`
            overrides).
    """
    lazy = engine == "polars"  # the normalized events stay on disk as a scan
    source = EventFiles(events, schema, keep_normalized, lazy=lazy)
    outcome = run(definitions_dir, source, out, as_of, engine=engine, dsn=dsn,
                  incremental=incremental, allow_empty=allow_empty, out_schema=out_schema)  # fmt: skip
    return summarize(outcome, Path(out), as_of)


def summarize(outcome: RunOutcome, out: Path, as_of: datetime) -> RunSummary:
    """Table sizes, audience sizes with entered/exited counts, quarantine, stats and seconds."""
    tables = outcome.tables
    sizes = tables["memberships"].group_by("audience_key").len()
    size_map = dict(zip(sizes["audience_key"].to_list(), sizes["len"].to_list(), strict=True))
    audience_keys = [a.key for a in outcome.definitions.audiences]
    counts = tables["membership_changes"].group_by("audience_key", "change").len()

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
        quarantined=outcome.loaded.ingested.quarantine.height,
        seconds=outcome.seconds,
        stats=outcome.stats,
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
    definitions = _valid_definitions(definitions_dir)
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
    "EventFiles",
    "EventsSource",
    "Loaded",
    "Preview",
    "RunOutcome",
    "RunSummary",
    "compile_space",
    "parse_as_of",
    "preview",
    "query",
    "run",
    "run_compute",
    "summarize",
    "validate",
    "validate_warnings",
]
