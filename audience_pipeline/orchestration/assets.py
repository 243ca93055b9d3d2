"""Asset factories: one asset per table, per computed trait and per audience in definitions/.

Bodies are thin calls into audience_pipeline (ingest, membership.pipeline, membership.diff,
membership.snapshots): the CLI and Dagster run the same code. The engine computes every table
in one fused pass (`engine` below); trait and audience assets are views over its tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from audience_pipeline.incremental import definition_hash, load_state
from audience_pipeline.ingest import ingest
from audience_pipeline.membership import diff
from audience_pipeline.membership.pipeline import (
    STATE_DIR,
    combine_partitions,
    commit_engine,
    run_engine,
)
from audience_pipeline.membership.snapshots import take_snapshot
from audience_pipeline.orchestration import warehouse as wh
from audience_pipeline.orchestration.io import TableView
from audience_pipeline.orchestration.resources import EngineResource, PipelineSettings, run_as_of
from audience_pipeline.spec.models import AudienceDef, Definitions, TraitDef

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
    return dg.AssetKey(["traits", trait.key])


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
        from audience_pipeline.spec.loader import load_space

        issues: list = []
        space = load_space(Path(settings.definitions_dir), issues)
        files = wh.files_of_partition(settings.landing, context.partition_key)
        context.log.info("partition %s: %d files", context.partition_key, len(files))
        result = ingest(files, space) if files else None
        if result is None:
            from audience_pipeline.ingest.schema import (
                EVENTS_COLUMNS,
                QUARANTINE_COLUMNS,
                TRAIT_UPDATES_COLUMNS,
                empty_frame,
            )

            frames = [empty_frame(c) for c in (EVENTS_COLUMNS, TRAIT_UPDATES_COLUMNS,
                                                 QUARANTINE_COLUMNS)]  # fmt: skip
        else:
            frames = [result.events, result.trait_updates, result.quarantine]
        stats = result.stats if result else {}
        meta = {
            "files": dg.MetadataValue.int(len(files)),
            "messages": dg.MetadataValue.int(frames[0].height),
            "duplicates": dg.MetadataValue.int(int(stats.get("duplicates", 0))),
        }
        yield dg.Output(frames[0], "raw_events", metadata=meta)
        yield dg.Output(frames[1], "raw_trait_updates")
        yield dg.Output(
            frames[2],
            "quarantine",
            metadata={
                "quarantined": dg.MetadataValue.int(frames[2].height),
                **_counts(frames[2], "reason"),
            },
        )
        # After the outputs are stored: a crash before this line only means ingesting again.
        wh.record_ingested(settings.warehouse, files)

    return raw


def _counts(frame: pl.DataFrame, column: str) -> dict[str, dg.MetadataValue]:
    if frame.height == 0:
        return {}
    counts = frame.group_by(column).len().sort(column)
    return {f"{column}: {value}": dg.MetadataValue.int(int(n)) for value, n in counts.iter_rows()}


def _custom_only(user_traits: pl.DataFrame, definitions: Definitions) -> pl.DataFrame:
    taken = {t.key for t in definitions.traits if t.level == "user"}
    taken |= {a.key for a in definitions.audiences if a.level == "user"}
    return user_traits.select(c for c in user_traits.columns if c not in taken)


def engine_asset() -> dg.AssetsDefinition:
    """One fused engine pass over every partition's events: the profile and membership tables."""

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
    ) -> Iterator[dg.Output[pl.DataFrame]]:
        as_of = run_as_of(context)
        events, updates = combine_partitions(
            wh.read_partitions(settings.warehouse, "raw_events"),
            wh.read_partitions(settings.warehouse, "raw_trait_updates"),
        )
        run = run_engine(events, updates, settings.definitions_dir, as_of, settings.warehouse,
                         engine.compute_fn())  # fmt: skip
        refresh = run.refresh
        context.log.info(
            "engine %s (%s) as of %s: %d messages recomputed",
            refresh.mode, refresh.reason or "-", as_of.isoformat(), refresh.messages_recomputed,
        )  # fmt: skip
        tables = run.tables
        tables["custom_traits"] = _custom_only(tables["user_traits"], run.definitions)
        engine_meta = {
            "as_of": dg.MetadataValue.text(as_of.isoformat()),
            "engine": dg.MetadataValue.text(engine.engine),
            "mode": dg.MetadataValue.text(refresh.mode),
            "reason": dg.MetadataValue.text(refresh.reason or "-"),
            "messages_recomputed": dg.MetadataValue.int(refresh.messages_recomputed),
            "profiles_recomputed": dg.MetadataValue.int(refresh.profiles_recomputed),
            "accounts_recomputed": dg.MetadataValue.int(refresh.accounts_recomputed),
        }
        for name in ENGINE_TABLES:
            meta = dict(engine_meta) if name == "memberships" else {}
            yield dg.Output(tables[name], name, metadata=meta)
        commit_engine(run, settings.warehouse)

    return engine


def trait_asset(trait: TraitDef) -> dg.AssetsDefinition:
    table, entity = (
        ("user_traits", "profile_id") if trait.level == "user" else ("account_traits", "account_id")
    )

    @dg.asset(
        key=trait_key(trait),
        group_name="computed_traits",
        code_version=definition_hash(trait.raw),
        description=trait.description or trait.key,
        deps=[dg.AssetKey(table)],
        io_manager_key="view_io_manager",
        tags={"level": trait.level, "kind": trait.kind},
        kinds={"duckdb"},
    )
    def _trait(settings: PipelineSettings) -> dg.Output[TableView]:
        frame = wh.read_whole(settings.warehouse, table)
        meta: dict[str, dg.MetadataValue] = {}
        if frame is not None and trait.key in frame.columns:
            column = frame[trait.key]
            meta["entities_with_value"] = dg.MetadataValue.int(column.len() - column.null_count())
        view = wh.trait_view(settings.warehouse, table, entity, trait.key)
        return dg.Output(TableView(view, table, columns=(entity, trait.key)), metadata=meta)

    return _trait


