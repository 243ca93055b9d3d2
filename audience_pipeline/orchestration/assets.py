"""Asset factories: one asset per table, per computed trait and per audience in definitions/.

Bodies are thin calls into audience_pipeline: the engine asset makes its run through the same
facade as the CLI's `compute` (`service.run`, here incremental, over Dagster's daily partitions;
see `membership.pipeline.engine_step`). The engine computes every table in one fused pass;
trait and audience assets are views over its tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

import dagster as dg
import polars as pl
from sqlglot import exp

from audience_pipeline.incremental import definition_hash
from audience_pipeline.ingest import IngestResult, ingest
from audience_pipeline.ingest.schema import (
    EVENTS_COLUMNS,
    QUARANTINE_COLUMNS,
    TRAIT_UPDATES_COLUMNS,
    empty_frame,
)
from audience_pipeline.membership.pipeline import engine_step
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.io import CommittedTable
from audience_pipeline.orchestration.lineage import References, audience_references
from audience_pipeline.orchestration.resources import EngineResource, PipelineSettings, run_as_of
from audience_pipeline.orchestration.size_change import SIZE_CHANGE_DESCRIPTION, size_change_result
from audience_pipeline.spec.models import AudienceDef, Definitions, TraitDef
from audience_pipeline.warehouse import EmptyInput, Run, require_run

RAW = ("raw_events", "raw_trait_updates", "quarantine")
ENGINE_TABLES = (
    "identities",
    "user_traits",
    "custom_traits",
    "account_traits",
    "memberships",
    "account_user_memberships",
    "membership_changes",
)
GROUPS = {
    "identities": "profiles",
    "user_traits": "profiles",
    "custom_traits": "profiles",
    "account_traits": "profiles",
    "memberships": "memberships",
    "account_user_memberships": "memberships",
    "membership_changes": "memberships",
}
PREVIEW_ROWS = 10


def trait_key(trait: TraitDef) -> dg.AssetKey:
    return trait_key_of(trait.key)


def trait_key_of(key: str) -> dg.AssetKey:
    return dg.AssetKey(["traits", key])


def audience_key(key: str) -> dg.AssetKey:
    return dg.AssetKey(["audiences", key])


def raw_assets(partitions: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Raw events, trait updates and quarantined lines of one day's landing files."""

    @dg.multi_asset(
        outs={
            name: dg.AssetOut(
                group_name="ingest",
                io_manager_key="parquet_io_manager",
                description=text,
            )
            for name, text in (
                ("raw_events", "Normalized messages of the day's landing files"),
                ("raw_trait_updates", "Custom and account trait updates of those messages"),
                ("quarantine", "Unusable lines with their raw text, source, line and reason"),
            )
        },
        partitions_def=partitions,
    )
    def raw(
        context,  # noqa: ANN001  (dagster rejects a string annotation here)
        settings: PipelineSettings,
    ) -> Iterator[dg.Output[pl.DataFrame]]:
        from audience_pipeline.ingest.progress import Progress
        from audience_pipeline.spec.loader import load_space

        issues: list = []
        space = load_space(Path(settings.definitions_dir), issues)
        files = wh.files_of_partition(settings.landing, context.partition_key)
        context.log.info("partition %s: %d files", context.partition_key, len(files))

        def report(progress: Progress) -> None:  # files, bytes and rate in the run log
            context.log.info(progress.describe())

        result = ingest(files, space, progress=report) if files else None
        yield from _raw_outputs(result, len(files))
        # After the outputs are stored: a crash before this line only means ingesting again.
        wh.record_ingested(settings.warehouse, files)

    return raw


