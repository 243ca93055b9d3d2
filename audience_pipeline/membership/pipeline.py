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
from audience_pipeline.ingest import EVENTS_COLUMNS, TRAIT_UPDATES_COLUMNS, IngestResult
from audience_pipeline.ingest.dedupe import drop_duplicates
from audience_pipeline.ingest.flatten import add_flat_columns
from audience_pipeline.manifest import publish_run
from audience_pipeline.membership.diff import membership_changes
from audience_pipeline.membership.registry import Changes, Registry
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions
from audience_pipeline.storage import read_table

STATE_DIR = "_state"


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
    warehouse: Path,
    compute_fn: ComputeFn | None = None,
) -> EngineRun:
    """Compute every engine table as of `as_of`, incrementally from the warehouse's state
    (or in full by another engine: `compute_fn`, see `engines.engine_compute`).

    Raises:
        DefinitionsError: invalid definitions, or a deleted audience key defined again.
    """
    definitions, issues = load_definitions(str(definitions_dir))
    if issues:
        raise DefinitionsError(issues)
    registry = Registry.of_warehouse(warehouse)
    registry.refuse_reused(definitions)
    pinned = registry.pin_created_at(definitions, as_of)
    previous = load_state(warehouse / STATE_DIR)
    result = refresh(events, trait_updates, pinned, as_of, previous, compute_fn)
    before = previous.tables["memberships"] if previous else read_table(warehouse, "memberships")
    changes = membership_changes(before, result.tables["memberships"], as_of)
    return EngineRun(pinned, as_of, result, changes, registry.diff(definitions))


def commit_engine(run: EngineRun, warehouse: Path) -> None:
    """After the tables are written: keep the state and record audience versions/tombstones."""
    save_state(run.refresh.state, warehouse / STATE_DIR)
    registry = Registry.of_warehouse(warehouse)
    registry.record(run.definitions, run.as_of)
    registry.save()
    publish_run(warehouse, run.as_of, run.refresh.state.json_columns, STATE_DIR)


def run_from_ingest(
    ingested: IngestResult, definitions_dir: str | Path, as_of: datetime, warehouse: Path
) -> EngineRun:
    """`run_engine` over one ingest result."""
    return run_engine(ingested.events, ingested.trait_updates, definitions_dir, as_of, warehouse)


__all__ = ["EngineRun", "combine_partitions", "commit_engine", "run_engine", "run_from_ingest"]
