"""One engine step as orchestration runs it: partitions -> events, events -> tables + changes.

No Dagster here: assets call these functions, and so can scripts and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.engines import ComputeFn
from audience_pipeline.incremental import Refresh, load_state, refresh, save_state
from audience_pipeline.ingest import EVENTS_COLUMNS, TRAIT_UPDATES_COLUMNS
from audience_pipeline.ingest.dedupe import drop_duplicates
from audience_pipeline.ingest.flatten import add_flat_columns
from audience_pipeline.membership.diff import membership_changes, membership_history
from audience_pipeline.membership.registry import REGISTRY_FILE, Changes, Registry
from audience_pipeline.membership.snapshots import take_snapshot
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse import Run, RunWriter, begin_run, check_not_empty
from audience_pipeline.warehouse.files import link_or_copy
from audience_pipeline.warehouse.guard import lines_read
from audience_pipeline.warehouse.layout import INPUTS, PARTITIONED_INPUTS, STATE
from audience_pipeline.warehouse.writer import checkpoint

STATE_DIR = STATE


def combine_partitions(
    events: list[pl.DataFrame], trait_updates: list[pl.DataFrame]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stack per-partition ingests (in partition order) as one ingest of all their files.

    Each part numbers its lines from 0; parts are shifted so that seq keeps read order, then
    copies of a messageId across parts are dropped (SPEC 5a) and the flat columns rebuilt.
    """
    shifted_events, shifted_updates = [], []
    offset = 0
    for part_events, part_updates in zip(events, trait_updates, strict=True):
        shift = pl.col("seq") + offset
        shifted_events.append(part_events.select(list(EVENTS_COLUMNS)).with_columns(shift))
        shifted_updates.append(part_updates.select(list(TRAIT_UPDATES_COLUMNS)).with_columns(shift))
        if part_events.height:
            offset += int(part_events["seq"].max()) + 1  # type: ignore[arg-type]
    if not shifted_events:
        all_events = pl.DataFrame(schema=EVENTS_COLUMNS)
        all_updates = pl.DataFrame(schema=TRAIT_UPDATES_COLUMNS)
    else:
        all_events = pl.concat(shifted_events).cast(EVENTS_COLUMNS)  # type: ignore[arg-type]
        all_updates = pl.concat(shifted_updates).cast(TRAIT_UPDATES_COLUMNS)  # type: ignore[arg-type]
    all_events, all_updates, _ = drop_duplicates(all_events, all_updates)
    return add_flat_columns(all_events.sort("seq")), all_updates


@dataclass
class EngineRun:
    """The outcome of one engine step, before anything is committed."""

    definitions: Definitions
    as_of: datetime
    refresh: Refresh
    changes: pl.DataFrame
    audience_changes: Changes
    registry: Registry

    @property
    def tables(self) -> dict[str, pl.DataFrame]:
        return {**self.refresh.tables, "membership_changes": self.changes}

    def sizes(self) -> dict[str, dict[str, int]]:
        """Per audience key: size, entered, exited."""
        memberships = self.refresh.tables["memberships"]
        out: dict[str, dict[str, int]] = {}
        for audience in self.definitions.audiences:
            key = audience.key
            mine = self.changes.filter(pl.col("audience_key") == key)
            out[key] = {
                "size": memberships.filter(pl.col("audience_key") == key).height,
                "entered": mine.filter(pl.col("change") == "entered").height,
                "exited": mine.filter(pl.col("change") == "exited").height,
            }
        return out


def run_engine(
    events: pl.DataFrame,
    trait_updates: pl.DataFrame,
    definitions_dir: str | Path,
    as_of: datetime,
    base: Run | None,
    warehouse: Path | None = None,
    compute_fn: ComputeFn | None = None,
) -> EngineRun:
    """Compute every engine table as of `as_of`, incrementally from the state `base` (the
    committed run this run derives from, see `warehouse.writer.base_of`) left, or in full by
    another engine (`compute_fn`, see `engines.engine_compute`).

    Raises:
        DefinitionsError: invalid definitions, or a deleted audience key defined again.
    """
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    registry = Registry.of_run(base, warehouse or (base.warehouse if base else Path(".")))
    registry.refuse_reused(definitions)
    pinned = registry.pin_created_at(definitions, as_of)
    previous = load_state(base.folder / STATE) if base is not None else None
    result = refresh(events, trait_updates, pinned, as_of, previous, compute_fn)
    before = previous.tables["memberships"] if previous else _table(base, "memberships")
    changes = membership_changes(before, result.tables["memberships"], as_of)
    return EngineRun(pinned, as_of, result, changes, registry.diff(definitions), registry)