def _raw_outputs(result: IngestResult | None, files: int) -> Iterator[dg.Output[pl.DataFrame]]:
    """The day's raw events, trait updates and quarantine (empty without files), with the
    metadata the UI shows: files, messages, duplicates; quarantined lines by reason."""
    if result is None:
        events, updates, quarantine = (
            empty_frame(c) for c in (EVENTS_COLUMNS, TRAIT_UPDATES_COLUMNS, QUARANTINE_COLUMNS)
        )
    else:
        events, updates, quarantine = result.events, result.trait_updates, result.quarantine
    stats = result.stats if result else {}
    meta = {
        "files": dg.MetadataValue.int(files),
        "messages": dg.MetadataValue.int(events.height),
        "duplicates": dg.MetadataValue.int(int(stats.get("duplicates", 0))),
    }
    yield dg.Output(events, "raw_events", metadata=meta)
    yield dg.Output(updates, "raw_trait_updates")
    yield dg.Output(
        quarantine,
        "quarantine",
        metadata={
            "quarantined": dg.MetadataValue.int(quarantine.height),
            **_counts(quarantine, "reason"),
        },
    )


def _counts(frame: pl.DataFrame, column: str) -> dict[str, dg.MetadataValue]:
    if frame.height == 0:
        return {}
    counts = frame.group_by(column).len().sort(column)
    return {f"{column}: {value}": dg.MetadataValue.int(int(n)) for value, n in counts.iter_rows()}


def _committed(run: Run, name: str) -> CommittedTable:
    frame = run.scan(name).select(pl.len()).collect()
    return CommittedTable(name, int(frame.item()), run.path(name))


def engine_asset() -> dg.AssetsDefinition:
    """One fused engine pass over every partition's events: the profile and membership tables,
    with history and snapshots, committed as one run (`membership.pipeline.engine_step`)."""

    @dg.multi_asset(
        outs={
            name: dg.AssetOut(group_name=GROUPS[name], io_manager_key="parquet_io_manager")
            for name in ENGINE_TABLES
        },
        deps=[dg.AssetKey("raw_events"), dg.AssetKey("raw_trait_updates")],
    )
    def engine(
        context,  # noqa: ANN001
        settings: PipelineSettings,
        engine: EngineResource,
    ) -> Iterator[dg.Output[CommittedTable]]:
        as_of = run_as_of(context)
        try:
            run, committed = engine_step(settings.warehouse, settings.definitions_dir, as_of,
                                         allow_empty=settings.allow_empty,
                                         engine=engine.engine, dsn=engine.address())  # fmt: skip
        except EmptyInput as error:
            raise dg.Failure(description=str(error)) from None
        refresh = run.refresh
        context.log.info(
            "engine %s (%s) as of %s: %d messages recomputed",
            refresh.mode, refresh.reason or "-", as_of.isoformat(), refresh.messages_recomputed,
        )  # fmt: skip
        engine_meta = {
            "as_of": dg.MetadataValue.text(as_of.isoformat()),
            "engine": dg.MetadataValue.text(engine.engine),
            "mode": dg.MetadataValue.text(refresh.mode),
            "reason": dg.MetadataValue.text(refresh.reason or "-"),
            "messages_recomputed": dg.MetadataValue.int(refresh.messages_recomputed),
            "profiles_recomputed": dg.MetadataValue.int(refresh.profiles_recomputed),
            "accounts_recomputed": dg.MetadataValue.int(refresh.accounts_recomputed),
            "run": dg.MetadataValue.text(committed.run_id or "-"),
        }
        for name in ENGINE_TABLES:
            meta = dict(engine_meta) if name == "memberships" else {}
            yield dg.Output(_committed(committed, name), name, metadata=meta)

    return engine


