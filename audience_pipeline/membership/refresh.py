"""The incremental step of a run: refresh the engine tables from the base run's state, with the
audience registry (created_at pinned, deleted keys refused), and derive the tables a series of
runs keeps (custom traits, history, daily snapshots).

No Dagster here: the run facade (`service.run` with ``incremental=True``) calls these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from audience_pipeline.engines import ComputeFn
from audience_pipeline.incremental import Events, Refresh, load_state, refresh, save_state
from audience_pipeline.membership.diff import membership_changes, membership_history
from audience_pipeline.membership.registry import REGISTRY_FILE, Changes, Registry
from audience_pipeline.membership.snapshots import take_snapshot
from audience_pipeline.spec.issues import DefinitionsError
from audience_pipeline.spec.loader import load_definitions
from audience_pipeline.spec.models import Definitions
from audience_pipeline.warehouse import Run, RunWriter
from audience_pipeline.warehouse.layout import STATE


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
    events: Events,
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
    return refresh_engine(events, trait_updates, definitions, as_of, base, warehouse, compute_fn)


def refresh_engine(
    events: Events,
    trait_updates: pl.DataFrame,
    definitions: Definitions,
    as_of: datetime,
    base: Run | None,
    warehouse: Path | None = None,
    compute_fn: ComputeFn | None = None,
) -> EngineRun:
    """`run_engine` over definitions already loaded (and valid)."""
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
    """Every table an incremental run commits: the engine's, custom traits, and history and
    daily snapshots derived from the base run's."""
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


def keep_state(run: EngineRun, writer: RunWriter) -> None:
    """Leave the engine state and the audience registry in the run being written (what the
    next incremental run starts from)."""
    save_state(run.refresh.state, writer.folder / STATE, tables_dir="..")
    run.registry.record(run.definitions, run.as_of)
    run.registry.path = writer.folder / REGISTRY_FILE
    run.registry.save()


__all__ = ["EngineRun", "custom_only", "keep_state", "refresh_engine", "run_engine", "run_tables"]