def _table(run: Run | None, name: str) -> pl.DataFrame | None:
    return run.table(name) if run is not None else None


def custom_only(user_traits: pl.DataFrame, definitions: Definitions) -> pl.DataFrame:
    """`user_traits` without computed traits and audiences: the custom (identify) traits."""
    taken = {t.key for t in definitions.traits if t.level == "user"}
    taken |= {a.key for a in definitions.audiences if a.level == "user"}
    return user_traits.select(c for c in user_traits.columns if c not in taken)


def run_tables(run: EngineRun, base: Run | None) -> dict[str, pl.DataFrame]:
    """Every table the Dagster pipeline commits for one engine run: the engine's, custom
    traits, and history and daily snapshots derived from the base run's."""
    tables = run.tables
    memberships = tables["memberships"]
    timezone = run.definitions.space.timezone
    return {
        **tables,
        "custom_traits": custom_only(tables["user_traits"], run.definitions),
        "membership_history": membership_history(
            _table(base, "membership_history"), run.changes, run.as_of
        ),
        "membership_snapshots": take_snapshot(
            _table(base, "membership_snapshots"), memberships, run.as_of, timezone
        ),
    }


def pin_partitions(warehouse: Path, writer: RunWriter) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Hard-link today's daily partitions of raw events and trait updates into the run (its
    inputs, immune to later ingests) and stack them as one ingest."""
    stacked: dict[str, list[pl.DataFrame]] = {}
    for table in PARTITIONED_INPUTS:
        stacked[table] = []
        for path in sorted((warehouse / table).glob("*.parquet")):
            pinned = writer.folder / INPUTS / table / path.name
            link_or_copy(path, pinned)
            stacked[table].append(pl.read_parquet(pinned))
    return combine_partitions(stacked["raw_events"], stacked["raw_trait_updates"])


def _quarantined(warehouse: Path) -> pl.LazyFrame:
    """The quarantined lines of every daily partition (reason only)."""
    paths = sorted((warehouse / "quarantine").glob("*.parquet"))
    if not paths:
        return pl.LazyFrame(schema={"reason": pl.String})
    return pl.scan_parquet(paths).select("reason")


def engine_step(
    warehouse: Path,
    definitions_dir: str | Path,
    as_of: datetime,
    *,
    allow_empty: bool = False,
    compute_fn: ComputeFn | None = None,
) -> tuple[EngineRun, Run]:
    """The Dagster pipeline's run: pin the partitions, compute, write every table, the state
    and the audience registry into a new run folder, and commit it (one atomic step).

    Raises:
        DefinitionsError: invalid definitions, or a deleted audience key defined again.
        EmptyInput: no partition holds a message while the last run had some.
    """
    warehouse = Path(warehouse)
    with begin_run(warehouse, as_of=as_of) as writer:
        events, updates = pin_partitions(warehouse, writer)
        read = lines_read(events.height, _quarantined(warehouse))
        check_not_empty(read, writer.previous, source=warehouse / "raw_events",
                        allow_empty=allow_empty, option="allow_empty (AUDIENCE_PIPELINE_ALLOW_EMPTY=1)")  # fmt: skip
        run = run_engine(
            events, updates, definitions_dir, as_of, writer.base, warehouse, compute_fn
        )
        writer.write_all(run_tables(run, writer.base))
        save_state(run.refresh.state, writer.folder / STATE, tables_dir="..")
        run.registry.record(run.definitions, as_of)
        run.registry.path = writer.folder / REGISTRY_FILE
        run.registry.save()
        checkpoint("state")
        committed = writer.commit(
            as_of=as_of,
            layout="partitions",
            json_columns=run.refresh.state.json_columns,
            messages=events.height,
        )
    return run, committed


__all__ = [
    "EngineRun",
    "combine_partitions",
    "custom_only",
    "engine_step",
    "run_engine",
    "run_tables",
]