def trait_assets(traits: list[TraitDef]) -> list[dg.AssetsDefinition]:
    """One asset per computed trait (a view of its column), all materialized by one step.

    One step, not one per trait: each step costs Dagster's per-step overhead for a fraction of
    a second of work. The multi-asset is subsettable, so a run can still select single traits.
    """
    if not traits:
        return []
    by_key = {trait_key(t): t for t in traits}
    specs = [
        dg.AssetSpec(
            key,
            group_name="computed_traits",
            code_version=definition_hash(t.raw),
            description=t.description or t.key,
            deps=[dg.AssetKey(_trait_table(t)[0])],
            tags={"level": t.level, "kind": t.kind},
            kinds={"duckdb"},
        )  # fmt: skip
        for key, t in by_key.items()
    ]

    @dg.multi_asset(name="computed_trait_views", specs=specs, can_subset=True)
    def _traits(context, settings: PipelineSettings) -> Iterator[dg.MaterializeResult]:  # noqa: ANN001
        frames: dict[str, pl.DataFrame | None] = {}
        views: dict[str, exp.Expression] = {}
        results: list[dg.MaterializeResult] = []
        for key in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string()):
            trait = by_key[key]
            table, entity = _trait_table(trait)
            if table not in frames:
                frames[table] = wh.read_whole(settings.warehouse, table)
            frame = frames[table]
            meta: dict[str, dg.MetadataValue] = {"view": dg.MetadataValue.text(_name(key))}
            fields: tuple[str, ...] = ()
            if frame is not None and trait.kind == "sql":  # one column per field: `<key>.<field>`
                fields = tuple(c for c in frame.columns if c.startswith(trait.key + "."))
            if frame is not None and trait.key in frame.columns:
                column = frame[trait.key]
                meta["entities_with_value"] = dg.MetadataValue.int(
                    column.len() - column.null_count()
                )
            views[_name(key)] = wh.trait_view(settings.warehouse, table, entity, trait.key, fields)
            results.append(dg.MaterializeResult(asset_key=key, metadata=meta))
        wh.register_views(settings.warehouse, views)
        yield from results

    return [_traits]


def _trait_table(trait: TraitDef) -> tuple[str, str]:
    if trait.level == "user":
        return "user_traits", "profile_id"
    return "account_traits", "account_id"


def _name(key: dg.AssetKey) -> str:
    """The catalog name of a view asset (audiences/x -> audiences_x), as the IO managers name
    tables."""
    return "_".join(key.path)


def _audience_deps(audience: AudienceDef, references: References) -> list[dg.AssetKey]:
    """What an audience names: computed traits, then other audiences (for lineage)."""
    traits, audiences = references.get(audience.key, ((), ()))
    return [*(trait_key_of(k) for k in traits), *(audience_key(k) for k in audiences)]


def audience_assets(
    audiences: list[AudienceDef], definitions: Definitions, size_change_warning: float
) -> list[dg.AssetsDefinition]:
    """One asset per audience (a view of its members, with size / entered / exited metadata
    the UI plots) and its size_change check, all in one subsettable step (see trait_assets)."""
    if not audiences:
        return []
    by_key = {audience_key(a.key): a for a in audiences}
    references = audience_references(definitions)
    specs = [
        dg.AssetSpec(
            key,
            group_name="audiences",
            code_version=definition_hash(a.raw),
            description=a.name,
            deps=[
                dg.AssetKey("memberships"),
                dg.AssetKey("membership_changes"),
                *_audience_deps(a, references),
            ],
            tags={"level": a.level},
            kinds={"duckdb"},
        )  # fmt: skip
        for key, a in by_key.items()
    ]

    checks = [
        dg.AssetCheckSpec("size_change", asset=key, description=SIZE_CHANGE_DESCRIPTION)
        for key in by_key
    ]

    @dg.multi_asset(name="audience_views", specs=specs, check_specs=checks, can_subset=True)
    def _audiences(context, settings: PipelineSettings) -> Iterator[object]:  # noqa: ANN001
        memberships = wh.read_whole(settings.warehouse, "memberships")
        changes = wh.read_whole(settings.warehouse, "membership_changes")
        if memberships is None or changes is None:
            msg = f"memberships have not been computed in {settings.warehouse}"
            raise FileNotFoundError(msg)
        selected = _in_dependency_order(context.selected_asset_keys, specs)
        wh.register_views(
            settings.warehouse,
            {_name(k): wh.audience_view(settings.warehouse, by_key[k].key) for k in selected},
        )
        sqls = _compiled_sqls(settings.definitions_dir)
        checked = {c.asset_key for c in context.selected_asset_check_keys}
        for key in selected:
            audience = by_key[key]
            meta, (size, entered, exited) = _audience_metadata(audience, memberships, changes)
            if audience.key in sqls:
                meta["compiled_sql"] = dg.MetadataValue.md(f"```sql\n{sqls[audience.key]}\n```")
            yield dg.MaterializeResult(asset_key=key, metadata=meta)
            if key in checked:
                yield size_change_result(key, size, entered, exited, size_change_warning)

    return [_audiences]