def _audience_deps(audience: AudienceDef, definitions: Definitions) -> list[dg.AssetKey]:
    """What an audience names: other audiences and computed traits (for lineage)."""
    text = str(audience.raw.get("condition"))
    deps = [trait_key(t) for t in definitions.traits if t.key in text and _names(audience, t.key)]
    deps += [
        audience_key(a.key)
        for a in definitions.audiences
        if a.key != audience.key and _refers(audience.raw.get("condition"), a.key)
    ]
    return deps


def _names(audience: AudienceDef, key: str) -> bool:
    import re

    return re.search(rf"\b{re.escape(key)}\b", str(audience.raw.get("condition"))) is not None


def _refers(raw: object, key: str) -> bool:
    if isinstance(raw, dict):
        if raw.get("audience") == key:
            return True
        return any(_refers(v, key) for v in raw.values())
    if isinstance(raw, list):
        return any(_refers(v, key) for v in raw)
    return False


def audience_asset(audience: AudienceDef, definitions: Definitions) -> dg.AssetsDefinition:
    @dg.asset(
        key=audience_key(audience.key),
        group_name="audiences",
        code_version=definition_hash(audience.raw),
        description=audience.name,
        ins={
            "memberships": dg.AssetIn("memberships"),
            "membership_changes": dg.AssetIn("membership_changes"),
        },
        deps=_audience_deps(audience, definitions),
        io_manager_key="view_io_manager",
        tags={"level": audience.level},
        kinds={"duckdb"},
    )
    def _audience(
        settings: PipelineSettings, memberships: pl.DataFrame, membership_changes: pl.DataFrame
    ) -> dg.Output[TableView]:
        members = memberships.filter(pl.col("audience_key") == audience.key)
        changes = membership_changes.filter(pl.col("audience_key") == audience.key)
        entered = changes.filter(pl.col("change") == "entered").height
        exited = changes.filter(pl.col("change") == "exited").height
        preview = members.select("entity_id").head(PREVIEW_ROWS)
        meta = {
            "size": dg.MetadataValue.int(members.height),
            "entered": dg.MetadataValue.int(entered),
            "exited": dg.MetadataValue.int(exited),
            "previous_size": dg.MetadataValue.int(members.height - entered + exited),
            "preview": dg.MetadataValue.md(_markdown(preview)),
        }
        sql = _compiled_sql(audience.key, settings.definitions_dir)
        if sql is not None:
            meta["compiled_sql"] = dg.MetadataValue.md(f"```sql\n{sql}\n```")
        view = wh.audience_view(settings.warehouse, audience.key)
        return dg.Output(TableView(view, "memberships", audience_key=audience.key), metadata=meta)

    return _audience


def _markdown(frame: pl.DataFrame) -> str:
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "| " + " | ".join("---" for _ in frame.columns) + " |"
    rows = ["| " + " | ".join(str(v) for v in row) + " |" for row in frame.iter_rows()]
    return "\n".join([header, rule, *rows]) if rows else "(no members)"


def _compiled_sql(key: str, definitions_dir: str) -> str | None:
    """The audience's SQL once the SQL backend exists (audience_pipeline.sql.compile_audience)."""
    try:
        from audience_pipeline.sql import compile_audience
    except ImportError:
        return None
    try:
        return str(compile_audience(definitions_dir, key, "duckdb"))
    except Exception:  # the backend is optional metadata; never fail the asset for it
        return None


def _engine_as_of(settings: PipelineSettings, context: AssetExecutionContext) -> datetime:
    """The as-of of the last engine run (the state it committed), else the run's as-of."""
    state = load_state(settings.warehouse / STATE_DIR)
    return state.as_of if state is not None else run_as_of(context)


def history_assets(timezone: str) -> list[dg.AssetsDefinition]:
    """membership_history (SCD-2) and membership_snapshots (one set of rows per day)."""

    @dg.asset(
        group_name="memberships",
        io_manager_key="parquet_io_manager",
        description="SCD-2 history: one row per stay of an entity in an audience",
    )
    def membership_history(
        context,  # noqa: ANN001
        settings: PipelineSettings,
        membership_changes: pl.DataFrame,
    ) -> pl.DataFrame:
        previous = wh.read_whole(settings.warehouse, "membership_history")
        as_of = _engine_as_of(settings, context)
        if previous is not None and _applied(previous, as_of):
            context.log.info("changes of %s are already in the history", as_of.isoformat())
            return previous
        return diff.membership_history(previous, membership_changes, as_of)

    @dg.asset(
        group_name="memberships",
        io_manager_key="parquet_io_manager",
        description="Daily membership snapshots: the members as the day's last run left them",
    )
    def membership_snapshots(
        context,  # noqa: ANN001
        settings: PipelineSettings,
        memberships: pl.DataFrame,
    ) -> pl.DataFrame:
        previous = wh.read_whole(settings.warehouse, "membership_snapshots")
        return take_snapshot(previous, memberships, _engine_as_of(settings, context), timezone)

    return [membership_history, membership_snapshots]


def _applied(history: pl.DataFrame, as_of: datetime) -> bool:
    """Whether a run at `as_of` (or later) has already been folded into the history."""
    stamps = pl.concat([history["valid_from"], history["valid_to"].drop_nulls()])
    latest = stamps.max() if stamps.len() else None
    return latest is not None and bool(latest >= as_of)  # type: ignore[operator]