def _in_dependency_order(
    selected: AbstractSet[dg.AssetKey], specs: list[dg.AssetSpec]
) -> list[dg.AssetKey]:
    """Selected keys, each after the audiences it names (Dagster wants upstream first)."""
    deps = {spec.key: {d.asset_key for d in spec.deps} for spec in specs}
    ordered: list[dg.AssetKey] = []
    done: set[dg.AssetKey] = set()

    def visit(key: dg.AssetKey) -> None:
        if key in done or key not in deps:
            return
        done.add(key)
        for upstream in sorted(deps[key], key=lambda k: k.to_user_string()):
            visit(upstream)
        if key in selected:
            ordered.append(key)

    for key in sorted(selected, key=lambda k: k.to_user_string()):
        visit(key)
    return ordered


def _audience_metadata(
    audience: AudienceDef, memberships: pl.DataFrame, changes: pl.DataFrame
) -> tuple[dict[str, dg.MetadataValue], tuple[int, int, int]]:
    """The metadata the UI shows and plots, and (size, entered, exited)."""
    members = memberships.filter(pl.col("audience_key") == audience.key)
    mine = changes.filter(pl.col("audience_key") == audience.key)
    entered = mine.filter(pl.col("change") == "entered").height
    exited = mine.filter(pl.col("change") == "exited").height
    preview = members.select("entity_id").head(PREVIEW_ROWS)
    meta: dict[str, dg.MetadataValue] = {
        "size": dg.MetadataValue.int(members.height),
        "entered": dg.MetadataValue.int(entered),
        "exited": dg.MetadataValue.int(exited),
        "previous_size": dg.MetadataValue.int(members.height - entered + exited),
        "preview": dg.MetadataValue.md(_markdown(preview)),
        "view": dg.MetadataValue.text(_name(audience_key(audience.key))),
    }
    return meta, (members.height, entered, exited)


def _markdown(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows]) if rows else "(no members)"


def _compiled_sqls(definitions_dir: str) -> dict[str, str]:
    """Every audience's DuckDB SQL (definitions loaded once); {} if the SQL backend fails."""
    try:
        from audience_pipeline.compile_sql import compile_audiences

        return compile_audiences(definitions_dir, "duckdb")
    except Exception:  # the SQL is optional metadata; never fail the views for it
        return {}


def history_assets(timezone: str) -> list[dg.AssetsDefinition]:
    """membership_history (SCD-2) and membership_snapshots (one set of rows per day).

    The engine's run derives and commits both with its other tables (from the run it derives
    from, so a change is never applied twice); these assets report them."""
    del timezone  # the engine takes the space's timezone from the definitions

    @dg.asset(
        group_name="memberships",
        io_manager_key="parquet_io_manager",
        description="SCD-2 history: one row per stay of an entity in an audience",
        deps=[dg.AssetKey("membership_changes")],
    )
    def membership_history(settings: PipelineSettings) -> CommittedTable:
        return _committed(require_run(settings.warehouse), "membership_history")

    @dg.asset(
        group_name="memberships",
        io_manager_key="parquet_io_manager",
        description="Daily membership snapshots: the members as the day's last run left them",
        deps=[dg.AssetKey("memberships")],
    )
    def membership_snapshots(settings: PipelineSettings) -> CommittedTable:
        return _committed(require_run(settings.warehouse), "membership_snapshots")

    return [membership_history, membership_snapshots]
